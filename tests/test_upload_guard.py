"""The upload guard as an ASGI middleware, driven directly (no server): what it lets through to gradio."""
from __future__ import annotations

import asyncio

import pytest

from demo.embedded_files import Refused, take_in_json
from demo.upload_guard import UPLOAD_ROUTE, UploadGuard

MB = 2**20


class Recorder:
    """A stand-in for gradio: reads the whole body, records what it got, answers 200 (or waits first)."""

    def __init__(self, hold: asyncio.Event | None = None):
        self.bodies: list[bytes] = []
        self.hold = hold

    async def __call__(self, scope, receive, send):
        if self.hold is not None:
            await self.hold.wait()
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.bodies.append(b"<disconnected>")
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def post(app, path: str, chunks: list[bytes], headers: dict[bytes, bytes]) -> int:
    """POST ``chunks`` to ``app``; the status it answered."""
    scope = {"type": "http", "method": "POST", "path": path, "headers": list(headers.items())}
    pending = list(chunks)
    status = []

    async def receive():
        if pending:
            chunk = pending.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0] if status else 0


def test_a_chunked_upload_is_refused_even_with_a_length(tmp_path):
    """Once: Content-Length 10 and Transfer-Encoding chunked; h11 reads it chunked, 5 MB went past the 1 MB cap."""
    gradio = Recorder()
    guard = UploadGuard(gradio, max_bytes=MB, folder=tmp_path)
    headers = {b"content-length": b"10", b"transfer-encoding": b"chunked"}
    assert asyncio.run(post(guard, UPLOAD_ROUTE, [b"x" * MB] * 5, headers)) == 411
    assert gradio.bodies == []


def test_a_body_longer_than_declared_is_cut_off(tmp_path):
    gradio = Recorder()
    guard = UploadGuard(gradio, max_bytes=MB, folder=tmp_path)
    asyncio.run(post(guard, UPLOAD_ROUTE, [b"x" * 10, b"y" * MB], {b"content-length": b"10"}))
    assert gradio.bodies == [b"<disconnected>"]
    assert guard._arriving == 0  # released


def test_uploads_still_arriving_count_against_the_folder(tmp_path):
    """Once: posts admitted at the same time each saw the same free room, and together overshot the cap."""
    async def three_at_once():
        hold = asyncio.Event()
        gradio = Recorder(hold)
        guard = UploadGuard(gradio, max_bytes=MB, folder=tmp_path)
        length = {b"content-length": str(400 * 1024).encode()}
        tasks = [asyncio.create_task(post(guard, UPLOAD_ROUTE, [b"x" * 400 * 1024], length)) for _ in range(3)]
        while sum(t.done() for t in tasks) < 1:  # the third is refused while the first two are arriving
            await asyncio.sleep(0.01)
        hold.set()
        return sorted(await asyncio.gather(*tasks)), guard._arriving

    statuses, arriving = asyncio.run(three_at_once())
    assert statuses == [200, 200, 507] and arriving == 0


def test_recordings_are_refused(tmp_path):
    gradio = Recorder()
    guard = UploadGuard(gradio, max_bytes=MB, folder=tmp_path)
    assert asyncio.run(post(guard, "/gradio_api/process_recording", [b"x"], {b"content-length": b"1"})) == 404
    assert gradio.bodies == []


def test_json_nested_too_deeply_is_a_400_not_a_traceback(tmp_path):
    with pytest.raises(Refused, match="nested too deeply") as info:
        take_in_json(b"[" * 100_000 + b"]" * 100_000, MB, lambda files: [])
    assert info.value.status == 400
    gradio = Recorder()
    guard = UploadGuard(gradio, max_bytes=MB, folder=tmp_path)
    body = b"[" * 100_000 + b"]" * 100_000
    assert asyncio.run(post(guard, "/gradio_api/queue/join", [body], {b"content-length": str(len(body)).encode()})) \
        == 400


def test_large_bodies_read_at_once_have_a_budget(tmp_path):
    """Each post may hold up to max_body_bytes while it is read; all together at most BODY_BUDGET_FILES times that."""
    from demo import upload_guard

    gradio = Recorder()
    guard = UploadGuard(gradio, max_bytes=MB, folder=tmp_path, max_file_bytes=1024)
    limit = upload_guard.max_body_bytes(1024)
    guard._buffered = upload_guard.BODY_BUDGET_FILES * limit  # as if others were being read
    assert asyncio.run(post(guard, "/gradio_api/queue/join", [b"{}"], {b"content-length": b"2"})) == 503
    guard._buffered = 0
    assert asyncio.run(post(guard, "/gradio_api/queue/join", [b"{}"], {b"content-length": b"2"})) == 200
    assert guard._buffered == 0 and gradio.bodies == [b"{}"]


def test_multipart_to_a_route_that_takes_json_is_a_415(tmp_path):
    """Once (the second probe): a binary multipart body to /gradio_api/call/* was a 500 with an ASGI traceback."""
    gradio = Recorder()
    guard = UploadGuard(gradio, max_bytes=MB, folder=tmp_path)
    headers = {b"content-type": b"multipart/form-data; boundary=x", b"content-length": b"4"}
    assert asyncio.run(post(guard, "/gradio_api/call/search_json", [b"\x89PNG"], headers)) == 415
    assert gradio.bodies == []


def test_a_path_the_server_did_not_hand_out_is_refused_without_naming_it(tmp_path):
    """Once (the second probe): gradio's refusal of such a path named it, and the blocked paths, to the visitor."""
    import json

    uploads, served, secret = tmp_path / "uploads", tmp_path / "served", tmp_path / "model.safetensors"
    for folder in (uploads, served):
        folder.mkdir()
    (uploads / "q.png").write_bytes(b"x")
    (served / "e.png").write_bytes(b"x")
    secret.write_bytes(b"x")
    gradio = Recorder()
    guard = UploadGuard(gradio, max_bytes=MB, folder=uploads, served=[str(served)])
    meta = {"_type": "gradio.FileData"}

    def status(path: str) -> int:
        body = json.dumps({"data": [{"path": path, "meta": meta}, None, None, 3, "unknown"]}).encode()
        return asyncio.run(post(guard, "/gradio_api/call/search_json", [body],
                                {b"content-length": str(len(body)).encode()}))

    assert status(str(secret)) == 400 and status("/etc/passwd") == 400
    assert status(str(uploads / "q.png") + "/../../model.safetensors") == 400
    assert status(str(uploads / "q.png")) == 200 and status(str(served / "e.png")) == 200
    assert status(str(uploads)) == 400  # a folder, even the upload folder (gradio would record it as a file)
    with pytest.raises(Refused, match="did not hand out: upload it instead") as info:
        take_in_json(json.dumps([{"path": str(secret), "meta": meta}]).encode(), MB, lambda f: [],
                     lambda p: False)
    assert str(secret) not in str(info.value)
