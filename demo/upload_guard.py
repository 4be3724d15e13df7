"""A cap on gradio's upload folder: anonymous posts to the upload route cannot fill the disk.

Gradio keeps every file posted to ``/gradio_api/upload`` (query images, zips) in its upload folder
(``GRADIO_TEMP_DIR``, default ``<temp>/gradio``) until its clean-up (:data:`demo.ui.DELETE_CACHE`).
:class:`UploadGuard` is an ASGI middleware in front of that route: a post must declare its length
(``Content-Length``, as browsers and ``gradio_client`` do; a chunked post is refused, and a body longer
than declared is cut off) and, when the folder would then hold more than ``max_bytes`` (counting the
posts admitted and still arriving), the oldest files there (at least :data:`MIN_AGE_S` old: a visitor's current
query stays) are deleted to make room; when that is not enough the post is refused with 507 and a
one-line message. An uploaded gallery refused for what it holds, and a query image the decoder refuses,
are removed at once (:mod:`demo.upload_ui`, :mod:`demo.handlers`).

Every other post is read first (at most :func:`max_body_bytes`, else 413) and files embedded in its
JSON (``data:`` URLs; URLs for the server to fetch are refused) are taken in by
:func:`demo.embedded_files.take_in_json`: written into the same folder under the same limits (at most
``max_file_bytes`` each, room made as for an upload, else 507), before gradio reads the request. The
bodies read at once hold at most :data:`BODY_BUDGET_FILES` times that limit together (else 503).
Recordings (``/gradio_api/process_recording``: the demo records nothing) are refused.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from signal_core.utils.atomic import atomic_write

from .embedded_files import Refused, take_in_json

log = logging.getLogger(__name__)
UPLOAD_ROUTE = "/gradio_api/upload"
REFUSED_ROUTES = ("/gradio_api/process_recording",)  # files gradio would take that the page never sends
BODY_BUDGET_FILES = 4  # request bodies read at once hold at most this many times max_body_bytes together
MIN_AGE_S = 600.0  # files younger than this are never deleted to make room (a search in progress uses them)
MAX_FILE_BYTES = 20 * 2**20  # default limit per file (the demo passes its --max-file-size)
JSON_SLACK = 2**20  # what a request's JSON may hold besides its embedded files


def gradio_upload_folder() -> str:
    """Where gradio keeps uploaded files (as ``gradio.utils.get_upload_folder``)."""
    from gradio.utils import get_upload_folder

    return get_upload_folder()


def remove_uploaded(paths) -> None:
    """Delete the visitor's uploaded files from gradio's upload folder (only files inside it)."""
    root = Path(gradio_upload_folder()).resolve()
    for path in paths:
        path = Path(path).resolve()
        if path.is_relative_to(root) and path != root:
            with contextlib.suppress(OSError):  # gone meanwhile, or not a file
                path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # gradio keeps each upload in a folder of its own
                path.parent.rmdir()


def folder_files(folder: Path) -> list[tuple[float, int, Path]]:
    """(modification time, size, path) of every file under ``folder`` (links not followed)."""
    found = []
    for dirpath, _, names in os.walk(folder):
        for name in names:
            path = Path(dirpath) / name
            try:
                st = path.lstat()
            except OSError:  # removed meanwhile
                continue
            found.append((st.st_mtime, st.st_size, path))
    return found


def make_room(folder: Path, incoming: int, max_bytes: int, now: float | None = None,
              min_age_s: float = MIN_AGE_S) -> bool:
    """Delete the oldest files under ``folder`` (older than ``min_age_s``) until ``incoming`` more bytes fit
    in ``max_bytes``; True when they fit."""
    files = sorted(folder_files(folder))
    used = sum(size for _, size, _ in files)
    limit = (time.time() if now is None else now) - min_age_s
    for mtime, size, path in files:
        if used + incoming <= max_bytes or mtime > limit:
            break
        try:
            path.unlink()
            used -= size
        except OSError:
            continue
        try:
            path.parent.rmdir()  # gradio keeps each upload in a folder of its own
        except OSError:
            pass
    return used + incoming <= max_bytes


def max_body_bytes(max_file_bytes: int) -> int:
    """The largest request body read besides uploads: three embedded images (base64: 4 bytes per 3)."""
    return 4 * max_file_bytes + JSON_SLACK


class UploadGuard:
    """ASGI middleware capping gradio's upload folder at ``max_bytes`` (see the module's docstring)."""

    def __init__(self, app, max_bytes: int, folder: str | os.PathLike | None = None,
                 max_file_bytes: int = MAX_FILE_BYTES, served: Sequence[str] = ()):
        """``served``: the files and folders the page hands out (a request may name those, or uploads, by path)."""
        self.app, self.max_bytes, self.max_file_bytes = app, max_bytes, max_file_bytes
        self.folder = Path(folder or gradio_upload_folder())
        self.handed_out = [self.folder.resolve(), *(Path(p).resolve() for p in served)]
        self._lock = threading.Lock()  # one clean-up at a time
        self._arriving = 0  # bytes of admitted uploads still arriving (under _lock)
        self._buffered = 0  # bytes of request bodies being read (event loop only)

    async def __call__(self, scope, receive, send):
        if scope.get("type") != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        path, incoming = scope.get("path", ""), 0
        if path.endswith(REFUSED_ROUTES):
            refusal = 404, "this demo takes no recordings."
        elif path.endswith(UPLOAD_ROUTE):
            refusal, incoming = await self._check(headers)
        elif headers.get(b"content-type", b"").lower().startswith(b"multipart/"):
            refusal = 415, f"this route takes JSON: files are posted to {UPLOAD_ROUTE} (gradio_client's handle_file)."
        else:
            refusal, scope, receive = await self._take_in(scope, receive, headers)
        if refusal is not None:
            status, message = refusal
            log.info("upload refused: %s", message)
            await _respond(send, status, message)
            return
        if not incoming:
            await self.app(scope, receive, send)
            return
        try:  # an admitted upload counts against the folder until it is written (and then is in the folder)
            await self.app(scope, _at_most(incoming, receive), send)
        finally:
            with self._lock:
                self._arriving -= incoming

    async def _check(self, headers: dict) -> tuple[tuple[int, str] | None, int]:
        """(refusal or None, the bytes admitted) of a post to the upload route."""
        from anyio import to_thread

        length = headers.get(b"content-length", b"").decode("latin-1").strip()
        if not length.isdigit() or b"transfer-encoding" in headers:
            return (411, "an upload must declare its length (Content-Length) and not be chunked."), 0
        incoming = int(length)
        if incoming > self.max_bytes:
            return (413, f"an upload of {incoming / 2**20:.0f} MB is over this server's upload space."), 0

        def room() -> bool:
            with self._lock:
                if not make_room(self.folder, incoming + self._arriving, self.max_bytes):
                    return False
                self._arriving += incoming
                return True

        if await to_thread.run_sync(room):
            return None, incoming
        return (507, self._full()), 0

    def _full(self) -> str:
        return f"this server's upload space ({self.max_bytes / 2**20:.0f} MB) is full: try again in a few minutes."

    async def _take_in(self, scope, receive, headers: dict):
        """(refusal or None, scope, receive) of a post other than an upload: its body read (bounded), the files
        embedded in its JSON taken in, and handed on rewritten."""
        from anyio import to_thread

        limit = max_body_bytes(self.max_file_bytes)
        length = headers.get(b"content-length", b"").decode("latin-1").strip()
        if length.isdigit() and int(length) > limit:
            return (413, f"a request of {int(length) / 2**20:.0f} MB is over this server's limit of "
                         f"{limit / 2**20:.0f} MB: send images as files (gradio_client's handle_file)."), scope, receive
        body, more = b"", True
        try:
            while more:
                message = await receive()
                if message["type"] != "http.request":  # the client went away: nothing to take in
                    return None, scope, _replay(b"", receive, message)
                chunk = message.get("body", b"")
                body, more = body + chunk, message.get("more_body", False)
                self._buffered += len(chunk)
                if len(body) > limit:
                    return (413, f"a request over {limit / 2**20:.0f} MB is over this server's limit: send images "
                                 "as files (gradio_client's handle_file)."), scope, receive
                if self._buffered > BODY_BUDGET_FILES * limit:
                    return (503, "this server is reading too many large requests: try again in a moment."), scope, \
                        receive
            rewritten = await to_thread.run_sync(take_in_json, body, self.max_file_bytes, self._store,
                                                 self._is_handed_out)
        except Refused as exc:
            return (exc.status, str(exc)), scope, receive
        finally:
            self._buffered -= len(body)
        if rewritten is not None:
            body = rewritten
            scope = dict(scope, headers=[(k, v) for k, v in scope.get("headers") or [] if k != b"content-length"]
                         + [(b"content-length", str(len(body)).encode())])
        return None, scope, _replay(body, receive)

    def _is_handed_out(self, path: str) -> bool:
        """Whether a request may name ``path``: an uploaded file, or a file the page serves (never a folder: gradio
        would record it as a file of its own and fail to remove it at shutdown)."""
        try:
            resolved = Path(path).resolve()
            is_file = resolved.is_file()
        except (OSError, ValueError, RuntimeError):
            return False
        return is_file and any(resolved.is_relative_to(root) for root in self.handed_out)

    def _store(self, files: list[tuple[bytes, str]]) -> list[str]:
        """Write embedded files into the upload folder (each in a folder named by its content's hash, as
        gradio keeps uploads), room made as for an upload; all or none.

        Raises:
            Refused: 507 when the folder cannot make room for them all.
        """
        with self._lock:
            if not make_room(self.folder, sum(len(data) for data, _ in files), self.max_bytes):
                raise Refused(507, self._full())
            paths: list[Path] = []
            try:
                for data, name in files:
                    paths.append(self.folder / hashlib.sha256(data).hexdigest() / name)
                    atomic_write(paths[-1], lambda tmp, data=data: Path(tmp).write_bytes(data))
            except OSError as exc:
                for path in paths:
                    path.unlink(missing_ok=True)
                log.warning("an embedded file could not be stored: %s", exc)
                raise Refused(507, self._full()) from None
            return [str(path.resolve()) for path in paths]


def _at_most(declared: int, receive):
    """An ASGI ``receive`` that ends the request (as a client that went away) past ``declared`` body bytes."""
    received = 0

    async def bounded():
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        return {"type": "http.disconnect"} if received > declared else message

    return bounded


def _replay(body: bytes, receive, first: dict | None = None):
    """An ASGI ``receive`` giving ``first`` (or ``body`` as the whole request), then the client's messages."""
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return first or {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _respond(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
