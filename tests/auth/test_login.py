"""Login, lockout, refresh rotation, reuse detection and logout over a real channel."""

from __future__ import annotations

import asyncio

import grpc
import jwt

from mesh.auth.v1 import auth_service_pb2
from services.platform.identity import JwksKeySource, TokenVerifier
from services.platform.jwks import grpc_jwks_fetch
from tests.auth.harness import RunningAuth
from tests.auth.helpers import (
    PASSWORD,
    bearer,
    error_reason,
    new_credential,
    rpc_error,
    unique_email,
)


async def test_login_returns_verifiable_tokens(auth: RunningAuth) -> None:
    user_id, email = await new_credential(auth, roles=("user", "admin"))
    response = await auth.login(email.upper(), PASSWORD)  # emails are case-insensitive

    assert response.token_type == "Bearer"
    assert 0 < response.expires_in <= 900
    assert response.refresh_token
    assert "." not in response.refresh_token
    header = jwt.get_unverified_header(response.access_token)
    assert header["alg"] == "EdDSA"
    assert header["kid"]
    verifier = TokenVerifier(
        JwksKeySource(grpc_jwks_fetch(auth.target)),
        issuer="https://auth.mesh.dev",
        audience="mesh.dev",
    )
    caller = await verifier.verify(response.access_token)
    assert caller.user_id == user_id
    assert caller.roles == frozenset({"user", "admin"})
    claims = jwt.decode(response.access_token, options={"verify_signature": False})
    assert {"iss", "aud", "sub", "exp", "iat", "jti", "roles"} <= claims.keys()
    assert claims["exp"] - claims["iat"] == response.expires_in


async def test_wrong_password_and_unknown_email_fail_identically(auth: RunningAuth) -> None:
    _, email = await new_credential(auth)
    wrong = await rpc_error(auth.login(email, "not-the-password"))
    unknown = await rpc_error(auth.login(unique_email(), "not-the-password"))

    for error in (wrong, unknown):
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_reason(error) == "INVALID_CREDENTIALS"
    assert wrong.details() == unknown.details()


async def test_repeated_failures_lock_known_and_unknown_emails_alike(auth: RunningAuth) -> None:
    _, email = await new_credential(auth)
    stranger = unique_email()
    for address in (email, stranger):
        for _ in range(3):  # LOGIN_MAX_FAILURES=3 in the test settings
            error = await rpc_error(auth.login(address, "guess-guess-guess"))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    locked = await rpc_error(auth.login(email, PASSWORD))  # even the right password
    locked_stranger = await rpc_error(auth.login(stranger, PASSWORD))

    for error in (locked, locked_stranger):
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_reason(error) == "ACCOUNT_LOCKED"
    assert locked.details() == locked_stranger.details()


async def test_success_resets_the_failure_count(auth: RunningAuth) -> None:
    _, email = await new_credential(auth)
    for _ in range(2):
        await rpc_error(auth.login(email, "guess-guess-guess"))
    await auth.login(email, PASSWORD)
    for _ in range(2):
        await rpc_error(auth.login(email, "guess-guess-guess"))
    assert (await auth.login(email, PASSWORD)).access_token


async def test_refresh_rotates_and_reuse_revokes_the_family(auth: RunningAuth) -> None:
    _, email = await new_credential(auth)
    first = await auth.login(email, PASSWORD)
    other_session = await auth.login(email, PASSWORD)  # a second family, untouched below

    second = await auth.stub.RefreshToken(
        auth_service_pb2.RefreshTokenRequest(refresh_token=first.refresh_token)
    )
    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token

    reused = await rpc_error(
        auth.stub.RefreshToken(
            auth_service_pb2.RefreshTokenRequest(refresh_token=first.refresh_token)
        )
    )
    assert reused.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(reused) == "TOKEN_REUSED"
    # The thief's (or the victim's) newer token died with its family.
    revoked = await rpc_error(
        auth.stub.RefreshToken(
            auth_service_pb2.RefreshTokenRequest(refresh_token=second.refresh_token)
        )
    )
    assert revoked.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(revoked) == "INVALID_TOKEN"
    still_fine = await auth.stub.RefreshToken(
        auth_service_pb2.RefreshTokenRequest(refresh_token=other_session.refresh_token)
    )
    assert still_fine.access_token


async def test_concurrent_refreshes_of_one_token_let_exactly_one_win(auth: RunningAuth) -> None:
    _, email = await new_credential(auth)
    login = await auth.login(email, PASSWORD)
    request = auth_service_pb2.RefreshTokenRequest(refresh_token=login.refresh_token)
    results = await asyncio.gather(
        *(auth.stub.RefreshToken(request) for _ in range(4)), return_exceptions=True
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1


async def test_unknown_refresh_token_is_unauthenticated(auth: RunningAuth) -> None:
    error = await rpc_error(
        auth.stub.RefreshToken(auth_service_pb2.RefreshTokenRequest(refresh_token="made-up"))
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(error) == "INVALID_TOKEN"


async def test_logout_revokes_the_family(auth: RunningAuth) -> None:
    _, email = await new_credential(auth)
    login = await auth.login(email, PASSWORD)
    rotated = await auth.stub.RefreshToken(
        auth_service_pb2.RefreshTokenRequest(refresh_token=login.refresh_token)
    )
    await auth.stub.Logout(
        auth_service_pb2.LogoutRequest(refresh_token=rotated.refresh_token),
        metadata=bearer(rotated.access_token),
    )
    error = await rpc_error(
        auth.stub.RefreshToken(
            auth_service_pb2.RefreshTokenRequest(refresh_token=rotated.refresh_token)
        )
    )
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    # Idempotent: logging out again is fine.
    await auth.stub.Logout(
        auth_service_pb2.LogoutRequest(refresh_token=rotated.refresh_token),
        metadata=bearer(rotated.access_token),
    )


async def test_logout_needs_a_token_and_the_owner(auth: RunningAuth) -> None:
    _, alice = await new_credential(auth)
    _, mallory = await new_credential(auth)
    alice_login = await auth.login(alice, PASSWORD)
    mallory_login = await auth.login(mallory, PASSWORD)
    request = auth_service_pb2.LogoutRequest(refresh_token=alice_login.refresh_token)

    anonymous = await rpc_error(auth.stub.Logout(request))
    assert anonymous.code() == grpc.StatusCode.UNAUTHENTICATED
    foreign = await rpc_error(
        auth.stub.Logout(request, metadata=bearer(mallory_login.access_token))
    )
    assert foreign.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_disabled_credential_cannot_log_in_or_refresh(auth: RunningAuth) -> None:
    user_id, email = await new_credential(auth)
    login = await auth.login(email, PASSWORD)
    await auth.stub.SetCredential(
        auth_service_pb2.SetCredentialRequest(user_id=user_id, email=email, disabled=True)
    )
    error = await rpc_error(auth.login(email, PASSWORD))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(error) == "INVALID_CREDENTIALS"
    refresh = await rpc_error(
        auth.stub.RefreshToken(
            auth_service_pb2.RefreshTokenRequest(refresh_token=login.refresh_token)
        )
    )
    assert refresh.code() == grpc.StatusCode.UNAUTHENTICATED
