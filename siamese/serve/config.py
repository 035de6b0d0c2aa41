"""How `siamese serve` runs: one frozen dataclass the CLI fills and the app factory reads."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from siamese.errors import ConfigError

MIB = 1024 * 1024


@dataclass(frozen=True)
class ServeConfig:
    """Everything the service needs to start.

    Attributes:
        model: run directory, checkpoint stem or file.
        onnx: run the encoder from this ONNX export of `model` (onnxruntime) instead of PyTorch.
        gallery: the gallery folder (created by the first enrolment when it holds none yet), or None.
        calibration: a labelled folder calibrating a gallery created by the service (default: the
            model's run's validation identities).
        host: the address bound (only for the auth check; uvicorn binds it).
        keys: the API-key file (`siamese keys add`); None only with `no_auth`.
        no_auth: serve without keys (refused unless `host` is a loopback address).
        device: where the model runs.
        max_batch: most images in one forward pass of the inference worker.
        max_wait_ms: how long the worker waits to fill a batch (0: no micro-batching).
        threads: torch and BLAS threads of the inference worker.
        limit_concurrency: requests in flight beyond which the service answers 503.
        max_file_bytes: largest image accepted (encoded).
        max_request_bytes: largest request body accepted.
        max_pixels: largest image accepted once decoded (width x height), against decompression bombs.
        cors: origins allowed by CORS (none: CORS off).
        detect: crop the largest face (OpenCV Haar cascade) before embedding.
        default_k: candidates returned by identify when the request does not say.
    """

    model: Path
    onnx: Path | None = None
    gallery: Path | None = None
    calibration: Path | None = None
    host: str = "127.0.0.1"
    keys: Path | None = None
    no_auth: bool = False
    device: str = "auto"
    max_batch: int = 8
    max_wait_ms: float = 2.0
    threads: int = 1
    limit_concurrency: int = 64
    max_file_bytes: int = 5 * MIB
    max_request_bytes: int = 20 * MIB
    max_pixels: int = 40_000_000
    cors: tuple[str, ...] = field(default_factory=tuple)
    detect: bool = False
    default_k: int = 5

    def __post_init__(self) -> None:
        if self.no_auth and self.keys is not None:
            raise ConfigError("--no-auth and --keys contradict each other: choose one")
        if not self.no_auth and self.keys is None:
            raise ConfigError(
                "the service needs API keys: create some with `siamese keys add KEYS.json --scope verify` "
                "and pass --keys KEYS.json (or --no-auth on a loopback host)"
            )
        if self.no_auth and not is_loopback(self.host):
            raise ConfigError(f"--no-auth serves only on a loopback host (127.0.0.1, ::1), not {self.host}")
        for name in ("max_batch", "threads", "limit_concurrency", "max_file_bytes", "max_request_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ConfigError(f"--max-wait-ms must be >= 0, got {self.max_wait_ms}")
        if self.max_pixels < 1:
            raise ConfigError(f"--max-pixels must be >= 1, got {self.max_pixels}")


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address ("localhost" counts; a name that resolves elsewhere does not).

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0"), is_loopback("localhost")
    (True, True, False, True)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
