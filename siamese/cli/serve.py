"""`siamese serve`: the HTTP service and its page; `siamese keys add|list|remove`: its API keys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from siamese.cli.common import console, err_console, model_or_latest, user_errors
from siamese.cli.options import (
    MODEL_PANEL,
    PROTOCOL_PANEL,
    RUN_PANEL,
    SERVICE_PANEL,
    CalibrationOpt,
    DetectOpt,
    DeviceOpt,
    ModelOpt,
    option,
)
from siamese.errors import ConfigError

GalleryServeOpt = Annotated[
    Path | None,
    option(
        "Gallery folder to identify against and enrol into (created by the first enrolment if empty).",
        PROTOCOL_PANEL,
        show_default=False,
    ),
]
HostOpt = Annotated[str, option("Address to bind (only loopback unless you mean it).", SERVICE_PANEL)]
PortOpt = Annotated[int, option("Port to listen on.", SERVICE_PANEL)]
KeysOpt = Annotated[
    Path | None,
    option(
        "API-key file (`siamese keys add FILE`); every endpoint but the health checks needs a key.",
        SERVICE_PANEL,
    ),
]
NoAuthOpt = Annotated[
    bool,
    option(
        "Serve without API keys (refused unless --host is a loopback address).", SERVICE_PANEL, "--no-auth"
    ),
]
MaxBatchOpt = Annotated[
    int, option("Most images in one forward pass of the inference worker.", SERVICE_PANEL)
]
MaxWaitOpt = Annotated[
    float, option("Milliseconds the worker waits to fill a batch (0: no micro-batching).", SERVICE_PANEL)
]
ThreadsOpt = Annotated[int, option("Torch and BLAS threads of the inference worker.", SERVICE_PANEL)]
ConcurrencyOpt = Annotated[
    int, option("Requests in flight beyond which the service answers 503 with Retry-After.", SERVICE_PANEL)
]
MaxFileOpt = Annotated[float, option("Largest image accepted, in MiB (encoded).", SERVICE_PANEL)]
MaxRequestOpt = Annotated[float, option("Largest request body accepted, in MiB.", SERVICE_PANEL)]
MaxPixelsOpt = Annotated[
    float, option("Largest image accepted once decoded, in megapixels (decompression bombs).", SERVICE_PANEL)
]
CorsOpt = Annotated[
    list[str] | None,
    option("Allow browser calls from this origin (repeatable); CORS is off without it.", SERVICE_PANEL),
]
AccessLogOpt = Annotated[bool, option("Log each request line (never bodies, keys or images).", RUN_PANEL)]


OnnxOpt = Annotated[
    Path | None,
    option(
        "Run the encoder from this ONNX export (`siamese export --format onnx`; the onnx extra) "
        "\\[default: --model's checkpoint, the export's own when --model is not given].",
        MODEL_PANEL,
        show_default=False,
    ),
]


def serve_command(
    model: ModelOpt = None,
    onnx: OnnxOpt = None,
    gallery: GalleryServeOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    keys: KeysOpt = None,
    no_auth: NoAuthOpt = False,
    calibration: CalibrationOpt = None,
    device: DeviceOpt = "auto",
    max_batch: MaxBatchOpt = 8,
    max_wait_ms: MaxWaitOpt = 2.0,
    threads: ThreadsOpt = 1,
    limit_concurrency: ConcurrencyOpt = 64,
    max_file_mb: MaxFileOpt = 5.0,
    max_request_mb: MaxRequestOpt = 20.0,
    max_megapixels: MaxPixelsOpt = 40.0,
    cors: CorsOpt = None,
    detect: DetectOpt = False,
    access_log: AccessLogOpt = True,
) -> None:
    """Serve verify, identify, enrol and embed over HTTP (with a web page at /), until Ctrl-C.

    Needs the serve extra: pip install 'siamese\\[serve]'. API under /v1, OpenAPI at /docs, health at
    /healthz and /readyz, Prometheus metrics at /metrics.
    """
    with user_errors():
        uvicorn, create_app, config_class = _serve_modules()
        config = config_class(
            model=_model(model, onnx),
            onnx=onnx,
            gallery=gallery,
            calibration=calibration,
            host=host,
            keys=keys,
            no_auth=no_auth,
            device=device,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            threads=threads,
            limit_concurrency=limit_concurrency,
            max_file_bytes=int(max_file_mb * 2**20),
            max_request_bytes=int(max_request_mb * 2**20),
            max_pixels=int(max_megapixels * 1e6),
            cors=tuple(cors or ()),
            detect=detect,
        )
        app = create_app(config)
        err_console.print("loading the model" + (" and the gallery" if gallery else ""), highlight=False)
        app.state.service.load()  # errors here are one line, before the server starts
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    err_console.print(
        f"serving {config.model} at {where}  (page: {where}/, API docs: {where}/docs)", highlight=False
    )
    if no_auth:
        err_console.print("no API keys: anyone on this machine can call the service", highlight=False)
    try:
        uvicorn.run(app, host=host, port=port, access_log=access_log, log_level="info", server_header=False)
    finally:
        app.state.service.close()


def _model(model: Path | None, onnx: Path | None) -> Path:
    """--model, else the checkpoint the ONNX export was made from, else the latest run."""
    if model is None and onnx is not None:
        from siamese.inference.export import read_export_metadata

        return Path(read_export_metadata(onnx)["source_checkpoint"])
    return model_or_latest(model)


def _serve_modules() -> tuple:
    try:
        import uvicorn

        from siamese.serve import ServeConfig, create_app
    except ImportError as exc:
        raise ConfigError(
            f"serving needs the serve extra ({exc.name} is missing): pip install 'siamese[serve]'"
        ) from None
    return uvicorn, create_app, ServeConfig


keys_app = typer.Typer(no_args_is_help=True, help="Create, list and revoke the API keys of `siamese serve`.")

KeyFileArg = Annotated[Path, typer.Argument(help="The key file (JSON; keys are stored hashed).")]
KeyNameOpt = Annotated[str | None, typer.Option("--name", help="A name for the key [default: key-N].")]
ScopeOpt = Annotated[
    list[str],
    typer.Option(
        "--scope", help="verify (verify, identify, embed) | enroll (enrol, delete) | admin (all, metrics)."
    ),
]
KeyNameArg = Annotated[str, typer.Argument(help="The name of the key to revoke.")]


@keys_app.command("add")
def keys_add(file: KeyFileArg, scope: ScopeOpt, name: KeyNameOpt = None) -> None:
    """Create a key with these scopes and print it: it is shown once, only its hash is kept."""
    from siamese.serve.auth import KeyStore

    with user_errors():
        store = KeyStore.load(file)
        key = store.add(name or f"key-{len(store.keys) + 1}", scope)
        store.save(file)
    err_console.print(f"added key {store.keys[-1].name!r} ({', '.join(store.keys[-1].scopes)}) to {file}:")
    typer.echo(key)


@keys_app.command("list")
def keys_list(file: KeyFileArg) -> None:
    """The keys of a file: names, scopes, creation dates (never the keys)."""
    from siamese.serve.auth import KeyStore

    with user_errors():
        store = KeyStore.read(file)
    table = Table(show_edge=False)
    for column in ("name", "scopes", "created"):
        table.add_column(column)
    for key in store.keys:
        table.add_row(key.name, ", ".join(key.scopes), key.created)
    console.print(table)


@keys_app.command("remove")
def keys_remove(file: KeyFileArg, name: KeyNameArg) -> None:
    """Revoke a key (a running service stops accepting it at once)."""
    from siamese.serve.auth import KeyStore

    with user_errors():
        store = KeyStore.read(file)
        store.remove(name)
        store.save(file)
    err_console.print(f"revoked {name!r}; {len(store.keys)} keys left in {file}")
