"""Ed25519 signing keys on disk, the JWKS they publish, and access tokens they sign.

Keys live in one directory (AUTH_KEYS_DIR, default `<DATA_DIR>/auth-keys`), one PKCS#8 PEM
file per key named `ed25519-<unix seconds created>-<random hex>.pem`; the file stem is the
`kid`. The newest key signs. A key is retired when a newer one appears, and stays in the JWKS
for `retention` seconds after that (the access-token lifetime plus clock leeway), so every
token it signed can still be verified until it expires.

Rotation: `rotate_keys(directory)` (or `python -m services.auth rotate-keys`) writes a new
key. Running replicas notice the directory changed (its mtime) on their next signature or
JWKS read, so all replicas sharing the directory switch over together.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from services.platform.identity import UnknownKey

ALGORITHM: Final = "EdDSA"
_KEY_FILE = re.compile(r"ed25519-(?P<created>\d{10,})-[0-9a-f]{8,}\.pem")


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    created_at: int
    private_key: Ed25519PrivateKey

    def public_jwk(self) -> dict[str, str]:
        data: dict[str, Any] = OKPAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**data, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}


def rotate_keys(directory: Path, *, clock: Callable[[], float] = time.time) -> str:
    """Writes a new signing key into `directory` and returns its kid; it signs from now on."""
    with _locked(directory):
        return _write_key(directory, int(clock()))


def ensure_keys(directory: Path, *, clock: Callable[[], float] = time.time) -> None:
    """Generates the first key when `directory` has none (first start); safe across processes."""
    with _locked(directory):
        if not _key_files(directory):
            _write_key(directory, int(clock()))


class KeyRing:
    """The keys of one directory, reloaded when the directory changes."""

    def __init__(
        self,
        directory: Path,
        *,
        retention: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self._retention = retention
        self._clock = clock
        self._keys: list[SigningKey] = []  # newest first
        self._loaded_mtime: int | None = None
        self._lock = threading.Lock()
        ensure_keys(directory, clock=clock)
        self._reload_if_changed()

    @property
    def signing_key(self) -> SigningKey:
        self._reload_if_changed()
        return self._keys[0]

    def published(self) -> list[SigningKey]:
        """Keys in the JWKS, newest first: the signing key and retired keys still retained."""
        self._reload_if_changed()
        now = self._clock()
        keys = [self._keys[0]]
        for newer, key in zip(self._keys, self._keys[1:], strict=False):
            # A key retires when its successor is created.
            if newer.created_at + self._retention > now:
                keys.append(key)
        return keys

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [key.public_jwk() for key in self.published()]}

    def _reload_if_changed(self) -> None:
        mtime = self.directory.stat().st_mtime_ns
        if mtime == self._loaded_mtime:
            return
        with self._lock:
            keys = [_read_key(path) for path in _key_files(self.directory)]
            if not keys:
                raise RuntimeError(f"no signing keys in {self.directory}")
            self._keys = sorted(keys, key=lambda k: (k.created_at, k.kid), reverse=True)
            self._loaded_mtime = mtime


class KeyRingKeySource:
    """A `KeySource` over the published keys, so the auth service verifies its own tokens."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring

    async def get_key(self, kid: str) -> jwt.PyJWK:
        for key in self._ring.published():
            if key.kid == kid:
                return jwt.PyJWK(key.public_jwk())
        raise UnknownKey(kid)


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str = ""
    expires_in: int = 0


class TokenIssuer:
    """Signs access tokens with the ring's newest key."""

    def __init__(
        self,
        ring: KeyRing,
        *,
        issuer: str,
        audience: str,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ring = ring
        self._issuer = issuer
        self._audience = audience
        self.ttl_seconds = ttl_seconds
        self._clock = clock

    def issue(self, user_id: str, roles: Sequence[str]) -> AccessToken:
        key = self._ring.signing_key
        now = int(self._clock())
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": user_id,
            "iat": now,
            "exp": now + self.ttl_seconds,
            "jti": str(uuid.uuid4()),
            "roles": list(roles),
        }
        token = jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})
        return AccessToken(token=token, expires_in=self.ttl_seconds)


def _key_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if _KEY_FILE.fullmatch(p.name)]


def _read_key(path: Path) -> SigningKey:
    match = _KEY_FILE.fullmatch(path.name)
    assert match is not None
    private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(private_key, Ed25519PrivateKey):
        raise RuntimeError(f"{path.name} is not an Ed25519 private key")
    return SigningKey(kid=path.stem, created_at=int(match["created"]), private_key=private_key)


def _write_key(directory: Path, created_at: int) -> str:
    kid = f"ed25519-{created_at}-{secrets.token_hex(4)}"
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Written under a temporary name then renamed: readers never see a half-written key.
    temporary = directory / f".{kid}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    temporary.rename(directory / f"{kid}.pem")
    return kid


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with (directory / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
