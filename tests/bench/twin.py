"""`python -m tests.bench.twin`: GetUser as a FastAPI + uvicorn app, the REST alternative.

What a Python team would write instead of the mesh: the same PostgreSQL table read through the
same SQLAlchemy setup (`Database`, unit of work, `UserRepository`), the same Redis cache
(`ProtoCache` of the contract's `User`), the same bearer-token check (`TokenVerifier` over the
auth service's JWKS), served by one uvicorn worker (uvloop + httptools) over the same dev TLS
certificate as the edge. Environment: DATABASE_URL, REDIS_URL, AUTH_SERVICE_TARGET, JWT_ISSUER,
JWT_AUDIENCE, TWIN_PORT, TLS_CERT, TLS_KEY, TWIN_CACHE_PREFIX.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated

import uvicorn
from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse
from google.protobuf import json_format

from mesh.user.v1 import user_pb2, user_service_pb2
from services.platform.cache import ProtoCache, create_redis
from services.platform.db import Database
from services.platform.errors import Unauthenticated
from services.platform.identity import JwksKeySource, TokenVerifier
from services.platform.jwks import grpc_jwks_fetch
from services.user.store import UserRepository, UserTables, user_from_row

SCHEMA = "users"


def create_app() -> FastAPI:
    env = os.environ
    database = Database.connect(env["DATABASE_URL"], application_name="bench-twin")
    redis = create_redis(env["REDIS_URL"])
    cache = ProtoCache(
        redis,
        user_pb2.User,
        prefix=env.get("TWIN_CACHE_PREFIX", "bench-twin:user"),
        ttl=timedelta(minutes=5),
    )
    tables = UserTables(SCHEMA)
    verifier = TokenVerifier(
        JwksKeySource(grpc_jwks_fetch(env["AUTH_SERVICE_TARGET"])),
        issuer=env["JWT_ISSUER"],
        audience=env["JWT_AUDIENCE"],
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await redis.aclose()
        await database.dispose()

    app = FastAPI(lifespan=lifespan)

    async def load(user_id: str) -> user_pb2.User | None:
        async with database.uow() as tx:
            row = await UserRepository(tx.session, tables).get(user_id)
        return None if row is None else user_from_row(row)

    @app.get("/v1/users/{user_id}")
    async def get_user(
        user_id: str, authorization: Annotated[str | None, Header()] = None
    ) -> JSONResponse:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "a bearer token is required")
        try:
            caller = await verifier.verify(token)
        except Unauthenticated:
            raise HTTPException(401, "invalid token") from None
        if user_id == "me":
            user_id = caller.user_id
        try:
            user_id = str(uuid.UUID(user_id))
        except ValueError:
            raise HTTPException(400, "id must be a UUID or me") from None
        if user_id != caller.user_id and not caller.is_admin:
            raise HTTPException(403, "not your user")
        user = await cache.get_or_load(user_id, lambda: load(user_id))
        if user is None:
            raise HTTPException(404, "no such user")
        response = user_service_pb2.GetUserResponse(user=user)
        return JSONResponse(json_format.MessageToDict(response))

    return app


def main() -> None:
    env = os.environ
    uvicorn.run(
        create_app(),
        host="127.0.0.1",
        port=int(env["TWIN_PORT"]),
        loop="uvloop",
        http="httptools",
        ssl_certfile=env["TLS_CERT"],
        ssl_keyfile=env["TLS_KEY"],
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
