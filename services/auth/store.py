"""PostgreSQL tables of the auth service (schema `auth`) and the queries on them.

- `credentials`: one row per user (id owned by the user service), the normalised email
  (unique among enabled credentials), the Argon2id hash, the roles tokens carry, `disabled`.
- `login_throttle`: failed-login counter and lock per normalised email, keyed by its SHA-256
  digest. Keyed by email rather than by credential so that unknown emails are counted and
  locked exactly like real ones: the lock reveals nothing about which accounts exist.
- `refresh_tokens`: SHA-256 of each opaque refresh token (never the token), its family (one
  per login), `used_at` (single use) and `revoked_at`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession

from services.platform.db import Database, create_engine, create_session_factory

SCHEMA = "auth"
metadata = sa.MetaData(schema=SCHEMA)

credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("user_id", pg.UUID(as_uuid=False), primary_key=True),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("roles", pg.ARRAY(sa.Text), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

login_throttle = sa.Table(
    "login_throttle",
    metadata,
    sa.Column("email_digest", sa.LargeBinary, primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("token_hash", sa.LargeBinary, primary_key=True),
    sa.Column("family_id", pg.UUID(as_uuid=False), nullable=False),
    sa.Column("user_id", pg.UUID(as_uuid=False), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)


def connect(database_url: str, *, schema: str = SCHEMA) -> Database:
    """The service's database; `schema` lets tests run against a schema of their own."""
    engine = create_engine(database_url, application_name="auth")
    if schema != SCHEMA:
        engine = engine.execution_options(schema_translate_map={SCHEMA: schema})
    return Database(engine=engine, sessions=create_session_factory(engine))


def digest(secret: str) -> bytes:
    """SHA-256 of a high-entropy secret (refresh token) or an email: what the tables store."""
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True, slots=True)
class Credential:
    user_id: str
    email: str
    password_hash: str
    roles: tuple[str, ...]
    disabled: bool


@dataclass(frozen=True, slots=True)
class RefreshToken:
    family_id: str
    user_id: str
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


class AuthStore:
    """Queries of the auth service, each on the session of the caller's unit of work."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def credential_by_email(self, email: str) -> Credential | None:
        row = (
            await self._session.execute(
                sa.select(credentials).where(
                    credentials.c.email == email, credentials.c.disabled.is_(False)
                )
            )
        ).first()
        return _credential(row) if row else None

    async def credential_by_id(
        self, user_id: str, *, for_update: bool = False
    ) -> Credential | None:
        query = sa.select(credentials).where(credentials.c.user_id == user_id)
        if for_update:
            query = query.with_for_update()
        row = (await self._session.execute(query)).first()
        return _credential(row) if row else None

    async def email_taken_by_other(self, email: str, user_id: str) -> bool:
        query = sa.select(sa.literal(1)).where(
            credentials.c.email == email,
            credentials.c.disabled.is_(False),
            credentials.c.user_id != user_id,
        )
        return (await self._session.execute(query)).first() is not None

    async def upsert_credential(self, credential: Credential, now: datetime) -> None:
        values = {
            "user_id": credential.user_id,
            "email": credential.email,
            "password_hash": credential.password_hash,
            "roles": list(credential.roles),
            "disabled": credential.disabled,
            "updated_at": now,
        }
        insert = pg.insert(credentials).values(**values, created_at=now)
        await self._session.execute(
            insert.on_conflict_do_update(index_elements=[credentials.c.user_id], set_=values)
        )

    async def set_password_hash(self, user_id: str, password_hash: str, now: datetime) -> None:
        await self._session.execute(
            sa.update(credentials)
            .where(credentials.c.user_id == user_id)
            .values(password_hash=password_hash, updated_at=now)
        )

    async def locked_until(self, email_digest: bytes) -> datetime | None:
        query = sa.select(login_throttle.c.locked_until).where(
            login_throttle.c.email_digest == email_digest
        )
        return (await self._session.execute(query)).scalar()

    async def record_failure(self, email_digest: bytes, now: datetime) -> int:
        """Counts a failed login atomically; returns the failures in a row so far."""
        insert = pg.insert(login_throttle).values(
            email_digest=email_digest, failures=1, locked_until=None, updated_at=now
        )
        upsert = insert.on_conflict_do_update(
            index_elements=[login_throttle.c.email_digest],
            set_={"failures": login_throttle.c.failures + 1, "updated_at": now},
        ).returning(login_throttle.c.failures)
        return int((await self._session.execute(upsert)).scalar_one())

    async def lock(self, email_digest: bytes, until: datetime) -> None:
        # The counter restarts: after the lock, another full series of failures re-locks.
        await self._session.execute(
            sa.update(login_throttle)
            .where(login_throttle.c.email_digest == email_digest)
            .values(failures=0, locked_until=until)
        )

    async def clear_failures(self, email_digest: bytes) -> None:
        await self._session.execute(
            sa.delete(login_throttle).where(login_throttle.c.email_digest == email_digest)
        )

    async def add_refresh_token(
        self, token_hash: bytes, family_id: str, user_id: str, now: datetime, expires_at: datetime
    ) -> None:
        await self._session.execute(
            sa.insert(refresh_tokens).values(
                token_hash=token_hash,
                family_id=family_id,
                user_id=user_id,
                created_at=now,
                expires_at=expires_at,
            )
        )

    async def refresh_token(self, token_hash: bytes) -> RefreshToken | None:
        # FOR UPDATE: two concurrent refreshes of one token serialise; the second sees it used.
        query = (
            sa.select(refresh_tokens)
            .where(refresh_tokens.c.token_hash == token_hash)
            .with_for_update()
        )
        row = (await self._session.execute(query)).first()
        if row is None:
            return None
        return RefreshToken(
            family_id=str(row.family_id),
            user_id=str(row.user_id),
            expires_at=row.expires_at,
            used_at=row.used_at,
            revoked_at=row.revoked_at,
        )

    async def mark_used(self, token_hash: bytes, now: datetime) -> None:
        await self._session.execute(
            sa.update(refresh_tokens)
            .where(refresh_tokens.c.token_hash == token_hash)
            .values(used_at=now)
        )

    async def revoke_family(self, family_id: str, now: datetime) -> None:
        await self._session.execute(
            sa.update(refresh_tokens)
            .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def revoke_user(self, user_id: str, now: datetime) -> None:
        await self._session.execute(
            sa.update(refresh_tokens)
            .where(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )


def _credential(row: sa.Row[tuple[object, ...]]) -> Credential:
    return Credential(
        user_id=str(row.user_id),
        email=str(row.email),
        password_hash=str(row.password_hash),
        roles=tuple(row.roles),
        disabled=bool(row.disabled),
    )


def new_family_id() -> str:
    return str(uuid.uuid4())


__all__: Sequence[str] = ["SCHEMA", "AuthStore", "Credential", "RefreshToken", "connect", "digest"]
