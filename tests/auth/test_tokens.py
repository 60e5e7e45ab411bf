"""Forged, expired and foreign access tokens are refused; keys rotate without downtime."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mesh.auth.v1 import auth_service_pb2
from services.auth.keys import KeyRing, TokenIssuer, rotate_keys
from services.platform.identity import JwksKeySource, TokenVerifier
from services.platform.jwks import grpc_jwks_fetch
from tests.auth.harness import RunningAuth, running_auth
from tests.auth.helpers import PASSWORD, bearer, error_reason, new_credential, rpc_error


async def logout_with(auth: RunningAuth, access_token: str) -> grpc.aio.AioRpcError:
    """Logout is a bearer method: the token is checked before the (bogus) body matters."""
    request = auth_service_pb2.LogoutRequest(refresh_token="irrelevant")
    return await rpc_error(auth.stub.Logout(request, metadata=bearer(access_token)))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_expired_token_is_rejected(auth: RunningAuth, keys_dir: Path) -> None:
    user_id, _ = await new_credential(auth)
    an_hour_ago = time.time() - 3600
    issuer = TokenIssuer(
        KeyRing(keys_dir, retention=960),
        issuer="https://auth.mesh.dev",
        audience="mesh.dev",
        ttl_seconds=900,
        clock=lambda: an_hour_ago,
    )
    error = await logout_with(auth, issuer.issue(user_id, ["user"]).token)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(error) == "TOKEN_EXPIRED"


async def test_token_signed_by_an_unknown_key_is_rejected(auth: RunningAuth) -> None:
    _user_id, email = await new_credential(auth)
    genuine = await auth.login(email, PASSWORD)
    claims = jwt.decode(genuine.access_token, options={"verify_signature": False})
    kid = jwt.get_unverified_header(genuine.access_token)["kid"]
    stranger = Ed25519PrivateKey.generate()
    for headers in ({"kid": kid}, {"kid": "ed25519-9999999999-deadbeef"}):
        forged = jwt.encode(claims, stranger, algorithm="EdDSA", headers=headers)
        error = await logout_with(auth, forged)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_reason(error) == "TOKEN_INVALID"


async def test_alg_none_is_rejected(auth: RunningAuth) -> None:
    _, email = await new_credential(auth)
    genuine = await auth.login(email, PASSWORD)
    kid = jwt.get_unverified_header(genuine.access_token)["kid"]
    claims = jwt.decode(genuine.access_token, options={"verify_signature": False})
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps(claims).encode())
    for token in (
        f"{header}.{payload}.",
        f"{header}.{payload}.{genuine.access_token.split('.')[2]}",
    ):
        error = await logout_with(auth, token)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_tampered_payload_is_rejected(auth: RunningAuth) -> None:
    _, email = await new_credential(auth)
    genuine = await auth.login(email, PASSWORD)
    header, payload, signature = genuine.access_token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["roles"] = ["user", "admin"]  # privilege escalation attempt
    tampered = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    error = await logout_with(auth, tampered)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(error) == "TOKEN_INVALID"


async def test_wrong_audience_and_issuer_are_rejected(auth: RunningAuth, keys_dir: Path) -> None:
    user_id, _ = await new_credential(auth)
    ring = KeyRing(keys_dir, retention=960)
    for issuer, audience in (
        ("https://auth.mesh.dev", "other.dev"),
        ("https://evil.dev", "mesh.dev"),
    ):
        token = TokenIssuer(ring, issuer=issuer, audience=audience, ttl_seconds=900).issue(
            user_id, ["user"]
        )
        error = await logout_with(auth, token.token)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_garbage_token_is_rejected(auth: RunningAuth) -> None:
    error = await logout_with(auth, "not-a-jwt")
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_jwks_rotation_keeps_old_tokens_valid_until_they_expire(
    database_url: str, auth_schema: str, keys_dir: Path
) -> None:
    now = [time.time()]
    async with running_auth(database_url, auth_schema, keys_dir, clock=lambda: now[0]) as auth:
        _, email = await new_credential(auth)
        before = await auth.login(email, PASSWORD)
        old_kid = jwt.get_unverified_header(before.access_token)["kid"]
        verifier = TokenVerifier(
            JwksKeySource(grpc_jwks_fetch(auth.target), min_refresh_interval=0),
            issuer="https://auth.mesh.dev",
            audience="mesh.dev",
            leeway_seconds=5,
        )
        await verifier.verify(before.access_token)  # the verifier now caches the old key only

        now[0] += 1
        new_kid = rotate_keys(keys_dir, clock=lambda: now[0])
        after = await auth.login(email, PASSWORD)

        assert jwt.get_unverified_header(after.access_token)["kid"] == new_kid
        jwks = await auth.stub.GetJwks(auth_service_pb2.GetJwksRequest())
        assert [key.kid for key in jwks.keys] == [new_kid, old_kid]  # newest first
        assert all(k.kty == "OKP" and k.crv == "Ed25519" and k.alg == "EdDSA" for k in jwks.keys)
        assert all(k.use == "sig" and k.x for k in jwks.keys)
        # Unknown kid → the verifier refetches the JWKS; both tokens verify.
        assert (await verifier.verify(after.access_token)).user_id
        assert (await verifier.verify(before.access_token)).user_id
        await auth.stub.Logout(
            auth_service_pb2.LogoutRequest(refresh_token=before.refresh_token),
            metadata=bearer(before.access_token),
        )

        now[0] += 900 + 60 + 1  # token lifetime + leeway after the retirement
        jwks = await auth.stub.GetJwks(auth_service_pb2.GetJwksRequest())
        assert [key.kid for key in jwks.keys] == [new_kid]


async def test_first_start_generates_and_persists_a_key(
    database_url: str, auth_schema: str, tmp_path: Path
) -> None:
    keys_dir = tmp_path / "fresh"
    async with running_auth(database_url, auth_schema, keys_dir) as auth:
        first = await auth.stub.GetJwks(auth_service_pb2.GetJwksRequest())
    async with running_auth(database_url, auth_schema, keys_dir) as auth:
        again = await auth.stub.GetJwks(auth_service_pb2.GetJwksRequest())
    assert len(first.keys) == 1
    assert first == again
    (pem,) = keys_dir.glob("*.pem")
    assert pem.stat().st_mode & 0o077 == 0  # private key readable by its owner only
