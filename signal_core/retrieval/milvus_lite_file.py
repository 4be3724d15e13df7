"""The folder behind a Milvus Lite gallery (``milvus:path/gallery.db``): what it must be before Milvus Lite
opens it, and why Milvus Lite could not open it, each said in one line.

Milvus Lite 3.x keeps a database in a folder (``LOCK``, ``collections/``, ...) and creates it, parents
excepted, when it is missing. So that a search never creates an empty database and nothing is written
into a folder or over a file that is not one, the path is checked first (:func:`lite_path_problem`).
When Milvus Lite still fails (another process holds the folder's lock, damaged files), it logs the
cause with a traceback and pymilvus raises a bare "Open local milvus failed":
:func:`quiet_milvus_logs` keeps that cause for the message and lets nothing reach the terminal.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

LITE_MARKERS = ("LOCK", "collections")  # what Milvus Lite puts in every database folder
# Milvus Lite (its server manager logs why a database could not be opened) and pymilvus's RPC error records
_QUIET_LOGGERS = ("milvus_lite", "pymilvus.decorators")


def lite_path_problem(path: str, must_exist: bool) -> str | None:
    """What keeps ``path`` from being opened as a Milvus Lite database (None: nothing).

    Args:
        path: the absolute ``.db`` path.
        must_exist: the gallery is read (a search, the demo): a missing database is an error, not created.
    """
    if os.path.islink(path) and not os.path.exists(path):
        return f"{path} is a broken symbolic link (to {os.readlink(path)}); remove it or give another .db name"
    if not os.path.lexists(path):
        return (f"{path} does not exist; build the gallery first with python -m train.extract ... --index "
                f"milvus:{path}") if must_exist else None
    link = f" (a symbolic link to {os.path.realpath(path)})" if os.path.islink(path) else ""
    if not os.path.isdir(path):
        return (f"{path}{link} is a file, not a Milvus Lite database (a folder); give another .db name, or move the "
                "file away")
    try:
        entries = os.listdir(path)
    except OSError as exc:
        return f"{path}{link} cannot be read ({exc.strerror or type(exc).__name__}); check its permissions"
    if entries and not any(marker in entries for marker in LITE_MARKERS):
        return (f"{path}{link} is a folder that is not a Milvus Lite database; give another .db name, or move "
                "the folder away")
    return None


class _KeepCause(logging.Handler):
    """Keeps the exception of the last record logged with one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.cause: BaseException | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.cause = record.exc_info[1]


@contextmanager
def quiet_milvus_logs() -> Iterator[_KeepCause]:
    """Within the block, the records Milvus Lite and pymilvus log about a failed call (with tracebacks, which
    the caller reports in one line) are not printed; the yielded handler keeps the last exception (``.cause``)."""
    handler, saved = _KeepCause(), []
    for name in _QUIET_LOGGERS:
        logger = logging.getLogger(name)
        saved.append((logger, logger.propagate))
        logger.addHandler(handler)
        logger.propagate = False
    try:
        yield handler
    finally:
        for logger, propagate in saved:
            logger.removeHandler(handler)
            logger.propagate = propagate


def lite_failure_text(path: str, cause: BaseException | None, fallback: str) -> str:
    """Why Milvus Lite could not open ``path``, and what to do."""
    if cause is not None and type(cause).__name__ == "DataDirLockedError":
        return (f"{path} is in use by another process (Milvus Lite is one process); stop that process (a demo, "
                "another command), or serve the gallery from a Milvus server (milvus://host:19530)")
    reason = " ".join(str(cause).split())[:300] if cause is not None else fallback
    name = type(cause).__name__ if cause is not None else "error"
    return (f"Milvus Lite cannot open {path} ({name}: {reason}); it may be damaged: rebuild it with python -m "
            "train.extract ... --index milvus:PATH, or restore a good copy")
