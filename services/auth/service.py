"""Use cases of the auth service: login, refresh rotation, logout, JWKS, credentials.

No grpc here: failures are platform domain errors, mapped to statuses by the interceptor.
Password hashing never runs on the event loop (see services.platform.passwords), and no
database connection is held while a hash is computed.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy.exc import IntegrityError

from services.auth.keys import KeyRing, TokenIssuer
from services.auth.store import AuthStore, Credential, digest, new_family_id
from services.platform.db import Database
from services.platform.errors import (
    AlreadyExists,
    DomainError,
    InvalidArgument,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
)
from services.platform.identity import Caller
from services.platform.passwords import PasswordHasher

logger = logging.getLogger(__name__)

KNOWN_ROLES: Final = ("user", "admin")
TOKEN_TYPE: Final = "Bearer"  # noqa: S105 (the token scheme, not a secret)
# The one answer to every failed credential check: unknown email, wrong password, disabled.
_BAD_CREDENTIALS: Final = "the email or password is incorrect"


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = TOKEN_TYPE

    def __repr__(self) -> str:  # never print tokens, even in a debugger or a failed assert
        return f"TokenPair(expires_in={self.expires_in})"


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    max_failures: int = 5
    lock_seconds: int = 900
    refresh_ttl_seconds: int = 30 * 24 * 3600


def normalise_email(email: str) -> str:
    return email.strip().lower()


def invalid_credentials() -> Unauthenticated:
    return Unauthenticated(_BAD_CREDENTIALS, reason="INVALID_CREDENTIALS")


def invalid_token() -> Unauthenticated:
    return Unauthenticated("the refresh token is not valid", reason="INVALID_TOKEN")


class AuthService:
    def __init__(
        self,
        database: Database,
        hasher: PasswordHasher,
        keys: KeyRing,
        issuer: TokenIssuer,
        policy: LoginPolicy,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._db = database
        self._hasher = hasher
        self._keys = keys
        self._issuer = issuer
        self._policy = policy
        self._clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    # --- login ----------------------------------------------------------------------------

    async def login(self, email: str, password: str) -> TokenPair:
        email = normalise_email(email)
        email_digest = digest(email)
        async with self._db.uow() as tx:
            store = AuthStore(tx.session)
            locked_until = await store.locked_until(email_digest)
            credential = await store.credential_by_email(email)
        if locked_until is not None and locked_until > self._now():
            # Known and unknown emails lock alike (the throttle is keyed by email).
            raise ResourceExhausted(
                "too many failed logins; try again later",
                reason="ACCOUNT_LOCKED",
                metadata={"retry_after_seconds": str(self._seconds_until(locked_until))},
            )
        if credential is None:
            await self._hasher.verify_unknown(password)  # same time as a real mismatch
            matched = False
        else:
            matched = await self._hasher.verify(credential.password_hash, password)
        if credential is None or not matched:
            await self._record_failure(email_digest)
            raise invalid_credentials()
        rehashed = None
        if self._hasher.needs_rehash(credential.password_hash):
            rehashed = await self._hasher.hash(password)
        return await self._start_session(credential.user_id, email_digest, rehashed)

    async def _record_failure(self, email_digest: bytes) -> None:
        now = self._now()
        async with self._db.uow() as tx:
            store = AuthStore(tx.session)
            failures = await store.record_failure(email_digest, now)
            if failures >= self._policy.max_failures:
                await store.lock(email_digest, now + timedelta(seconds=self._policy.lock_seconds))
                logger.warning("login locked after repeated failures")

    async def _start_session(
        self, user_id: str, email_digest: bytes, rehashed: str | None
    ) -> TokenPair:
        now = self._now()
        async with self._db.uow() as tx:
            store = AuthStore(tx.session)
            credential = await store.credential_by_id(user_id, for_update=True)
            if credential is None or credential.disabled:  # deleted while we were hashing
                raise invalid_credentials()
            await store.clear_failures(email_digest)
            if rehashed is not None:
                await store.set_password_hash(user_id, rehashed, now)
                logger.info("password rehashed with current parameters")
            refresh_token = await self._add_refresh_token(store, new_family_id(), user_id, now)
        access = self._issuer.issue(user_id, credential.roles)
        return TokenPair(access.token, refresh_token, access.expires_in)

    async def _add_refresh_token(
        self, store: AuthStore, family_id: str, user_id: str, now: datetime
    ) -> str:
        token = secrets.token_urlsafe(32)
        expires_at = now + timedelta(seconds=self._policy.refresh_ttl_seconds)
        await store.add_refresh_token(digest(token), family_id, user_id, now, expires_at)
        return token

    def _seconds_until(self, moment: datetime) -> int:
        return max(1, int((moment - self._now()).total_seconds()) + 1)

    # --- refresh and logout ---------------------------------------------------------------

    async def refresh(self, refresh_token: str) -> TokenPair:
        token_hash = digest(refresh_token)
        now = self._now()
        failure: DomainError | None = None
        new_token = ""
        roles: tuple[str, ...] = ()
        user_id = ""
        # Failures are raised after the unit of work so that a family revocation commits.
        async with self._db.uow() as tx:
            store = AuthStore(tx.session)
            row = await store.refresh_token(token_hash)
            if row is None or row.revoked_at is not None:
                failure = invalid_token()
            elif row.used_at is not None:
                await store.revoke_family(row.family_id, now)
                logger.warning("refresh token reused; family revoked")
                failure = Unauthenticated(
                    "the refresh token was already used; sign in again", reason="TOKEN_REUSED"
                )
            elif row.expires_at <= now:
                failure = Unauthenticated("the refresh token has expired", reason="TOKEN_EXPIRED")
            else:
                credential = await store.credential_by_id(row.user_id)
                if credential is None or credential.disabled:
                    await store.revoke_family(row.family_id, now)
                    failure = invalid_token()
                else:
                    await store.mark_used(token_hash, now)
                    new_token = await self._add_refresh_token(
                        store, row.family_id, row.user_id, now
                    )
                    user_id, roles = credential.user_id, credential.roles
        if failure is not None:
            raise failure
        access = self._issuer.issue(user_id, roles)
        return TokenPair(access.token, new_token, access.expires_in)

    async def logout(self, caller: Caller, refresh_token: str) -> None:
        async with self._db.uow() as tx:
            store = AuthStore(tx.session)
            row = await store.refresh_token(digest(refresh_token))
            if row is None:
                raise invalid_token()
            if row.user_id != caller.user_id and not caller.is_admin:
                raise PermissionDenied(
                    "the refresh token belongs to another user", reason="NOT_TOKEN_OWNER"
                )
            await store.revoke_family(row.family_id, self._now())

    # --- keys and credentials -------------------------------------------------------------

    def jwks(self) -> list[dict[str, str]]:
        return self._keys.jwks()["keys"]

    async def set_credential(
        self,
        user_id: str,
        email: str,
        password: str,
        roles: Sequence[str],
        *,
        disabled: bool,
    ) -> None:
        """Creates or replaces the credential of `user_id` (idempotent)."""
        email = normalise_email(email)
        wanted_roles = tuple(dict.fromkeys(role for role in roles if role in KNOWN_ROLES))
        new_hash = await self._hasher.hash(password) if password else None
        now = self._now()
        try:
            async with self._db.uow() as tx:
                store = AuthStore(tx.session)
                current = await store.credential_by_id(user_id, for_update=True)
                if current is None and new_hash is None:
                    raise InvalidArgument.for_field("password", "is required for a new credential")
                if not disabled and await store.email_taken_by_other(email, user_id):
                    raise _email_taken()
                credential = Credential(
                    user_id=user_id,
                    email=email,
                    password_hash=new_hash or (current.password_hash if current else ""),
                    roles=wanted_roles or (current.roles if current else ("user",)),
                    disabled=disabled,
                )
                await store.upsert_credential(credential, now)
                if disabled:
                    await store.revoke_user(user_id, now)
        except IntegrityError:
            # Lost a race with a concurrent SetCredential for the same email.
            raise _email_taken() from None


def _email_taken() -> AlreadyExists:
    return AlreadyExists(
        "the email is already registered", reason="EMAIL_TAKEN", metadata={"field": "email"}
    )
