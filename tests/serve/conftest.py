"""Fixtures of the service tests: a served tiny model (TestClient), a real uvicorn server in a thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from siamese.serve import ServeConfig, create_app  # noqa: E402


@pytest.fixture
def make_client(tiny_run, tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """`make_client(**config)`: a started TestClient of the tiny run's service (gallery `tmp/g`, no auth
    unless `keys=` is given); every client made is closed at teardown."""
    run, _ = tiny_run
    opened: list[TestClient] = []

    def make(**options: Any) -> TestClient:
        options.setdefault("gallery", tmp_path / "g")
        if "keys" not in options:
            options.setdefault("no_auth", True)
        client = TestClient(create_app(ServeConfig(model=run, **options)))
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in reversed(opened):  # last opened first: each gives back the thread settings it found
        client.__exit__(None, None, None)


def images_of(data: Path, identity: str) -> list[Path]:
    """The images of one identity of the tiny run's data, in order."""
    return sorted((data / identity).glob("*.png"))


def files(field: str, paths: list[Path]) -> list[tuple[str, tuple[str, bytes, str]]]:
    """Multipart files for httpx: every path under the same field name."""
    return [(field, (p.name, p.read_bytes(), "image/png")) for p in paths]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """Run `app` with uvicorn in a thread on a free loopback port; yields its base URL."""
    import httpx
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # handed to uvicorn: no race for the port
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert thread.is_alive(), "the service stopped while starting (see the log above)"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the service at {url} was not ready within 60 s")
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
