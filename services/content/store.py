"""Posts and comments in PostgreSQL (schema `content`) and the post cache in Redis.

Rows are turned into the contract's messages (`Post`, `Comment`) right here: the protos are
the domain model, so there is no second set of classes to keep in step with them.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from mesh.content.v1 import post_pb2
from services.platform.db import keyset_page

DRAFT = post_pb2.POST_STATE_DRAFT
PUBLISHED = post_pb2.POST_STATE_PUBLISHED


class ContentTables:
    """The tables of one schema (`content` in production, a throwaway one in tests)."""

    def __init__(self, schema: str) -> None:
        self.schema = schema
        metadata = sa.MetaData(schema=schema)
        self.posts = sa.Table(
            "posts",
            metadata,
            sa.Column("id", sa.Uuid, primary_key=True),
            sa.Column("author_id", sa.Uuid, nullable=False),
            sa.Column("request_id", sa.Uuid),
            sa.Column("title", sa.Text, nullable=False),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("state", sa.SmallInteger, nullable=False),
            sa.Column("etag", sa.Text, nullable=False),
            sa.Column("comment_count", sa.Integer, nullable=False),
            sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
            sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
            sa.Column("publish_time", sa.DateTime(timezone=True)),
            sa.Column("delete_time", sa.DateTime(timezone=True)),
        )
        self.comments = sa.Table(
            "comments",
            metadata,
            sa.Column("id", sa.Uuid, primary_key=True),
            sa.Column("post_id", sa.Uuid, nullable=False),
            sa.Column("author_id", sa.Uuid, nullable=False),
            sa.Column("request_id", sa.Uuid),
            sa.Column("body", sa.Text, nullable=False),
            sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        )


def new_etag() -> str:
    """An opaque etag; a fresh random value per version, so it reveals nothing."""
    return secrets.token_urlsafe(12)


def _ts(value: datetime | None, message: Any) -> None:
    if value is not None:
        message.FromDatetime(value)


def post_from_row(row: Any) -> post_pb2.Post:
    post = post_pb2.Post(
        id=str(row.id),
        author_id=str(row.author_id),
        title=row.title,
        body=row.body,
        state=row.state,
        etag=row.etag,
        comment_count=row.comment_count,
    )
    _ts(row.create_time, post.create_time)
    _ts(row.update_time, post.update_time)
    _ts(row.publish_time, post.publish_time)
    return post


def comment_from_row(row: Any) -> post_pb2.Comment:
    comment = post_pb2.Comment(
        id=str(row.id), post_id=str(row.post_id), author_id=str(row.author_id), body=row.body
    )
    _ts(row.create_time, comment.create_time)
    return comment


class PostRepository:
    """Queries of one unit of work (one session, one transaction)."""

    def __init__(self, session: AsyncSession, tables: ContentTables) -> None:
        self._session = session
        self._t = tables

    async def insert_post(
        self,
        *,
        author_id: uuid.UUID,
        request_id: uuid.UUID | None,
        title: str,
        body: str,
        state: int,
        now: datetime,
    ) -> Any | None:
        """The new row, or None when (author, request_id) already exists."""
        posts = self._t.posts
        statement = (
            pg_insert(posts)
            .values(
                id=uuid.uuid4(),
                author_id=author_id,
                request_id=request_id,
                title=title,
                body=body,
                state=state,
                etag=new_etag(),
                comment_count=0,
                create_time=now,
                update_time=now,
                publish_time=now if state == PUBLISHED else None,
            )
            .on_conflict_do_nothing(index_elements=["author_id", "request_id"])
            .returning(*posts.c)
        )
        return (await self._session.execute(statement)).one_or_none()

    async def post_by_request(self, author_id: uuid.UUID, request_id: uuid.UUID) -> Any | None:
        posts = self._t.posts
        statement = sa.select(posts).where(
            posts.c.author_id == author_id, posts.c.request_id == request_id
        )
        return (await self._session.execute(statement)).one_or_none()

    async def get_post(self, post_id: uuid.UUID, *, for_update: bool = False) -> Any | None:
        """The live (not deleted) post, optionally locked for the rest of the transaction."""
        posts = self._t.posts
        statement = sa.select(posts).where(posts.c.id == post_id, posts.c.delete_time.is_(None))
        if for_update:
            statement = statement.with_for_update()
        return (await self._session.execute(statement)).one_or_none()

    async def update_post(
        self,
        post_id: uuid.UUID,
        *,
        expected_etag: str,
        values: dict[str, Any],
        now: datetime,
    ) -> Any | None:
        """Compare-and-set on the etag: the updated row, or None when the etag moved on."""
        posts = self._t.posts
        statement = (
            sa.update(posts)
            .where(
                posts.c.id == post_id,
                posts.c.etag == expected_etag,
                posts.c.delete_time.is_(None),
            )
            .values(**values, etag=new_etag(), update_time=now)
            .returning(*posts.c)
        )
        return (await self._session.execute(statement)).one_or_none()

    async def list_posts(
        self,
        *,
        viewer_id: uuid.UUID | None,
        author_id: uuid.UUID | None,
        state: int | None,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> list[Any]:
        """Newest first: published posts, plus the viewer's own drafts."""
        posts = self._t.posts
        visible = posts.c.state == PUBLISHED
        if viewer_id is not None:
            visible = sa.or_(visible, posts.c.author_id == viewer_id)
        statement = sa.select(posts).where(posts.c.delete_time.is_(None), visible)
        if author_id is not None:
            statement = statement.where(posts.c.author_id == author_id)
        if state is not None:
            statement = statement.where(posts.c.state == state)
        statement = keyset_page(
            statement,
            posts.c.create_time,
            posts.c.id,
            after=after,
            limit=limit,
            newest_first=True,
        )
        return list((await self._session.execute(statement)).all())

    async def insert_comment(
        self,
        *,
        post_id: uuid.UUID,
        author_id: uuid.UUID,
        request_id: uuid.UUID | None,
        body: str,
        now: datetime,
    ) -> Any | None:
        """The new row, or None when (author, request_id) already exists."""
        comments = self._t.comments
        statement = (
            pg_insert(comments)
            .values(
                id=uuid.uuid4(),
                post_id=post_id,
                author_id=author_id,
                request_id=request_id,
                body=body,
                create_time=now,
            )
            .on_conflict_do_nothing(index_elements=["author_id", "request_id"])
            .returning(*comments.c)
        )
        return (await self._session.execute(statement)).one_or_none()

    async def comment_by_request(self, author_id: uuid.UUID, request_id: uuid.UUID) -> Any | None:
        comments = self._t.comments
        statement = sa.select(comments).where(
            comments.c.author_id == author_id, comments.c.request_id == request_id
        )
        return (await self._session.execute(statement)).one_or_none()

    async def count_comment(self, post_id: uuid.UUID) -> None:
        posts = self._t.posts
        await self._session.execute(
            sa.update(posts)
            .where(posts.c.id == post_id)
            .values(comment_count=posts.c.comment_count + 1)
        )

    async def list_comments(
        self, post_id: uuid.UUID, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> list[Any]:
        """Oldest first."""
        comments = self._t.comments
        statement = sa.select(comments).where(comments.c.post_id == post_id)
        statement = keyset_page(
            statement,
            comments.c.create_time,
            comments.c.id,
            after=after,
            limit=limit,
            newest_first=False,
        )
        return list((await self._session.execute(statement)).all())
