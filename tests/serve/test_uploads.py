"""Uploads against a real server: refused before the body is buffered, never written to disk, never
logged; the concurrency limit answers 503 with Retry-After."""

from __future__ import annotations

import asyncio
import base64
import logging
import select
import socket
import tempfile
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from siamese.serve import ServeConfig, create_app
from siamese.serve.app import _Guard
from siamese.serve.metrics import Metrics
from tests.serve.conftest import files, images_of, served

FIFTY_MIB = 50 * 2**20


def _response_head(sock: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        if not chunk:
            break
        head += chunk
    return head


def test_a_large_body_is_refused_before_it_is_read(tiny_run, tmp_path: Path) -> None:
    run, _ = tiny_run
    with served(create_app(ServeConfig(model=run, no_auth=True))) as url:
        port = int(url.rsplit(":", 1)[1])
        # a declared 50 MiB body: refused on its headers, not one byte of it sent
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                b"Content-Length: %d\r\n\r\n" % FIFTY_MIB
            )
            assert b" 413 " in _response_head(sock).split(b"\r\n")[0]
        # an undeclared (chunked) one: refused once the limit is passed, long before 50 MiB
        sent = 0
        chunk = b"x" * 65536
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            answered = False
            try:
                while sent < FIFTY_MIB and not answered:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    sent += len(chunk)
                    answered = bool(select.select([sock], [], [], 0)[0])
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered and closed the connection
            head = _response_head(sock)
        assert b" 413 " in head.split(b"\r\n")[0]
        assert sent < FIFTY_MIB


def test_uploads_never_touch_the_disk_or_the_logs(
    make_client, tiny_run, tmp_path: Path, caplog, monkeypatch
) -> None:
    _, data = tiny_run
    spool = tmp_path / "tmp"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))  # where any spooled upload would land
    noise = np.random.default_rng(0).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
    buffer = BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    big = buffer.getvalue()  # ~3 MiB: over Starlette's 1 MiB in-memory spool
    assert len(big) > 2 * 2**20
    keyfile = tmp_path / "keys.json"
    from siamese.serve.auth import KeyStore

    store = KeyStore()
    key = store.add("k", ["admin"])
    store.save(keyfile)
    caplog.set_level(logging.DEBUG)
    client = make_client(keys=keyfile)
    small = images_of(data, "id00")[0]
    sent = {"image_a": ("secret-name.png", big), "image_b": ("b.png", small.read_bytes())}
    r = client.post("/v1/verify", files=sent, headers={"x-api-key": key})
    assert r.status_code == 200, r.text
    enrol = client.post(
        "/v1/enroll", data={"identity": "someone"}, files=files("images", [small]), headers={"x-api-key": key}
    )
    assert enrol.status_code == 200
    client.post("/v1/verify", files={"image_a": ("x.png", b"not an image")}, headers={"x-api-key": key})
    assert list(spool.iterdir()) == []
    logged = caplog.text
    assert key not in logged and "secret-name" not in logged
    assert base64.b64encode(big[100:160]).decode()[:40] not in logged
    gallery_files = " ".join(p.name for p in (tmp_path / "g").rglob("*"))
    assert ".png" not in gallery_files and "secret" not in (tmp_path / "g" / "gallery.json").read_text()


def test_beyond_the_concurrency_limit_the_answer_is_503_with_retry_after() -> None:
    release = asyncio.Event()

    async def slow_app(scope, receive, send) -> None:
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def call(guard: _Guard, path: str) -> tuple[int, dict[bytes, bytes]]:
        answer: dict = {}

        async def send(message) -> None:
            if message["type"] == "http.response.start":
                answer["status"], answer["headers"] = message["status"], dict(message["headers"])

        async def receive() -> dict:
            return {"type": "http.request", "body": b""}

        await guard({"type": "http", "path": path, "method": "POST"}, receive, send)
        return answer["status"], answer["headers"]

    async def scenario() -> list:
        guard = _Guard(slow_app, limit=2, metrics=Metrics())
        first = [asyncio.create_task(call(guard, "/v1/verify")) for _ in range(2)]
        await asyncio.sleep(0.05)
        refused = await call(guard, "/v1/identify")
        release.set()
        health = await call(guard, "/healthz")  # not counted: only the API is limited
        return [refused, *(await asyncio.gather(*first)), health]

    refused, *served_ok, health = asyncio.run(scenario())
    assert refused[0] == 503 and refused[1][b"retry-after"] == b"1"
    assert [s for s, _ in served_ok] == [200, 200] and health[0] == 200
