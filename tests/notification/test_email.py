"""The email channel against a real SMTP server on loopback: opt-in, retries, never blocking."""

from __future__ import annotations

import socket
from typing import Any

import sqlalchemy as sa
from google.protobuf.field_mask_pb2 import FieldMask

from mesh.notification.v1 import notification_pb2
from mesh.notification.v1 import notification_service_pb2 as pb
from services.platform import outbox
from tests.content.conftest import ContentMesh, new_user
from tests.content.test_comments import comment
from tests.content.test_posts import create
from tests.notification.conftest import Env, Replica, eventually
from tests.notification.helpers import arrived
from tests.notification.smtp_sink import SmtpSink

BASE_BACKOFF = 0.1  # what the test replicas are configured with (conftest)


async def opt_in(replica: Replica, env: Env, user_id: str) -> None:
    response = await replica.stub.UpdateNotificationSettings(
        pb.UpdateNotificationSettingsRequest(
            settings=notification_pb2.NotificationSettings(email_enabled=True),
            update_mask=FieldMask(paths=["email_enabled"]),
        ),
        metadata=env.auth(user_id),
    )
    assert response.settings.email_enabled


async def deliveries(env: Env) -> list[Any]:
    async with env.database.uow() as tx:
        result = await tx.session.execute(
            sa.text(
                "SELECT to_address, attempts, sent_at, last_error"  # noqa: S608
                f' FROM "{env.schema}".email_deliveries'
            )
        )
        return list(result.all())


async def signed_up_and_opted_in(
    replica: Replica, env: Env, email: str, *, opt: bool = True
) -> str:
    user = await env.sign_up(new_user(), email=email)
    await arrived(replica, env, user)  # the welcome: mailed to nobody, no one had opted in
    if opt:
        await opt_in(replica, env, user)
    return user


async def test_only_opted_in_users_get_an_email(
    env: Env, content: ContentMesh, relay: outbox.OutboxRelay
) -> None:
    sink = await SmtpSink().start()
    try:
        async with env.replica(smtp_port=sink.port) as replica:
            quiet = await signed_up_and_opted_in(replica, env, "quiet@example.com", opt=False)
            keen = await signed_up_and_opted_in(replica, env, "keen@example.com")
            assert await deliveries(env) == []
            for author in (quiet, keen):  # the quiet author's comment is handled first
                post = await create(content, author, title=f"post of {author[:4]}")
                await comment(content, post.id, new_user())
            await eventually(lambda: _has(sink, 1))
            await arrived(replica, env, quiet, 2)  # in-app for both, email for one
    finally:
        await sink.stop()
    assert sink.recipients == ["keen@example.com"]
    (message,) = sink.messages
    assert message["To"] == "keen@example.com"
    assert f"post of {keen[:4]}" in message["Subject"]
    assert "nice" in message.get_content()
    ((to_address, attempts, sent_at, last_error),) = await deliveries(env)
    assert (to_address, attempts, last_error) == ("keen@example.com", 1, None)
    assert sent_at is not None


async def test_smtp_down_never_blocks_in_app_and_is_retried(
    env: Env, content: ContentMesh, relay: outbox.OutboxRelay
) -> None:
    port = _free_port()  # nothing listens there yet
    async with env.replica(smtp_port=port) as replica:
        author = await signed_up_and_opted_in(replica, env, "ada@example.com")
        post = await create(content, author)
        await comment(content, post.id, new_user())
        # In-app delivery does not wait for the mail server.
        await arrived(replica, env, author, 2)

        async def failed_twice() -> bool:
            rows = await deliveries(env)
            return bool(rows) and rows[0].attempts >= 2

        await eventually(failed_twice)
        ((_, _, sent_at, last_error),) = await deliveries(env)
        assert sent_at is None
        assert "Connection" in last_error or "refused" in last_error
        sink = await SmtpSink(port=port).start()  # the server comes back
        try:
            await eventually(lambda: _has(sink, 1))
        finally:
            await sink.stop()
    assert sink.recipients == ["ada@example.com"]
    ((_, attempts, sent_at, last_error),) = await deliveries(env)
    assert attempts >= 3
    assert sent_at is not None
    assert last_error is None


async def test_transient_refusals_back_off_exponentially(
    env: Env, content: ContentMesh, relay: outbox.OutboxRelay
) -> None:
    sink = await SmtpSink(refuse_first=3).start()
    try:
        async with env.replica(smtp_port=sink.port) as replica:
            author = await signed_up_and_opted_in(replica, env, "lin@example.com")
            post = await create(content, author)
            await comment(content, post.id, new_user())
            await eventually(lambda: _has(sink, 1))
    finally:
        await sink.stop()
    assert sink.refused == 3
    assert len(sink.messages) == 1  # delivered once, not once per attempt
    gaps = [b - a for a, b in zip(sink.attempt_times, sink.attempt_times[1:], strict=False)]
    # Each retry waits at least the doubled delay (a lower bound the sender guarantees).
    for attempt, gap in enumerate(gaps, start=1):
        assert gap >= 0.9 * BASE_BACKOFF * 2 ** (attempt - 1), gaps
    ((_, attempts, sent_at, _),) = await deliveries(env)
    assert attempts == 4
    assert sent_at is not None


async def _has(sink: SmtpSink, count: int) -> bool:
    return len(sink.messages) >= count


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
