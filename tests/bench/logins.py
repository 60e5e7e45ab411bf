"""R4: logins per second against the hashing ceiling, with latency probes running alongside.

Logins go straight to the auth service (closed loop, pre-framed LoginRequest). Meanwhile two
open-loop probes measure p99: GetUser on the user service (the issue's probe) and GetJwks on
the auth service itself, which shows whether hashing blocks the auth service's event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from mesh.auth.v1 import auth_service_pb2
from tests.bench import hashing, load
from tests.bench.load import grpc_frame
from tests.bench.paths import GET_USER, GRPC_HEADERS, body_file
from tests.bench.procstat import Meter
from tests.bench.scenarios import Knobs, grpc_errors
from tests.bench.stack import PASSWORD, Stack

LOGIN = "/mesh.auth.v1.AuthService/Login"
GET_JWKS = "/mesh.auth.v1.AuthService/GetJwks"
LOGIN_IN_FLIGHT = 8
PROBE_RPS = 50


@dataclass
class LoginPath:
    login: load.Target
    get_user: load.Target
    get_jwks: load.Target
    min_login_bytes: int


@dataclass
class LoginRep:
    rps: float = 0.0
    ceiling_rps: float = 0.0  # measured just before this repetition
    verify_ms: float = 0.0
    grpc_errors: int = 0
    get_user_p99_ms: float | None = None
    get_jwks_p99_ms: float | None = None
    cpu_us: dict[str, float] = field(default_factory=dict)


def login_path(stack: Stack) -> LoginPath:
    login = auth_service_pb2.LoginRequest(email=stack.email, password=PASSWORD)
    jwks = auth_service_pb2.GetJwksRequest()
    bearer = {"authorization": f"Bearer {stack.token}"}
    from mesh.user.v1 import user_service_pb2

    get_user = user_service_pb2.GetUserRequest(id=stack.user_id).SerializeToString()
    return LoginPath(
        login=load.Target(
            url=f"http://{stack.auth_grpc}{LOGIN}",
            headers=GRPC_HEADERS,
            body=body_file("login", login.SerializeToString()),
        ),
        get_user=load.Target(
            url=f"http://{stack.user_grpc}{GET_USER}",
            headers={**GRPC_HEADERS, **bearer},
            body=body_file("get-user-probe", get_user),
        ),
        get_jwks=load.Target(
            url=f"http://{stack.auth_grpc}{GET_JWKS}",
            headers=GRPC_HEADERS,
            body=body_file("get-jwks", jwks.SerializeToString()),
        ),
        # A LoginResponse carries two tokens: anything under 100 bytes is an error.
        min_login_bytes=len(grpc_frame(b"x" * 100)),
    )


async def run_logins(stack: Stack, path: LoginPath, knobs: Knobs, pids: dict[str, int]) -> LoginRep:
    # The ceiling is measured right before each repetition, so both sides of the ratio see
    # the same machine (a busy neighbour slows a verify as much as it slows a login).
    ceiling, verify_seconds = await asyncio.to_thread(hashing.ceiling)
    meter = Meter({k: v for k, v in pids.items() if k in ("auth", "user")})

    # Logins take tens of milliseconds each: measure at least 2 s even in the smoke run.
    duration = max(knobs.duration, 2.0)

    def probe(target: load.Target) -> load.Result:
        return load.h2load(
            target,
            duration=duration,
            clients=1,
            streams=8,
            rps_per_client=PROBE_RPS,
            warmup=knobs.warmup,
        )

    logins, users, jwks = await asyncio.gather(
        asyncio.to_thread(
            load.h2load,
            path.login,
            duration=duration,
            clients=1,
            streams=LOGIN_IN_FLIGHT,
            warmup=knobs.warmup,
        ),
        asyncio.to_thread(probe, path.get_user),
        asyncio.to_thread(probe, path.get_jwks),
    )
    sample = meter.stop()
    rep = LoginRep(
        rps=logins.rps,
        ceiling_rps=ceiling,
        verify_ms=verify_seconds * 1000,
        grpc_errors=grpc_errors(logins, logins.summary_ok, path.min_login_bytes),
        get_user_p99_ms=users.percentile(0.99),
        get_jwks_p99_ms=jwks.percentile(0.99),
    )
    if logins.summary_ok:
        rep.cpu_us = {k: v * 1e6 / logins.summary_ok for k, v in sample.cpu.items()}
    return rep


def summarise_logins(reps: list[LoginRep]) -> dict[str, Any]:
    def med(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return median(present) if present else None

    return {
        "rps": med([r.rps for r in reps]),
        "ceiling_rps": med([r.ceiling_rps for r in reps]),
        "argon2_verify_ms": med([r.verify_ms for r in reps]),
        # Median of the per-repetition ratios, each against its own ceiling.
        "ratio": med([r.rps / r.ceiling_rps if r.ceiling_rps else None for r in reps]),
        "grpc_errors": sum(r.grpc_errors for r in reps),
        "get_user_p99_ms": med([r.get_user_p99_ms for r in reps]),
        "get_jwks_p99_ms": med([r.get_jwks_p99_ms for r in reps]),
        "cpu_us_per_login": {
            n: med([r.cpu_us.get(n) for r in reps])
            for n in sorted({n for r in reps for n in r.cpu_us})
        },
        "reps": [vars(r) for r in reps],
    }
