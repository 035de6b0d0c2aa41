"""The FastAPI application: `create_app(config)` builds it; `siamese serve` runs it with uvicorn.

The model and the gallery load once, in the app's lifespan. Every endpoint but the health checks
and the page needs an API key with the right scope (unless served with --no-auth on loopback).
Errors are one line in `{"detail": ...}`, never a traceback; uploads are never written to disk or
logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from siamese.errors import CheckpointError, ConfigError, DataError, ImageError, SiameseError
from siamese.serve.config import ServeConfig
from siamese.serve.metrics import Metrics
from siamese.serve.routes import router
from siamese.serve.security import KeyFile, require
from siamese.serve.service import Service

logger = logging.getLogger(__name__)

API_PREFIX = "/v1/"
NO_STORE = [(b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")]


class _Guard:
    """Pure ASGI middleware: the concurrency limit (503 + Retry-After), metrics per request, and
    no-store/nosniff headers on API answers."""

    def __init__(self, app: ASGIApp, limit: int, metrics: Metrics) -> None:
        self.app = app
        self.limit = limit
        self.metrics = metrics
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self.metrics.rejected.inc()
            body = b'{"detail":"the service is busy (%d requests in flight): retry in a second"}' % self.limit
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"), *NO_STORE],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        status = 500
        start = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *NO_STORE]
            await send(message)

        self.in_flight += 1
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()
            route = scope.get("route")
            self.metrics.observe_request(getattr(route, "path", "other"), status, time.perf_counter() - start)


_STATUS: list[tuple[type[SiameseError], int]] = [
    (ImageError, 422),
    (DataError, 409),
    (CheckpointError, 409),
    (ConfigError, 422),
]


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _install_errors(app: FastAPI) -> None:
    async def siamese_error(request: Request, exc: Exception) -> JSONResponse:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 422)
        return JSONResponse({"detail": _one_line(str(exc))}, status)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        first = errors[0] if errors else {"loc": (), "msg": str(exc)}
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path"))
        message = str(first.get("msg"))
        return JSONResponse({"detail": _one_line(f"{where}: {message}" if where else message)}, 422)

    async def internal(request: Request, exc: Exception) -> JSONResponse:
        logger.error("internal error on %s %s: %r", request.method, request.url.path, exc, exc_info=exc)
        return JSONResponse({"detail": "internal error: the service log has the details"}, 500)

    app.add_exception_handler(SiameseError, siamese_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(Exception, internal)


def create_app(config: ServeConfig) -> FastAPI:
    """The service for `config` (its model and gallery load when the app starts).

    Raises:
        SiameseError: a missing or empty key file.
    """
    metrics = Metrics()
    service = Service(config, metrics)
    keys = None if config.no_auth else KeyFile(config.keys)  # type: ignore[arg-type]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loads = not service.ready  # `siamese serve` loads (and closes) it itself, to fail in one line
        if loads:
            service.load()
        try:
            yield
        finally:
            if loads:
                service.close()

    app = FastAPI(
        title="siamese",
        summary="Face and signature verification and identification with Siamese networks.",
        version=_version(),
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.service = service
    app.state.keys = keys
    app.state.metrics = metrics
    _install_errors(app)
    app.include_router(router)
    _add_probes(app, service, metrics)
    if config.cors:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["x-api-key", "authorization", "content-type"],
        )
    app.add_middleware(_Guard, limit=config.limit_concurrency, metrics=metrics)
    return app


def _add_probes(app: FastAPI, service: Service, metrics: Metrics) -> None:
    @app.get("/healthz", tags=["health"], summary="Alive")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Model (and gallery) loaded", responses={503: {}})
    def readyz() -> JSONResponse:
        if not service.ready:
            return JSONResponse({"status": "loading"}, 503)
        gallery = service.gallery
        return JSONResponse(
            {
                "status": "ready",
                "fingerprint": service.fingerprint,
                "gallery_size": 0 if gallery is None else gallery.size,
            }
        )

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", dependencies=[require("admin")])
    def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        html = resources.files("siamese.serve").joinpath("static/index.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers={"cache-control": "no-store", "x-content-type-options": "nosniff"})


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("siamese")
    except PackageNotFoundError:
        return "0"
