"""Talking to the edge the way clients do: HTTPS with the development CA, grpcurl, gRPC.

REST requests go through `http.client` over TLS (HTTP/1.1). Each `Rest` client binds its own
loopback source address (127.0.x.y): Envoy counts per-IP budgets on the TCP peer, so every
test gets budgets of its own and no test exhausts another's.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

GRPCURL: Final = str(Path(sys.executable).parent / "grpcurl")
PASSWORD: Final = "quiet-lantern-orbit-7413"
_source_addresses = (f"127.0.{high}.{low}" for high in range(1, 255) for low in range(1, 255))


def next_source_address() -> str:
    return next(_source_addresses)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def error(self) -> dict[str, Any]:
        """The body as the JSON google.rpc.Status every error carries (asserted here)."""
        assert self.headers.get("content-type", "").startswith("application/json"), self
        status: dict[str, Any] = self.json()
        assert isinstance(status.get("code"), int), status
        assert isinstance(status.get("message"), str), status
        return status

    def __str__(self) -> str:
        return f"HTTP {self.status} {dict(self.headers)} {self.body[:500]!r}"


class Rest:
    """HTTPS to the edge from one loopback source address."""

    def __init__(self, port: int, ca_cert: Path, *, source: str | None = None) -> None:
        self.port = port
        self.source = source or next_source_address()
        self.context = ssl.create_default_context(cafile=str(ca_cert))
        self.token: str | None = None

    def connection(self, timeout: float = 15.0) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            "127.0.0.1",
            self.port,
            context=self.context,
            timeout=timeout,
            source_address=(self.source, 0),
        )

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        sent = {"content-type": "application/json", **(headers or {})}
        bearer = token if token is not None else self.token
        if bearer:
            sent.setdefault("authorization", f"Bearer {bearer}")
        payload = raw if raw is not None else None if body is None else json.dumps(body).encode()
        connection = self.connection()
        try:
            connection.request(method, path, body=payload, headers=sent)
            response = connection.getresponse()
            data = response.read()
            received = {name.lower(): value for name, value in response.getheaders()}
            return Reply(response.status, received, data)
        finally:
            connection.close()

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Reply:
        return self.request("POST", path, {} if body is None else body, **kwargs)

    def ok(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        reply = self.request(method, path, body, **kwargs)
        assert reply.status == 200, str(reply)
        return reply.json()

    @contextlib.contextmanager
    def stream(self, path: str, *, timeout: float = 20.0) -> Iterator[http.client.HTTPResponse]:
        """An open streaming GET (newline-delimited JSON); closed when the block ends."""
        connection = self.connection(timeout)
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            connection.request("GET", path, headers=headers)
            yield connection.getresponse()
        finally:
            connection.close()

    # ------------------------------------------------------------------ the product

    def sign_up(self, name: str = "Ada") -> dict[str, Any]:
        """A fresh account (unique email); returns the created User."""
        email = f"{name.lower()}-{uuid.uuid4().hex[:10]}@example.com"
        reply = self.post("/v1/users", {"email": email, "password": PASSWORD, "display_name": name})
        assert reply.status == 200, str(reply)
        user: dict[str, Any] = reply.json()["user"]
        assert user["email"] == email
        return user

    def log_in(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        reply = self.post("/v1/auth/login", {"email": email, "password": password}, token="")
        assert reply.status == 200, str(reply)
        tokens: dict[str, Any] = reply.json()
        self.token = tokens["access_token"]
        return tokens

    def signed_up(self, name: str = "Ada") -> dict[str, Any]:
        """Sign up and log in; this client then calls as the new user."""
        user = self.sign_up(name)
        self.log_in(user["email"])
        return user


def bearer(token: str | None) -> tuple[tuple[str, str | bytes], ...]:
    """gRPC call metadata carrying an access token."""
    return (("authorization", f"Bearer {token}"),)


def grpcurl(
    port: int, ca_cert: Path, *args: str, token: str | None = None, data: Any = None
) -> subprocess.CompletedProcess[str]:
    """grpcurl against the edge, verifying the server certificate with the development CA."""
    argv = [GRPCURL, "-cacert", str(ca_cert), "-max-time", "20"]
    if token:
        argv += ["-H", f"authorization: Bearer {token}"]
    if data is not None:
        argv += ["-d", json.dumps(data)]
    argv += [f"localhost:{port}", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)


# ---------------------------------------------------------------------- tokens clients forge


def _claims(issuer: str, audience: str, subject: str, *, lifetime: int) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "roles": ["user", "admin"],
        "iat": now - 10,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }


def newest_signing_key(data_dir: Path) -> tuple[str, Ed25519PrivateKey]:
    """The auth service's current key (kid, private key): the mesh's own, from its data dir."""
    path = max((data_dir / "auth-keys").glob("ed25519-*.pem"))
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return path.stem, key


def expired_token(data_dir: Path, issuer: str, audience: str, subject: str) -> str:
    """Signed with the real key but expired an hour ago (far beyond any clock skew)."""
    kid, key = newest_signing_key(data_dir)
    claims = _claims(issuer, audience, subject, lifetime=-3600)
    claims["iat"] -= 7200
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})


def forged_token(data_dir: Path, issuer: str, audience: str, subject: str) -> str:
    """Valid claims and the real kid, signed with a key the mesh never published."""
    kid, _ = newest_signing_key(data_dir)
    claims = _claims(issuer, audience, subject, lifetime=600)
    return jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid})


def unsigned_token(data_dir: Path, issuer: str, audience: str, subject: str) -> str:
    """`alg: none`: valid claims, no signature at all."""
    kid, _ = newest_signing_key(data_dir)

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    header = {"alg": "none", "typ": "JWT", "kid": kid}
    return f"{part(header)}.{part(_claims(issuer, audience, subject, lifetime=600))}."


def stream_messages(
    response: http.client.HTTPResponse, deadline: float
) -> Iterator[dict[str, Any]]:
    """The JSON messages of a newline-delimited stream until `deadline` (time.monotonic())."""
    while time.monotonic() < deadline:
        line = response.readline()  # bounded by the connection's socket timeout
        if not line:
            return
        if line.strip():
            yield json.loads(line)


__all__ = [
    "GRPCURL",
    "PASSWORD",
    "Reply",
    "Rest",
    "bearer",
    "expired_token",
    "forged_token",
    "grpcurl",
    "next_source_address",
    "stream_messages",
    "unsigned_token",
]
