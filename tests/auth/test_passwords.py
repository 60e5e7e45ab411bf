"""Argon2id at OWASP parameters, rehash on login, and hashing that never blocks the loop."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

import grpc
import psycopg
from psycopg import sql

from mesh.auth.v1 import auth_service_pb2
from services.platform.passwords import OWASP_PARAMS, PasswordHasher
from tests.auth.harness import RunningAuth, running_auth
from tests.auth.helpers import PASSWORD, bad_fields, error_reason, new_credential, rpc_error


def stored_hash(database_url: str, schema: str, user_id: str) -> str:
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            sql.SQL("SELECT password_hash FROM {}.credentials WHERE user_id = %s").format(
                sql.Identifier(schema)
            ),
            (user_id,),
        ).fetchone()
    assert row is not None
    return str(row[0])


async def test_owasp_parameters_are_the_default() -> None:
    hasher = PasswordHasher()
    try:
        encoded = await hasher.hash(PASSWORD)
        assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert await hasher.verify(encoded, PASSWORD)
        assert not await hasher.verify(encoded, PASSWORD + "x")
        assert not hasher.needs_rehash(encoded)
    finally:
        hasher.shutdown()
    assert OWASP_PARAMS.memory_kib == 19 * 1024


async def test_login_rehashes_when_parameters_change(
    database_url: str, auth_schema: str, keys_dir: Path, auth: RunningAuth
) -> None:
    user_id, email = await new_credential(auth)  # hashed with the fast test parameters
    assert "m=8," in stored_hash(database_url, auth_schema, user_id)
    async with running_auth(database_url, auth_schema, keys_dir, PASSWORD_HASHING="owasp") as real:
        await real.login(email, PASSWORD)
        assert stored_hash(database_url, auth_schema, user_id).startswith(
            "$argon2id$v=19$m=19456,t=2,p=1$"
        )
        await real.login(email, PASSWORD)  # and the new hash verifies


async def test_logins_hash_off_the_event_loop(
    database_url: str, auth_schema: str, keys_dir: Path
) -> None:
    async with running_auth(database_url, auth_schema, keys_dir, PASSWORD_HASHING="owasp") as auth:
        _, email = await new_credential(auth)
        ping = auth_service_pb2.GetJwksRequest()
        await auth.stub.GetJwks(ping)
        login_times: list[float] = []
        ping_times: list[float] = []

        async def login() -> None:
            started = time.perf_counter()
            await auth.login(email, PASSWORD)
            login_times.append(time.perf_counter() - started)

        logins = asyncio.gather(*(login() for _ in range(8)))
        while not logins.done():
            started = time.perf_counter()
            await auth.stub.GetJwks(ping)
            ping_times.append(time.perf_counter() - started)
        await logins

    # Had hashing run on the loop, each ping issued during the burst would wait for at least
    # one whole hash; relative, not absolute, so a slow machine does not fail it.
    assert len(ping_times) >= 3
    assert statistics.median(ping_times) < statistics.mean(login_times) / 3


async def test_set_credential_rejects_bad_input(auth: RunningAuth) -> None:
    bad_email = await rpc_error(
        auth.stub.SetCredential(
            auth_service_pb2.SetCredentialRequest(
                user_id="8c1d0ae5-8b7d-4e36-9b59-6c2a2f0ad7a1", email="nope", password=PASSWORD
            )
        )
    )
    assert bad_email.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "email" in bad_fields(bad_email)
    no_password = await rpc_error(
        auth.stub.SetCredential(
            auth_service_pb2.SetCredentialRequest(
                user_id="8c1d0ae5-8b7d-4e36-9b59-6c2a2f0ad7a2", email="new@example.com"
            )
        )
    )
    assert no_password.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(no_password) == {"password"}
    bad_role = await rpc_error(
        auth.stub.SetCredential(
            auth_service_pb2.SetCredentialRequest(
                user_id="8c1d0ae5-8b7d-4e36-9b59-6c2a2f0ad7a3",
                email="new2@example.com",
                password=PASSWORD,
                roles=["root"],
            )
        )
    )
    assert bad_role.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_set_credential_refuses_a_taken_email(auth: RunningAuth) -> None:
    _, email = await new_credential(auth)
    error = await rpc_error(
        auth.stub.SetCredential(
            auth_service_pb2.SetCredentialRequest(
                user_id="8c1d0ae5-8b7d-4e36-9b59-6c2a2f0ad7b1", email=email, password=PASSWORD
            )
        )
    )
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(error) == "EMAIL_TAKEN"
