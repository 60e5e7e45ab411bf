"""Who is calling: verified bearer tokens and the caller of the current RPC.

Envoy already checks tokens at the edge; services check them again (defence in depth) and use
the verified claims, never client-settable headers, to decide ownership and roles.

Access-token claims this module relies on (the auth service issues them):
  `iss`, `aud`, `exp`, `iat` (all required), `sub` = user id, `roles` = list of role names
  ("user", "admin"); `kid` in the header names the signing key; algorithms EdDSA or RS256.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import jwt

from services.platform.errors import Unauthenticated

logger = logging.getLogger(__name__)

# Asymmetric algorithms only: HS* would let anyone holding the verification key mint tokens,
# and "none" is never acceptable.
ALLOWED_ALGORITHMS: Final = ("EdDSA", "RS256")
_REQUIRED_CLAIMS: Final = ("exp", "iat", "iss", "aud", "sub")


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated principal of the current RPC."""

    user_id: str
    roles: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


_current_caller: ContextVar[Caller | None] = ContextVar("mesh_current_caller", default=None)


def current_caller() -> Caller | None:
    """The caller of the RPC being served, or None when it presented no (valid) token."""
    return _current_caller.get()


def require_caller() -> Caller:
    """The caller of the RPC being served; raises Unauthenticated for anonymous calls."""
    caller = _current_caller.get()
    if caller is None:
        raise Unauthenticated("a bearer token is required", reason="TOKEN_MISSING")
    return caller


@contextmanager
def caller_scope(caller: Caller | None) -> Iterator[None]:
    """Runs the block as `caller` (the identity interceptor uses it; so can service tests)."""
    token = _current_caller.set(caller)
    try:
        yield
    finally:
        # Exited from another Context (async generator finalised by the loop): nothing to
        # restore, the value dies with that Context.
        with suppress(ValueError):
            _current_caller.reset(token)


class UnknownKey(LookupError):
    """No verification key is known for a token's `kid`."""


class KeySource(Protocol):
    """Where verification keys come from, by key id."""

    async def get_key(self, kid: str) -> jwt.PyJWK:
        """The public key for `kid`; raises UnknownKey when there is none."""
        ...


def parse_jwks(jwks: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
    """kid → key for every usable signing key of a JWKS document (others are skipped)."""
    keys: dict[str, jwt.PyJWK] = {}
    for entry in jwks.get("keys", ()):
        kid = entry.get("kid") if isinstance(entry, Mapping) else None
        if not kid or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(dict(entry))
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            # One malformed or unsupported key must not take the others down with it.
            logger.warning("skipping unusable JWKS key", extra={"kid": kid, "error": str(exc)})
            continue
        if key.algorithm_name in ALLOWED_ALGORITHMS:
            keys[str(kid)] = key
    return keys


class StaticKeySource:
    """A fixed set of keys (tests, or a service that verifies with keys it already holds)."""

    def __init__(self, keys: Mapping[str, jwt.PyJWK]) -> None:
        self._keys = dict(keys)

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any]) -> StaticKeySource:
        return cls(parse_jwks(jwks))

    async def get_key(self, kid: str) -> jwt.PyJWK:
        try:
            return self._keys[kid]
        except KeyError:
            raise UnknownKey(kid) from None


class JwksKeySource:
    """Keys fetched from a JWKS document, cached, refreshed on expiry or on an unknown `kid`.

    A token signed by a freshly rotated key triggers a refresh, but at most one every
    `min_refresh_interval` seconds so forged kids cannot hammer the auth service. Concurrent
    refreshes collapse into one. When a refresh fails the last good keys stay in use.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[Mapping[str, Any]]],
        *,
        max_age: float = 300.0,
        min_refresh_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._max_age = max_age
        self._min_refresh_interval = min_refresh_interval
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    async def get_key(self, kid: str) -> jwt.PyJWK:
        if self._is_stale() or (kid not in self._keys and self._may_refresh()):
            await self._refresh()
        elif kid not in self._keys and self._lock.locked():
            # A refresh is in flight (typically the first fetch, with a burst of requests
            # arriving at a fresh replica): its keys, not an empty cache, decide.
            async with self._lock:
                pass
        try:
            return self._keys[kid]
        except KeyError:
            raise UnknownKey(kid) from None

    def _is_stale(self) -> bool:
        if self._fetched_at is None:
            return self._may_refresh()
        return self._clock() - self._fetched_at >= self._max_age and self._may_refresh()

    def _may_refresh(self) -> bool:
        return (
            self._attempted_at is None
            or self._clock() - self._attempted_at >= self._min_refresh_interval
        )

    async def _refresh(self) -> None:
        started = self._clock()
        async with self._lock:
            if self._attempted_at is not None and self._attempted_at >= started:
                return  # another task refreshed while this one waited
            self._attempted_at = self._clock()
            try:
                document = await self._fetch()
            except Exception:
                logger.warning("JWKS refresh failed; keeping the last known keys", exc_info=True)
                return
            self._keys = parse_jwks(document)
            self._fetched_at = self._clock()


def jwks_from_url(url: str, *, timeout: float = 5.0) -> Callable[[], Awaitable[Mapping[str, Any]]]:
    """A JWKS fetcher over HTTP(S), for `JwksKeySource` (blocking I/O runs in a thread)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError("JWKS URL must be http(s)")

    def fetch_blocking() -> Mapping[str, Any]:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 (scheme checked above)
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            document: Mapping[str, Any] = json.load(response)
        return document

    async def fetch() -> Mapping[str, Any]:
        return await asyncio.to_thread(fetch_blocking)

    return fetch


def jwks_from_file(path: Path) -> Callable[[], Awaitable[Mapping[str, Any]]]:
    """A JWKS fetcher reading a file, re-read on every refresh so rotated keys are picked up."""

    async def fetch() -> Mapping[str, Any]:
        text = await asyncio.to_thread(path.read_text, encoding="utf-8")
        document: Mapping[str, Any] = json.loads(text)
        return document

    return fetch


class TokenVerifier:
    """Verifies access tokens: signature (allowed algorithms only), iss, aud, exp, iat, sub."""

    def __init__(
        self,
        key_source: KeySource,
        *,
        issuer: str,
        audience: str,
        leeway_seconds: float = 30.0,
        cache_size: int = 4096,
        cache_seconds: float = 60.0,
    ) -> None:
        self._keys = key_source
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._verified = VerifiedTokens(cache_size, cache_seconds)

    async def verify(self, token: str) -> Caller:
        """The caller a token proves; raises Unauthenticated (reason TOKEN_INVALID/EXPIRED).

        A token verified once is remembered (see `VerifiedTokens`): a client sends the same
        access token with every call, and the signature check was the largest cost of a
        cached read. Failures are never remembered.
        """
        cached = self._verified.get(token)
        if cached is not None:
            return cached
        caller, expires_at = await self._verify(token)
        self._verified.put(token, caller, expires_at + self._leeway)
        return caller

    async def _verify(self, token: str) -> tuple[Caller, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise _invalid("malformed token") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise _invalid(f"algorithm {algorithm!r} is not accepted")
        if not isinstance(kid, str) or not kid:
            raise _invalid("token has no key id")
        try:
            key = await self._keys.get_key(kid)
        except UnknownKey:
            raise _invalid("unknown signing key") from None
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": list(_REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the access token has expired", reason="TOKEN_EXPIRED") from None
        except jwt.InvalidTokenError as exc:
            raise _invalid(type(exc).__name__) from None
        return _caller_from_claims(claims), float(claims["exp"])


class VerifiedTokens:
    """A bounded LRU of tokens whose signature and claims were verified, by SHA-256 digest.

    An entry lives until the token's own expiry (plus leeway, as jwt.decode allows) but at
    most `max_age` seconds, which bounds how long a retired signing key keeps working here.
    Only digests are kept: a memory dump does not hand out usable tokens.
    """

    def __init__(self, size: int, max_age: float, clock: Callable[[], float] = time.time) -> None:
        self._entries: OrderedDict[bytes, tuple[Caller, float]] = OrderedDict()
        self._size = size
        self._max_age = max_age
        self._clock = clock

    def get(self, token: str) -> Caller | None:
        key = _digest(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        caller, valid_until = entry
        if self._clock() >= valid_until:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return caller

    def put(self, token: str, caller: Caller, expires_at: float) -> None:
        if self._size <= 0:
            return
        self._entries[_digest(token)] = (caller, min(expires_at, self._clock() + self._max_age))
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _caller_from_claims(claims: Mapping[str, Any]) -> Caller:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise _invalid("token has no subject")
    raw_roles = claims.get("roles", ())
    if isinstance(raw_roles, str):
        raw_roles = raw_roles.split()
    if not isinstance(raw_roles, list | tuple) or not all(isinstance(r, str) for r in raw_roles):
        raise _invalid("roles claim is malformed")
    return Caller(user_id=subject, roles=frozenset(raw_roles))


def _invalid(why: str) -> Unauthenticated:
    # The precise cause is logged, the client only learns that the token was rejected.
    logger.info("access token rejected", extra={"reason": why})
    return Unauthenticated("the access token is not valid", reason="TOKEN_INVALID")


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The token of an `authorization: Bearer <token>` metadata entry, if any."""
    for key, value in metadata or ():
        if key.lower() != "authorization":
            continue
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    return None


__all__ = [
    "ALLOWED_ALGORITHMS",
    "Caller",
    "JwksKeySource",
    "KeySource",
    "StaticKeySource",
    "TokenVerifier",
    "UnknownKey",
    "bearer_token",
    "caller_scope",
    "current_caller",
    "jwks_from_file",
    "jwks_from_url",
    "parse_jwks",
    "require_caller",
]
