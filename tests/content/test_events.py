"""Content events: written in the change's own transaction, relayed to the stream, never alone.

PostgreSQL stamps every row a transaction writes with that transaction's id (`xmin`), so
"the post and its event were written in one transaction" is checked directly, not inferred.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import sqlalchemy as sa
from google.protobuf.field_mask_pb2 import FieldMask

from mesh.content.v1 import content_service_pb2 as pb
from mesh.content.v1 import events_pb2, post_pb2
from mesh.events.v1 import envelope_pb2
from services.content.users import GrpcUserDirectory
from services.platform.cache import create_redis
from tests.content.conftest import ContentMesh, new_user
from tests.content.test_comments import comment
from tests.content.test_posts import DRAFT, PUBLISHED, count, create
from tests.platform.test_interceptors import details, rpc_error


async def xmins(mesh: ContentMesh, table: str, where: str) -> set[str]:
    async with mesh.database.uow() as tx:
        result = await tx.session.execute(
            sa.text(f'SELECT xmin::text FROM "{mesh.schema}".{table} WHERE {where}')  # noqa: S608
        )
        return {row[0] for row in result}


async def test_post_published_is_written_in_the_posts_transaction(content: ContentMesh) -> None:
    author = new_user()
    post = await create(content, author)
    post_tx = await xmins(content, "posts", f"id = '{post.id}'")
    event_tx = await xmins(content, "outbox", "type = 'post.published'")
    assert len(post_tx) == 1
    assert post_tx == event_tx

    # Publishing a draft later: the state change and its event share a transaction too.
    draft = await create(content, author, state=DRAFT)
    assert await count(content, "outbox") == 1  # drafts emit nothing
    await content.stub.UpdatePost(
        pb.UpdatePostRequest(
            post=post_pb2.Post(id=draft.id, state=PUBLISHED), update_mask=FieldMask(paths=["state"])
        ),
        metadata=content.auth(author),
    )
    published_tx = await xmins(content, "posts", f"id = '{draft.id}'")
    assert published_tx <= await xmins(content, "outbox", "type = 'post.published'")
    assert published_tx != post_tx


async def test_comment_created_is_written_in_the_comments_transaction(
    content: ContentMesh,
) -> None:
    post = await create(content, new_user())
    created = await comment(content, post.id, new_user())
    comment_tx = await xmins(content, "comments", f"id = '{created.id}'")
    assert len(comment_tx) == 1
    assert comment_tx == await xmins(content, "outbox", "type = 'comment.created'")
    # The post's comment_count moved in that same transaction.
    assert comment_tx == await xmins(content, "posts", f"id = '{post.id}'")


async def test_relay_moves_both_events_to_the_stream(content: ContentMesh, redis_url: str) -> None:
    author, reader = new_user(), new_user()
    post = await create(content, author)
    created = await comment(content, post.id, reader)
    stream = f"{content.schema}.events.content"
    redis = create_redis(redis_url)
    content.app.relay.start()
    try:
        deadline = time.monotonic() + 10
        while await redis.xlen(stream) < 2:
            assert time.monotonic() < deadline, "the relay did not publish both events"
            await asyncio.sleep(0.05)
        entries: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(stream)  # type: ignore[assignment]
    finally:
        await content.app.relay.stop()
        await redis.delete(stream)
        await redis.aclose()
    envelopes = [envelope_pb2.EventEnvelope.FromString(fields[b"payload"]) for _, fields in entries]
    assert [e.type for e in envelopes] == ["post.published", "comment.created"]
    assert {e.source for e in envelopes} == {"content"}
    published, commented = events_pb2.PostPublishedEvent(), events_pb2.CommentCreatedEvent()
    assert envelopes[0].payload.Unpack(published)
    assert envelopes[1].payload.Unpack(commented)
    assert (published.post_id, published.author_id) == (post.id, author)
    assert (commented.comment_id, commented.post_author_id) == (created.id, author)
    # Stream entries carry the envelope id, and every outbox row is marked sent.
    assert [fields[b"id"].decode() for _, fields in entries] == [e.id for e in envelopes]
    assert await count(content, "outbox", "sent_at IS NULL") == 0


async def test_user_service_down_writes_no_comment_and_no_event(content: ContentMesh) -> None:
    post = await create(content, new_user())
    assert await count(content, "outbox") == 1
    content.app.service.servicer._service._authors = GrpcUserDirectory("127.0.0.1:1", timeout=1.0)  # type: ignore[attr-defined]
    error = await rpc_error(
        content.stub.CreateComment(
            pb.CreateCommentRequest(post_id=post.id, comment=post_pb2.Comment(body="hi")),
            metadata=content.auth(new_user()),
        )
    )
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert details(error)[1]["ErrorInfo"].reason == "USER_SERVICE_UNAVAILABLE"
    assert await count(content, "comments") == 0
    assert await count(content, "outbox") == 1
    assert (await content.stub.GetPost(pb.GetPostRequest(id=post.id))).post.comment_count == 0
