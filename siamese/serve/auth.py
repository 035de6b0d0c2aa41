"""API keys with scopes, stored hashed: the file `siamese keys add` writes and the service reads.

A key is a random 256-bit token shown once when created; the file keeps only its SHA-256 (a
fast hash suffices for random keys of this length: there is nothing to guess a dictionary word
from). A request sends its key as `x-api-key: KEY` or `Authorization: Bearer KEY`.

Scopes: "verify" (verify, identify, embed), "enroll" (enrol and delete identities), "admin"
(everything, the metrics included).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from siamese.errors import ConfigError, DataError

SCOPES = ("verify", "enroll", "admin")
PREFIX = "sia_"


@dataclass(frozen=True)
class ApiKey:
    """One key as stored: its name, the SHA-256 of the key and its scopes."""

    name: str
    sha256: str
    scopes: tuple[str, ...]
    created: str = ""

    def allows(self, scope: str) -> bool:
        """Whether this key may call an endpoint that needs `scope` ("admin" allows everything)."""
        return scope in self.scopes or "admin" in self.scopes


def digest(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


class KeyStore:
    """The keys of one key file."""

    def __init__(self, keys: Sequence[ApiKey] = ()) -> None:
        self.keys = list(keys)

    @classmethod
    def load(cls, path: str | os.PathLike) -> KeyStore:
        """Read a key file (a missing file is an empty store only for `add`; see `read`).

        Raises:
            DataError: unreadable or malformed file.
        """
        p = Path(path)
        if not p.exists():
            return cls()
        try:
            raw = json.loads(p.read_text())
            return cls(
                [
                    ApiKey(k["name"], k["sha256"], tuple(k["scopes"]), k.get("created", ""))
                    for k in raw["keys"]
                ]
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"cannot read the key file {p}: {exc}") from exc

    @classmethod
    def read(cls, path: str | os.PathLike) -> KeyStore:
        """Read the key file a service uses.

        Raises:
            DataError: missing, unreadable or empty file.
        """
        if not Path(path).is_file():
            raise DataError(
                f"no key file at {path}: create one with `siamese keys add {path} --scope verify`"
            )
        store = cls.load(path)
        if not store.keys:
            raise DataError(f"{path} holds no keys: add one with `siamese keys add {path} --scope verify`")
        return store

    def save(self, path: str | os.PathLike) -> None:
        """Write the file (readable by its owner only), replacing it in one rename."""
        p = Path(path)
        tmp = p.with_name(f".{p.name}.{secrets.token_hex(4)}.tmp")
        body: dict[str, Any] = {"keys": [k.__dict__ | {"scopes": list(k.scopes)} for k in self.keys]}
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(body, f, indent=2)
        os.replace(tmp, p)

    def add(self, name: str, scopes: Sequence[str]) -> str:
        """Create a key; returns it (the only time it is seen in clear).

        Raises:
            ConfigError: an empty or taken name, or an unknown scope.
        """
        if not name or any(k.name == name for k in self.keys):
            raise ConfigError(
                f"a key needs a new, non-empty name; {name!r} is {'taken' if name else 'empty'}"
            )
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown or not scopes:
            raise ConfigError(f"scopes are {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}")
        key = PREFIX + secrets.token_urlsafe(32)
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.keys.append(ApiKey(name, digest(key), tuple(dict.fromkeys(scopes)), created))
        return key

    def remove(self, name: str) -> None:
        """Revoke the key called `name`.

        Raises:
            ConfigError: no such key.
        """
        if not any(k.name == name for k in self.keys):
            raise ConfigError(f"no key called {name!r}")
        self.keys = [k for k in self.keys if k.name != name]

    def find(self, key: str) -> ApiKey | None:
        """The stored key matching `key`, compared in constant time, or None."""
        presented = digest(key)
        found = None
        for stored in self.keys:
            if hmac.compare_digest(stored.sha256, presented):
                found = stored
        return found
