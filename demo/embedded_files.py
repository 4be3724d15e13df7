"""Files embedded in a request's JSON: taken in as uploads are, or refused before gradio sees them.

Besides its upload route, gradio takes a file from the JSON of an API call in two more ways: a
``data:`` URL (base64) as a file's ``url`` or ``path``, which ``gr.Image`` decodes whole with PIL and
writes into its upload folder, and an ``http(s)://`` URL as a file's ``path``, which gradio
downloads into that folder. Neither went through the upload route's limits. :func:`take_in_json`
rewrites the JSON of a request before gradio reads it (:class:`demo.upload_guard.UploadGuard` calls
it for every post but an upload): each ``data:`` URL becomes a file in the upload folder, written by
the guard under the same size and total limits as a post to the upload route (and then decoded by
the same decoder, with its format and pixel limits), the file referenced by its path as an upload
is; a URL to fetch is refused. A refused request leaves nothing on disk.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

FILE_META = {"_type": "gradio.FileData"}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_MIME_EXT = re.compile(r"^data:[\w.+-]+/([A-Za-z0-9]{1,8})[;,]")
Store = Callable[[list[tuple[bytes, str]]], list[str]]  # [(a file's bytes, its name)] -> their paths, all or none


class Refused(ValueError):
    """A request refused before gradio reads it: an HTTP status and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def take_in_json(body: bytes, max_file_bytes: int, store: Store,
                 handed_out: Callable[[str], bool] = lambda path: True) -> bytes | None:
    """``body`` with its embedded files written by ``store`` (all or none) and each referenced by its path;
    None when the body holds none (or is not JSON: gradio answers it as it does any such request).

    Raises:
        Refused: a file over ``max_file_bytes`` (413), a data: URL that is not base64 (400), a file
            given as a URL for the server to fetch (400), JSON nested too deeply to read (400); or whatever
            ``store`` refuses.
    """
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    except RecursionError:
        raise Refused(400, "the request's JSON is nested too deeply.") from None
    found: list[dict] = []
    try:
        _collect(payload, found, handed_out)
    except RecursionError:
        raise Refused(400, "the request's JSON is nested too deeply.") from None
    if not found:
        return None
    files = [_file_of(item, max_file_bytes) for item in found]  # every check before anything is written
    for item, path, (data, _) in zip(found, store(files), files):
        for key in ("url", "size", "mime_type", "is_stream"):
            item.pop(key, None)
        item.update(path=path, meta=dict(FILE_META), size=len(data))
    return json.dumps(payload).encode()


def _collect(node: Any, found: list[dict], handed_out: Callable[[str], bool]) -> None:
    """The dicts under ``node`` that carry a file to take in: a data: URL or a URL as their path / url.

    Raises:
        Refused: a file given by a local path that this server did not hand out (400; the path is not echoed).
    """
    if isinstance(node, list):
        for value in node:
            _collect(value, found, handed_out)
    elif isinstance(node, dict):
        path = node.get("path")
        if _is_data_url(path) or _is_data_url(node.get("url")) or _is_remote(path):
            found.append(node)
            return
        if isinstance(path, str) and isinstance(node.get("meta"), dict) and not handed_out(path):
            raise Refused(400, "a file given by a path that this server did not hand out: upload it instead "
                               "(gradio_client's handle_file does).")
        for value in node.values():
            _collect(value, found, handed_out)


def _is_data_url(value: Any) -> bool:
    return isinstance(value, str) and value[:5].lower() == "data:"


def _is_remote(value: Any) -> bool:
    return isinstance(value, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value.strip()) is not None


def _file_of(item: dict, max_file_bytes: int) -> tuple[bytes, str]:
    """The bytes and a file name of ``item``'s embedded file."""
    if _is_remote(item.get("path")):
        raise Refused(400, "a file given as a URL is not fetched by this server: send the file itself "
                           "(gradio_client's handle_file uploads it).")
    url = item["path"] if _is_data_url(item.get("path")) else item["url"]
    data = _decoded(url, max_file_bytes)
    return data, _file_name(item.get("orig_name"), url, data)


def _decoded(url: str, max_file_bytes: int) -> bytes:
    """The bytes of a base64 data: URL, refused over ``max_file_bytes`` before decoding."""
    head, _, encoded = url.partition(",")
    if not head.lower().endswith(";base64"):
        raise Refused(400, "a data: URL must be base64 (data:image/png;base64,...).")
    if len(encoded) * 3 // 4 - 2 > max_file_bytes:
        raise Refused(413, f"a file of {len(encoded) * 3 / 4 / 2**20:.0f} MB is over this server's limit of "
                           f"{max_file_bytes / 2**20:g} MB per file.")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(400, "a data: URL holds no valid base64.") from None
    if len(data) > max_file_bytes:  # the estimate above is exact up to the padding
        raise Refused(413, f"a file of {len(data) / 2**20:.0f} MB is over this server's limit of "
                           f"{max_file_bytes / 2**20:g} MB per file.")
    return data


def _file_name(orig_name: Any, url: str, data: bytes) -> str:
    """A plain file name for it: its original name's characters that are safe, else "upload.<ext>"."""
    name = _SAFE_NAME.sub("_", str(orig_name).replace("\\", "/").rsplit("/", 1)[-1])[-100:] if orig_name else ""
    if name.strip("._"):
        return name
    found = _MIME_EXT.match(url)
    return f"upload-{hashlib.sha256(data).hexdigest()[:8]}.{found[1].lower() if found else 'bin'}"
