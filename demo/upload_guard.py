"""A cap on gradio's upload folder: anonymous posts to the upload route cannot fill the disk.

Gradio keeps every file posted to ``/gradio_api/upload`` (query images, zips) in its upload folder
(``GRADIO_TEMP_DIR``, default ``<temp>/gradio``) until its clean-up (:data:`demo.ui.DELETE_CACHE`).
:class:`UploadGuard` is an ASGI middleware in front of that route: a post must declare its length
(``Content-Length``, as browsers and ``gradio_client`` do) and, when the folder would then hold more
than ``max_bytes``, the oldest files there (at least :data:`MIN_AGE_S` old: a visitor's current
query stays) are deleted to make room; when that is not enough the post is refused with 507 and a
one-line message. Uploaded galleries are removed as soon as they are read (:mod:`demo.upload_ui`).
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)
UPLOAD_ROUTE = "/gradio_api/upload"
MIN_AGE_S = 600.0  # files younger than this are never deleted to make room (a search in progress uses them)


def gradio_upload_folder() -> str:
    """Where gradio keeps uploaded files (as ``gradio.utils.get_upload_folder``)."""
    from gradio.utils import get_upload_folder

    return get_upload_folder()


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


class UploadGuard:
    """ASGI middleware capping gradio's upload folder at ``max_bytes`` (see the module's docstring)."""

    def __init__(self, app, max_bytes: int, folder: str | os.PathLike | None = None):
        self.app, self.max_bytes = app, max_bytes
        self.folder = Path(folder or gradio_upload_folder())
        self._lock = threading.Lock()  # one clean-up at a time

    async def __call__(self, scope, receive, send):
        if scope.get("type") == "http" and scope.get("method") == "POST" and scope.get("path", "").endswith(
                UPLOAD_ROUTE):
            refusal = await self._check(dict(scope.get("headers") or []))
            if refusal is not None:
                status, message = refusal
                log.info("upload refused: %s", message)
                await _respond(send, status, message)
                return
        await self.app(scope, receive, send)

    async def _check(self, headers: dict) -> tuple[int, str] | None:
        from anyio import to_thread

        length = headers.get(b"content-length", b"").decode("latin-1").strip()
        if not length.isdigit():
            return 411, "an upload must declare its length (Content-Length)."
        incoming = int(length)
        if incoming > self.max_bytes:
            return 413, f"an upload of {incoming / 2**20:.0f} MB is over this server's upload space."

        def room() -> bool:
            with self._lock:
                return make_room(self.folder, incoming, self.max_bytes)

        if await to_thread.run_sync(room):
            return None
        return 507, (f"this server's upload space ({self.max_bytes / 2**20:.0f} MB) is full: try again in a few "
                     "minutes.")


async def _respond(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
