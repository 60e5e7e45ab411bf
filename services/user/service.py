"""User use cases: sign-up, reads (cache-aside), updates with a mask, soft delete, listing.

Transport-free: raises platform domain errors, never imports grpc. Ownership and roles are
decided here from the verified caller: a user reads and edits only itself unless admin.

Accounts span two stores: the profile here, the credential at the auth service. No single
transaction covers both, so every change is ordered so that a failure at any step leaves no
half-created or half-changed account behind:

- Sign-up: (1) a *pending* row reserves the email (invisible to every read), (2) the auth
  service sets the credential, keyed by the new user id (idempotent), (3) one transaction
  turns the row live and writes the `user.created` outbox event. When (2) or (3) fails, the
  pending row is dropped and the credential disabled. When the process dies between (1) and
  (3), the stale pending row is cleaned up (credential disabled, row dropped) by the next
  sign-up for that email; a retry with the same `request_id` resumes the sign-up instead.
- Email and role changes, and deletion: the row is locked, the credential is changed at the
  auth service, then the row is updated and committed. If the commit fails after the auth
  service accepted the change, the credential is put back.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from sqlalchemy.exc import IntegrityError

from mesh.user.v1 import events_pb2, user_pb2
from services.platform import outbox
from services.platform.cache import ProtoCache
from services.platform.db import Database
from services.platform.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from services.platform.identity import Caller
from services.platform.pagination import PageTokenCodec, clamp_page_size

from .store import ROLE_NAMES, UserRepository, UserTables, user_from_row
from .validation import check_display_name, check_email, check_password

logger = logging.getLogger(__name__)

SOURCE: Final = "user"
USER_CREATED: Final = "user.created"
ME: Final = "me"
UPDATABLE_FIELDS: Final = frozenset({"display_name", "email", "role"})
# The roles an access token carries for each stored role.
TOKEN_ROLES: Final = {"user": ("user",), "admin": ("user", "admin")}


class CredentialStore(Protocol):
    """The auth service's credentials. Raises AlreadyExists (EMAIL_TAKEN), InvalidArgument
    (refused), or Unavailable (outcome unknown: the change may or may not have happened)."""

    async def set_credential(
        self,
        user_id: str,
        email: str,
        roles: Sequence[str],
        *,
        password: str = "",
        disabled: bool = False,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class _Credential:
    """What the auth service must know about a user for logins to yield the right tokens."""

    email: str
    role: str
    disabled: bool = False


def _email_taken() -> AlreadyExists:
    return AlreadyExists(
        "the email is already registered", reason="EMAIL_TAKEN", metadata={"field": "email"}
    )


def _not_found(user_id: str) -> NotFound:
    return NotFound("user not found", reason="USER_NOT_FOUND", metadata={"id": user_id})


def _parse_id(value: str, field: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidArgument.for_field(field, 'must be a UUID or "me"') from None


class UserService:
    def __init__(
        self,
        database: Database,
        tables: UserTables,
        credentials: CredentialStore,
        cache: ProtoCache[user_pb2.User],
        page_token_secret: bytes,
        *,
        stale_signup_after: timedelta = timedelta(seconds=30),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._database = database
        self._tables = tables
        self._credentials = credentials
        self._cache = cache
        self._pages = PageTokenCodec(page_token_secret, scope="user.ListUsers")
        self._stale_signup_after = stale_signup_after
        self._clock = clock
        # Ids whose cache invalidation Redis did not take (see `_invalidate`).
        self._unflushed: set[str] = set()

    # --- sign-up ---------------------------------------------------------------------

    async def create_user(
        self, *, email: str, password: str, display_name: str, request_id: str
    ) -> user_pb2.User:
        email = check_email(email, "email")
        name = check_display_name(display_name, "display_name")
        check_password(password, email, "password")
        request_key = str(_parse_request_id(request_id)) if request_id else None
        row = None
        if request_key is not None:
            async with self._database.uow() as tx:
                row = await UserRepository(tx.session, self._tables).by_request(request_key)
            if row is not None and row.delete_time is not None:
                raise _not_found(str(row.id))
            if row is not None and not row.pending:
                return user_from_row(row)  # a retry of a sign-up that finished
        if row is None:
            row = await self._reserve(email, name, request_key)
        return await self._finish_signup(row, password)

    async def _reserve(self, email: str, name: str, request_key: str | None) -> Any:
        """A pending row holding `email`; EMAIL_TAKEN when a live or in-flight user has it."""
        for _ in range(2):
            now = self._clock()
            try:
                async with self._database.uow() as tx:
                    repo = UserRepository(tx.session, self._tables)
                    row = await repo.insert_pending(
                        email=email, display_name=name, request_id=request_key, now=now
                    )
                    holder = None if row is not None else await repo.holder_of_email(email)
            except IntegrityError:
                # Lost a race on request_id with a concurrent retry of the same sign-up.
                raise _email_taken() from None
            if row is not None:
                return row
            if holder is None:
                continue  # the holder went away between the insert and the lookup
            if not holder.pending or now - holder.create_time < self._stale_signup_after:
                raise _email_taken()
            # A sign-up that died half way: clean it up, then take the email.
            logger.warning("cleaning up an unfinished sign-up", extra={"user_id": str(holder.id)})
            await self._abandon(str(holder.id), holder.email)
        raise _email_taken()

    async def _finish_signup(self, row: Any, password: str) -> user_pb2.User:
        user_id = str(row.id)
        try:
            await self._credentials.set_credential(
                user_id, row.email, TOKEN_ROLES["user"], password=password
            )
        except BaseException as error:
            # A definite refusal wrote nothing at auth; any other outcome (unreachable,
            # deadline, cancelled by the client) may have.
            refused = isinstance(error, AlreadyExists | InvalidArgument)
            await self._abandon(user_id, row.email, disable=not refused)
            raise
        try:
            now = self._clock()
            async with self._database.uow() as tx:
                repo = UserRepository(tx.session, self._tables)
                live = await repo.activate(user_id, now)
                if live is None:
                    finished = await repo.get(user_id)
                    if finished is not None:  # a retry with the same request_id won
                        return user_from_row(finished)
                    # Cleaned up as stale while the auth service was slow; the credential
                    # set above may have landed after that cleanup disabled it.
                    await self._disable(user_id, row.email)
                    raise Unavailable(
                        "the sign-up took too long; retry", reason="SIGNUP_INTERRUPTED"
                    )
                event = events_pb2.UserCreatedEvent(
                    user_id=user_id, email=live.email, display_name=live.display_name
                )
                event.create_time.FromDatetime(live.create_time)
                await outbox.add_event(
                    tx.session,
                    outbox.new_envelope(USER_CREATED, SOURCE, event, occur_time=now),
                    self._tables.schema,
                )
        except BaseException:
            await self._abandon(user_id, row.email)
            raise
        return user_from_row(live)

    async def _abandon(self, user_id: str, email: str, *, disable: bool = True) -> None:
        """Undoes an unfinished sign-up: credential disabled, then the pending row dropped.

        The pending row stays locked meanwhile, so a sign-up that is merely slow cannot
        turn it live in between (it then finds no pending row and gives up).
        """
        async with self._database.uow() as tx:
            repo = UserRepository(tx.session, self._tables)
            if not await repo.lock_pending(user_id):
                return  # finished after all (the commit went through) or already cleaned up
            if disable and not await self._disable(user_id, email):
                # Keep the pending row, which holds the user id, but backdated: the next
                # sign-up for this email then retries the cleanup at once.
                await repo.backdate_pending(user_id, self._clock() - self._stale_signup_after)
                return
            await repo.delete_pending(user_id)

    async def _disable(self, user_id: str, email: str) -> bool:
        """Disables the credential of `user_id`; False when the auth service cannot say."""
        try:
            await self._credentials.set_credential(
                user_id, email, TOKEN_ROLES["user"], disabled=True
            )
        except InvalidArgument:
            pass  # no credential was ever created for this user: nothing to disable
        except DomainError:
            logger.warning("could not disable an unfinished sign-up's credential")
            return False
        return True

    # --- reads -----------------------------------------------------------------------

    async def get_user(self, caller: Caller, user_id: str) -> user_pb2.User:
        key = self._authorised_id(caller, user_id, "id")
        # While an earlier invalidation is still owed, Redis may hold pre-write values.
        use_cache = await self._flush_invalidations()
        user = await self._cache.get(key) if use_cache else None
        if user is None:
            user = await self._load(key)
            if user is None:
                raise _not_found(key)
            if use_cache:
                # NX: a writer that invalidated meanwhile must not have its change hidden by
                # what this reader loaded before it.
                await self._cache.set(key, user, if_absent=True)
        return user

    async def _invalidate(self, user_id: str) -> None:
        if not await self._cache.delete(user_id):
            # Redis is unreachable; if it comes back with its data (persistence, or a mere
            # network blip) the old entry would be served: owe the invalidation until then.
            self._unflushed.add(user_id)

    async def _flush_invalidations(self) -> bool:
        """Delivers owed invalidations; False while Redis still cannot take them."""
        if not self._unflushed:
            return True
        owed = list(self._unflushed)
        if not await self._cache.delete(*owed):
            return False
        self._unflushed.difference_update(owed)
        return True

    async def _load(self, user_id: str) -> user_pb2.User | None:
        async with self._database.uow() as tx:
            row = await UserRepository(tx.session, self._tables).get(user_id)
        return user_from_row(row) if row is not None else None

    async def list_users(
        self, caller: Caller, *, page_size: int, page_token: str, role: int, email_prefix: str
    ) -> tuple[list[user_pb2.User], str]:
        if not caller.is_admin:
            raise PermissionDenied("only administrators list users", reason="ADMIN_REQUIRED")
        limit = clamp_page_size(page_size, default=50, maximum=100)
        if role != user_pb2.ROLE_UNSPECIFIED and role not in ROLE_NAMES:
            raise InvalidArgument.for_field("role", "must be ROLE_USER or ROLE_ADMIN")
        prefix = email_prefix.strip().lower()
        arguments = {"role": role, "email_prefix": prefix}
        after = _cursor_key(self._pages.decode(page_token, arguments))
        async with self._database.uow() as tx:
            rows = await UserRepository(tx.session, self._tables).list(
                role=ROLE_NAMES.get(role), email_prefix=prefix, after=after, limit=limit + 1
            )
        users = [user_from_row(row) for row in rows[:limit]]
        token = ""
        if len(rows) > limit:
            last = rows[limit - 1]
            token = self._pages.encode(
                {"t": last.create_time.isoformat(), "id": str(last.id)}, arguments
            )
        return users, token

    # --- writes ----------------------------------------------------------------------

    async def update_user(
        self, caller: Caller, user: user_pb2.User, update_mask: Sequence[str]
    ) -> user_pb2.User:
        key = self._authorised_id(caller, user.id, "user.id")
        paths = list(dict.fromkeys(update_mask))
        if not paths:
            raise InvalidArgument.for_field("update_mask", "name at least one field")
        unknown = sorted(set(paths) - UPDATABLE_FIELDS)
        if unknown:
            raise InvalidArgument.for_field("update_mask", f"cannot update {', '.join(unknown)}")
        if "role" in paths and not caller.is_admin:
            raise PermissionDenied("only administrators change roles", reason="ROLE_CHANGE_DENIED")
        values: dict[str, Any] = {}
        if "display_name" in paths:
            values["display_name"] = check_display_name(user.display_name, "user.display_name")
        if "email" in paths:
            values["email"] = check_email(user.email, "user.email")
        if "role" in paths:
            if user.role not in ROLE_NAMES:
                raise InvalidArgument.for_field("user.role", "must be ROLE_USER or ROLE_ADMIN")
            values["role"] = ROLE_NAMES[user.role]
        return user_from_row(await self._change(key, values))

    async def delete_user(self, caller: Caller, user_id: str) -> None:
        key = self._authorised_id(caller, user_id, "id")
        await self._change(key, {"delete_time": self._clock()})

    async def set_role_by_email(self, email: str, role: int) -> user_pb2.User:
        """Operator path (the `promote-admin` command): no caller, no public RPC."""
        normalised = check_email(email, "email")
        async with self._database.uow() as tx:
            row = await UserRepository(tx.session, self._tables).get_by_email(normalised)
        if row is None:
            raise NotFound("no live user has this email", reason="USER_NOT_FOUND")
        return user_from_row(await self._change(str(row.id), {"role": ROLE_NAMES[role]}))

    async def _change(self, user_id: str, values: dict[str, Any]) -> Any:
        """Applies `values` to a live user, the auth credential first when it is affected."""
        before: _Credential | None = None
        after: _Credential | None = None
        try:
            async with self._database.uow() as tx:
                repo = UserRepository(tx.session, self._tables)
                # Admin rows first, then the target (one lock order: no deadlock).
                may_remove_admin = "role" in values or "delete_time" in values
                admins = await repo.lock_live_admins() if may_remove_admin else []
                current = await repo.get(user_id, for_update=True)
                if current is None:
                    raise _not_found(user_id)
                removes_admin = current.role == "admin" and (
                    values.get("role", "admin") != "admin" or "delete_time" in values
                )
                if removes_admin and admins == [str(current.id)]:
                    raise FailedPrecondition(
                        "the last administrator cannot be demoted or deleted; promote another "
                        "account first",
                        reason="LAST_ADMIN",
                    )
                email = values.get("email", current.email)
                if email != current.email and await repo.email_taken(email, user_id):
                    raise _email_taken()
                before = _Credential(current.email, current.role)
                wanted = _Credential(
                    email, values.get("role", current.role), "delete_time" in values
                )
                if wanted != before:
                    await self._set(user_id, wanted)
                    after = wanted
                updated = await repo.update(user_id, values, self._clock())
        except BaseException as error:
            if after is not None and before is not None:
                await self._restore(user_id, before)
            if isinstance(error, IntegrityError):
                # A concurrent sign-up or change took the email between check and update.
                raise _email_taken() from None
            raise
        finally:
            # Also after a failure: the row may have changed under a stale cache entry.
            await self._invalidate(user_id)
        return updated

    async def _set(self, user_id: str, credential: _Credential) -> None:
        await self._credentials.set_credential(
            user_id, credential.email, TOKEN_ROLES[credential.role], disabled=credential.disabled
        )

    async def _restore(self, user_id: str, credential: _Credential) -> None:
        try:
            await self._set(user_id, credential)
        except DomainError:
            logger.error(
                "could not restore a credential after a failed change", extra={"user_id": user_id}
            )

    # --- helpers ---------------------------------------------------------------------

    def _authorised_id(self, caller: Caller, user_id: str, field: str) -> str:
        """The id `user_id` names ("me": the caller), if the caller may act on it."""
        key = _parse_id(caller.user_id if user_id == ME else user_id, field)
        if key != caller.user_id.lower() and not caller.is_admin:
            raise PermissionDenied(
                "users may only act on their own account", reason="NOT_ACCOUNT_OWNER"
            )
        return key


def _parse_request_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument.for_field("request_id", "must be a UUID") from None


def _cursor_key(cursor: dict[str, Any] | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        return datetime.fromisoformat(str(cursor["t"])), str(uuid.UUID(str(cursor["id"])))
    except (KeyError, ValueError):
        raise InvalidArgument.for_field(
            "page_token", "is malformed; start again without a page_token"
        ) from None
