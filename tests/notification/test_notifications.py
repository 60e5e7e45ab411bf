"""Notifications from real events: outbox → relay → stream → consumer → gRPC reads and writes.

Sign-ups are user.created rows written to a user outbox exactly as the user service writes
them; comments go through the real content service and its relay.
"""

from __future__ import annotations

import asyncio
import uuid

import grpc
import sqlalchemy as sa
from google.protobuf.field_mask_pb2 import FieldMask
from redis.asyncio import Redis

from mesh.notification.v1 import notification_pb2
from mesh.notification.v1 import notification_service_pb2 as pb
from services.platform import outbox
from services.platform.cache import create_redis
from tests.content.conftest import ContentMesh, new_user
from tests.content.test_comments import comment
from tests.content.test_posts import create
from tests.notification.conftest import Env, eventually
from tests.notification.helpers import all_acknowledged, arrived, listed
from tests.platform.test_interceptors import details, rpc_error

WELCOME = notification_pb2.NOTIFICATION_KIND_WELCOME
COMMENT = notification_pb2.NOTIFICATION_KIND_COMMENT


async def test_sign_up_gets_one_welcome_notification(env: Env, relay: outbox.OutboxRelay) -> None:
    async with env.replica() as replica:
        event = await env.user_created(name="Grace")
        (welcome,) = await arrived(replica, env, event.user_id)
    assert welcome.kind == WELCOME
    assert welcome.user_id == event.user_id
    assert "Grace" in welcome.body
    assert not welcome.read
    async with env.database.uow() as tx:
        event_id = (
            await tx.session.execute(sa.text(f'SELECT id FROM "{env.user_schema}".outbox'))  # noqa: S608
        ).scalar_one()
    assert welcome.event_id == str(event_id)
    assert await env.count() == 1


async def test_a_comment_notifies_the_post_author_exactly_once(
    env: Env, content: ContentMesh
) -> None:
    author, reader = new_user(), new_user()
    async with env.replica() as replica:
        post = await create(content, author, title="Streams")
        await comment(content, post.id, author)  # authors are not told of their own comments
        theirs = await comment(content, post.id, reader)
        (notified,) = await arrived(replica, env, author)
        # The stream is handled in order: the reader's comment arriving means the author's
        # own comment (and post.published) were handled before it, and notified nobody.
        assert await env.count() == 1
        assert await listed(replica, env, reader) == []
    assert notified.kind == COMMENT
    assert (notified.post_id, notified.comment_id) == (post.id, theirs.id)
    assert "Streams" in notified.title
    assert notified.body == "nice"


async def test_a_redelivered_event_never_notifies_twice(
    env: Env, relay: outbox.OutboxRelay
) -> None:
    redis = create_redis(env.redis_url)
    try:
        async with env.replica() as replica:
            first = await env.sign_up()
            await arrived(replica, env, first)
            # As if a relay died after XADD but before its commit: the row is sent again.
            async with env.database.uow() as tx:
                await tx.session.execute(
                    sa.text(f'UPDATE "{env.user_schema}".outbox SET sent_at = NULL')  # noqa: S608
                )
            await eventually(lambda: _xlen_is(redis, env.user_stream, 2))
            entries: list[tuple[bytes, dict[bytes, bytes]]] = await redis.xrange(env.user_stream)  # type: ignore[assignment]
            assert entries[0][1][b"id"] == entries[1][1][b"id"]  # the same event, twice
            second = await env.sign_up()  # handled after the duplicate: a barrier
            await arrived(replica, env, second)
            assert len(await listed(replica, env, first)) == 1
            assert await env.count() == 2
            # The duplicate was acknowledged, not left behind (each XACK follows its commit).
            await eventually(lambda: all_acknowledged(redis, env.user_stream))
    finally:
        await redis.aclose()


async def test_concurrent_deliveries_of_one_event_make_one_notification(env: Env) -> None:
    event = await env.user_created()
    async with env.database.uow() as tx:
        payload = (
            await tx.session.execute(sa.text(f'SELECT payload FROM "{env.user_schema}".outbox'))  # noqa: S608
        ).scalar_one()
    envelope = outbox.EventEnvelope.FromString(payload)
    async with env.replica(consume=False) as replica:
        await asyncio.gather(*(replica.app.core.handle_event(envelope) for _ in range(5)))
        assert len(await listed(replica, env, event.user_id)) == 1


async def test_list_is_newest_first_and_paginated(env: Env, content: ContentMesh) -> None:
    author = new_user()
    async with env.replica() as replica:
        post = await create(content, author)
        comment_ids = [(await comment(content, post.id, new_user())).id for _ in range(5)]
        await arrived(replica, env, author, 5)
        pages = []
        token = ""
        while True:
            page = await replica.stub.ListNotifications(
                pb.ListNotificationsRequest(page_size=2, page_token=token),
                metadata=env.auth(author),
            )
            pages.append(len(page.notifications))
            token = page.next_page_token
            if not token:
                break
        assert pages == [2, 2, 1]
        everything = await listed(replica, env, author, page_size=2)
        assert [n.comment_id for n in everything] == list(reversed(comment_ids))
        times = [n.create_time.ToDatetime() for n in everything]
        assert times == sorted(times, reverse=True)

        first = await replica.stub.ListNotifications(
            pb.ListNotificationsRequest(page_size=2), metadata=env.auth(author)
        )
        forged = first.next_page_token[:-4] + (
            "AAAA" if first.next_page_token[-4:] != "AAAA" else "BBBB"
        )
        misuses = [
            (author, pb.ListNotificationsRequest(page_size=2, page_token=forged)),
            (author, pb.ListNotificationsRequest(page_token="not-a-token")),
            # A real token, but another caller's, or for another query.
            (new_user(), pb.ListNotificationsRequest(page_token=first.next_page_token)),
            (
                author,
                pb.ListNotificationsRequest(page_token=first.next_page_token, unread_only=True),
            ),
        ]
        for caller, request in misuses:
            error = await rpc_error(
                replica.stub.ListNotifications(request, metadata=env.auth(caller))
            )
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            fields = [v.field for v in details(error)[1]["BadRequest"].field_violations]
            assert fields == ["page_token"]


async def test_mark_read_one_and_all_and_unread_count(env: Env, content: ContentMesh) -> None:
    author, stranger = new_user(), new_user()
    async with env.replica() as replica:
        post = await create(content, author)
        for _ in range(3):
            await comment(content, post.id, new_user())
        newest, *_ = await arrived(replica, env, author, 3)

        async def unread(user: str) -> int:
            response = await replica.stub.GetUnreadCount(
                pb.GetUnreadCountRequest(), metadata=env.auth(user)
            )
            return response.unread_count

        assert await unread(author) == 3
        assert await unread(stranger) == 0
        error = await rpc_error(
            replica.stub.MarkNotificationRead(
                pb.MarkNotificationReadRequest(id=newest.id), metadata=env.auth(stranger)
            )
        )
        assert error.code() == grpc.StatusCode.NOT_FOUND  # someone else's: not even its existence
        for _ in range(2):  # idempotent
            marked = await replica.stub.MarkNotificationRead(
                pb.MarkNotificationReadRequest(id=newest.id), metadata=env.auth(author)
            )
            assert marked.notification.read
            assert marked.notification.id == newest.id
        assert await unread(author) == 2
        still_unread = await listed(replica, env, author, unread_only=True)
        assert newest.id not in {n.id for n in still_unread}
        assert len(still_unread) == 2

        everything = await replica.stub.MarkAllNotificationsRead(
            pb.MarkAllNotificationsReadRequest(), metadata=env.auth(author)
        )
        assert everything.marked_count == 2
        assert await unread(author) == 0
        again = await replica.stub.MarkAllNotificationsRead(
            pb.MarkAllNotificationsReadRequest(), metadata=env.auth(author)
        )
        assert again.marked_count == 0
        assert all(n.read for n in await listed(replica, env, author))


async def test_bad_input_names_the_field_and_changes_nothing(env: Env) -> None:
    user = str(uuid.uuid4())
    async with env.replica(consume=False) as replica:
        stub, auth = replica.stub, env.auth(user)
        cases = [
            (
                stub.MarkNotificationRead(pb.MarkNotificationReadRequest(id="nope"), metadata=auth),
                "id",
            ),
            (stub.MarkNotificationRead(pb.MarkNotificationReadRequest(), metadata=auth), "id"),
            (
                stub.ListNotifications(pb.ListNotificationsRequest(page_size=-1), metadata=auth),
                "page_size",
            ),
            (
                stub.ListNotifications(
                    pb.ListNotificationsRequest(page_token="x" * 3000), metadata=auth
                ),
                "page_token",
            ),
            (
                stub.UpdateNotificationSettings(
                    pb.UpdateNotificationSettingsRequest(
                        settings=notification_pb2.NotificationSettings(email_enabled=True),
                        update_mask=FieldMask(paths=["email_enabled", "email"]),
                    ),
                    metadata=auth,
                ),
                "update_mask",
            ),
        ]
        for call, field in cases:
            error = await rpc_error(call)
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, field
            fields = [v.field for v in details(error)[1]["BadRequest"].field_violations]
            assert any(f.startswith(field) for f in fields), (field, fields)
            assert "Traceback" not in (error.details() or "")
        settings = await stub.GetNotificationSettings(
            pb.GetNotificationSettingsRequest(), metadata=auth
        )
        assert not settings.settings.email_enabled  # the rejected update wrote nothing
        error = await rpc_error(stub.GetUnreadCount(pb.GetUnreadCountRequest()))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED


async def _xlen_is(redis: Redis, stream: str, length: int) -> bool:
    return int(await redis.xlen(stream)) == length
