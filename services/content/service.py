"""Content use cases: posts (idempotent create, etag-guarded update, soft delete) and comments.

Transport-free: raises platform domain errors, never imports grpc. Events (`post.published`,
`comment.created`) are written to the outbox in the same transaction as the change.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from mesh.content.v1 import events_pb2, post_pb2
from services.platform import outbox
from services.platform.cache import ProtoCache
from services.platform.db import Database
from services.platform.errors import (
    Aborted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from services.platform.identity import Caller
from services.platform.pagination import PageTokenCodec, clamp_page_size

from .store import DRAFT, PUBLISHED, ContentTables, PostRepository, comment_from_row, post_from_row

SOURCE: Final = "content"
POST_PUBLISHED: Final = "post.published"
COMMENT_CREATED: Final = "comment.created"
_PREVIEW_CHARS: Final = 140
UPDATABLE_FIELDS: Final = frozenset({"title", "body", "state"})


class AuthorDirectory(Protocol):
    """Confirms that a user may author content; raises Unavailable when it cannot tell."""

    async def ensure_active(self, user_id: str, credentials: str | None) -> None: ...


def parse_id(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument.for_field(field, "must be a UUID") from None


def _optional_id(value: str, field: str) -> uuid.UUID | None:
    return parse_id(value, field) if value else None


def _not_found(post_id: object) -> NotFound:
    return NotFound("post not found", reason="POST_NOT_FOUND", metadata={"id": str(post_id)})


def _can_see(post: post_pb2.Post, caller: Caller | None) -> bool:
    if post.state == PUBLISHED:
        return True
    return caller is not None and (caller.is_admin or caller.user_id == post.author_id)


def _owns(post: Any, caller: Caller) -> bool:
    return caller.is_admin or str(post.author_id) == caller.user_id


class ContentService:
    def __init__(
        self,
        database: Database,
        tables: ContentTables,
        authors: AuthorDirectory,
        cache: ProtoCache[post_pb2.Post],
        page_token_secret: bytes,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._database = database
        self._tables = tables
        self._authors = authors
        self._cache = cache
        self._posts_pages = PageTokenCodec(page_token_secret, scope="content.ListPosts")
        self._comments_pages = PageTokenCodec(page_token_secret, scope="content.ListComments")
        self._clock = clock

    # --- posts -----------------------------------------------------------------------

    async def create_post(
        self,
        caller: Caller,
        credentials: str | None,
        *,
        title: str,
        body: str,
        state: int,
        request_id: str,
    ) -> post_pb2.Post:
        if not title.strip():
            raise InvalidArgument.for_field("post.title", "must not be empty")
        author_id = parse_id(caller.user_id, "author")
        request_uuid = _optional_id(request_id, "request_id")
        if request_uuid is not None:
            # A retry of a create that already committed: answer without calling anyone.
            async with self._database.uow() as tx:
                existing = await PostRepository(tx.session, self._tables).post_by_request(
                    author_id, request_uuid
                )
            if existing is not None:
                return post_from_row(existing)
        # Before any write: when the user service cannot confirm the author, nothing is written.
        await self._authors.ensure_active(caller.user_id, credentials)
        state = state or DRAFT
        now = self._clock()
        async with self._database.uow() as tx:
            repo = PostRepository(tx.session, self._tables)
            row = await repo.insert_post(
                author_id=author_id,
                request_id=request_uuid,
                title=title,
                body=body,
                state=state,
                now=now,
            )
            if row is None:  # a concurrent call with the same request_id won the insert
                assert request_uuid is not None
                row = await repo.post_by_request(author_id, request_uuid)
                return post_from_row(row)
            if state == PUBLISHED:
                await self._emit_published(tx.session, row)
        return post_from_row(row)

    async def get_post(self, caller: Caller | None, post_id: str) -> post_pb2.Post:
        key = str(parse_id(post_id, "id"))
        post = await self._cache.get_or_load(key, lambda: self._load_post(key))
        if post is None or not _can_see(post, caller):
            # Others' drafts are indistinguishable from posts that do not exist.
            raise _not_found(post_id)
        return post

    async def _load_post(self, post_id: str) -> post_pb2.Post | None:
        async with self._database.uow() as tx:
            row = await PostRepository(tx.session, self._tables).get_post(uuid.UUID(post_id))
        return post_from_row(row) if row is not None else None

    async def list_posts(
        self,
        caller: Caller | None,
        *,
        page_size: int,
        page_token: str,
        author_id: str,
        state: int,
    ) -> tuple[list[post_pb2.Post], str]:
        limit = clamp_page_size(page_size, default=20, maximum=100)
        arguments = {"author_id": author_id, "state": state}
        if caller is not None:
            # A token is only good for the viewer it was minted for (drafts differ per viewer).
            arguments["viewer"] = caller.user_id
        cursor = self._posts_pages.decode(page_token, arguments)
        after = _cursor_key(cursor)
        async with self._database.uow() as tx:
            rows = await PostRepository(tx.session, self._tables).list_posts(
                viewer_id=parse_id(caller.user_id, "caller") if caller else None,
                author_id=_optional_id(author_id, "author_id"),
                state=state or None,
                after=after,
                limit=limit + 1,
            )
        posts = [post_from_row(row) for row in rows[:limit]]
        token = (
            self._posts_pages.encode(_cursor(rows[limit - 1]), arguments)
            if len(rows) > limit
            else ""
        )
        return posts, token

    async def update_post(
        self, caller: Caller, post: post_pb2.Post, update_mask: Sequence[str]
    ) -> post_pb2.Post:
        post_id = parse_id(post.id, "post.id")
        paths = list(update_mask)
        if not paths:
            raise InvalidArgument.for_field("update_mask", "name at least one field")
        unknown = sorted(set(paths) - UPDATABLE_FIELDS)
        if unknown:
            raise InvalidArgument.for_field("update_mask", f"cannot update {', '.join(unknown)}")
        values: dict[str, Any] = {}
        if "title" in paths:
            if not post.title.strip():
                raise InvalidArgument.for_field("post.title", "must not be empty")
            values["title"] = post.title
        if "body" in paths:
            values["body"] = post.body
        if "state" in paths:
            if post.state not in (DRAFT, PUBLISHED):
                raise InvalidArgument.for_field("post.state", "must be DRAFT or PUBLISHED")
            values["state"] = post.state
        now = self._clock()
        async with self._database.uow() as tx:
            repo = PostRepository(tx.session, self._tables)
            current = await repo.get_post(post_id, for_update=True)
            if current is None or not _can_see(post_from_row(current), caller):
                raise _not_found(post_id)
            if not _owns(current, caller):
                raise PermissionDenied("only the author may edit this post", reason="NOT_AUTHOR")
            first_publish = values.get("state") == PUBLISHED and current.publish_time is None
            if first_publish:
                values["publish_time"] = now
            updated = await repo.update_post(
                post_id, expected_etag=post.etag or current.etag, values=values, now=now
            )
            if updated is None:
                raise _etag_mismatch(post_id)
            if first_publish:
                await self._emit_published(tx.session, updated)
        await self._cache.delete(str(post_id))
        return post_from_row(updated)

    async def delete_post(self, caller: Caller, post_id: str, etag: str) -> None:
        key = parse_id(post_id, "id")
        now = self._clock()
        async with self._database.uow() as tx:
            repo = PostRepository(tx.session, self._tables)
            current = await repo.get_post(key, for_update=True)
            if current is None or not _can_see(post_from_row(current), caller):
                raise _not_found(key)
            if not _owns(current, caller):
                raise PermissionDenied("only the author may delete this post", reason="NOT_AUTHOR")
            deleted = await repo.update_post(
                key, expected_etag=etag or current.etag, values={"delete_time": now}, now=now
            )
            if deleted is None:
                raise _etag_mismatch(key)
        await self._cache.delete(str(key))

    # --- comments --------------------------------------------------------------------

    async def create_comment(
        self,
        caller: Caller,
        credentials: str | None,
        *,
        post_id: str,
        body: str,
        request_id: str,
    ) -> post_pb2.Comment:
        post_key = parse_id(post_id, "post_id")
        if not body.strip():
            raise InvalidArgument.for_field("comment.body", "must not be empty")
        author_id = parse_id(caller.user_id, "author")
        request_uuid = _optional_id(request_id, "request_id")
        if request_uuid is not None:
            async with self._database.uow() as tx:
                existing = await PostRepository(tx.session, self._tables).comment_by_request(
                    author_id, request_uuid
                )
            if existing is not None:
                return comment_from_row(existing)
        await self._authors.ensure_active(caller.user_id, credentials)
        now = self._clock()
        async with self._database.uow() as tx:
            repo = PostRepository(tx.session, self._tables)
            # Locked so the post cannot be unpublished or deleted under the new comment.
            post = await repo.get_post(post_key, for_update=True)
            if post is None or not _can_see(post_from_row(post), caller):
                raise _not_found(post_key)
            if post.state != PUBLISHED:
                raise FailedPrecondition(
                    "only published posts can be commented on", reason="POST_NOT_PUBLISHED"
                )
            row = await repo.insert_comment(
                post_id=post_key, author_id=author_id, request_id=request_uuid, body=body, now=now
            )
            if row is None:
                assert request_uuid is not None
                row = await repo.comment_by_request(author_id, request_uuid)
                return comment_from_row(row)
            await repo.count_comment(post_key)
            event = events_pb2.CommentCreatedEvent(
                comment_id=str(row.id),
                post_id=str(post_key),
                post_author_id=str(post.author_id),
                comment_author_id=caller.user_id,
                post_title=post.title,
                body_preview=body[:_PREVIEW_CHARS],
            )
            event.create_time.FromDatetime(now)
            await outbox.add_event(
                tx.session,
                outbox.new_envelope(COMMENT_CREATED, SOURCE, event, occur_time=now),
                self._tables.schema,
            )
        await self._cache.delete(str(post_key))  # comment_count changed
        return comment_from_row(row)

    async def list_comments(
        self, caller: Caller | None, *, post_id: str, page_size: int, page_token: str
    ) -> tuple[list[post_pb2.Comment], str]:
        post_key = parse_id(post_id, "post_id")
        limit = clamp_page_size(page_size, default=50, maximum=100)
        arguments = {"post_id": str(post_key)}
        cursor = self._comments_pages.decode(page_token, arguments)
        async with self._database.uow() as tx:
            repo = PostRepository(tx.session, self._tables)
            post = await repo.get_post(post_key)
            if post is None or not _can_see(post_from_row(post), caller):
                raise _not_found(post_key)
            rows = await repo.list_comments(post_key, after=_cursor_key(cursor), limit=limit + 1)
        comments = [comment_from_row(row) for row in rows[:limit]]
        token = (
            self._comments_pages.encode(_cursor(rows[limit - 1]), arguments)
            if len(rows) > limit
            else ""
        )
        return comments, token

    # --- events ----------------------------------------------------------------------

    async def _emit_published(self, session: Any, row: Any) -> None:
        event = events_pb2.PostPublishedEvent(
            post_id=str(row.id), author_id=str(row.author_id), title=row.title
        )
        event.publish_time.FromDatetime(row.publish_time)
        await outbox.add_event(
            session,
            outbox.new_envelope(POST_PUBLISHED, SOURCE, event, occur_time=row.publish_time),
            self._tables.schema,
        )


def _etag_mismatch(post_id: object) -> Aborted:
    return Aborted(
        "the post changed since it was read; read it again and retry",
        reason="ETAG_MISMATCH",
        metadata={"id": str(post_id)},
    )


def _cursor(row: Any) -> dict[str, str | int | float | bool | None]:
    return {"t": row.create_time.isoformat(), "id": str(row.id)}


def _cursor_key(cursor: dict[str, Any] | None) -> tuple[datetime, uuid.UUID] | None:
    if cursor is None:
        return None
    try:
        return datetime.fromisoformat(str(cursor["t"])), uuid.UUID(str(cursor["id"]))
    except (KeyError, ValueError):
        raise InvalidArgument.for_field(
            "page_token", "is malformed; start again without a page_token"
        ) from None
