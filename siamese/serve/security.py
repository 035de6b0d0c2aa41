"""Who may call what: the key file (re-read when it changes) and the scope check every endpoint uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from siamese.serve.auth import KeyStore


class KeyFile:
    """The key file, read again when it changes (a key added or revoked takes effect at once)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: float | None = None
        self._store = KeyStore.read(path)
        self._stamp = path.stat().st_mtime

    def store(self) -> KeyStore:
        try:
            stamp = self.path.stat().st_mtime
        except OSError:
            return KeyStore()  # the file is gone: no key is valid any more
        if stamp != self._stamp:
            self._store, self._stamp = KeyStore.load(self.path), stamp
        return self._store


_api_key = APIKeyHeader(name="x-api-key", auto_error=False, description="an API key (`siamese keys add`)")
_bearer = HTTPBearer(auto_error=False, description="the API key as a bearer token")


def require(scope: str) -> Any:
    """A dependency admitting keys with `scope` (401 without a valid key, 403 without the scope)."""

    def check(
        request: Request,
        api_key: str | None = Depends(_api_key),
        bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    ) -> None:
        keys: KeyFile | None = request.app.state.keys
        if keys is None:
            return
        key = api_key or (bearer.credentials if bearer is not None else None)
        challenge = {"WWW-Authenticate": "Bearer"}
        if not key:
            raise HTTPException(
                401, "an API key is required: send x-api-key or Authorization: Bearer", challenge
            )
        found = keys.store().find(key)
        if found is None:
            raise HTTPException(401, "unknown or revoked API key", challenge)
        if not found.allows(scope):
            raise HTTPException(403, f"this key lacks the {scope!r} scope")

    return Depends(check)
