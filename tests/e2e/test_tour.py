"""The product through the edge: sign up, log in, read yourself, post, comment, notifications."""

from __future__ import annotations

import time
from typing import Any

import pytest

from mesh.notification.v1 import notification_service_pb2 as notification_pb
from mesh.notification.v1 import notification_service_pb2_grpc as notification_grpc
from mesh.user.v1 import user_service_pb2 as user_pb
from mesh.user.v1 import user_service_pb2_grpc as user_grpc
from tests.e2e.conftest import Mesh
from tests.e2e.edge import Rest, bearer, stream_messages

pytestmark = pytest.mark.e2e

NOTIFICATION_WAIT = 20.0


def published_post(author: Rest, title: str = "Hello, mesh") -> dict[str, Any]:
    post: dict[str, Any] = author.ok(
        "POST",
        "/v1/posts",
        {"title": title, "body": "First post.", "state": "POST_STATE_PUBLISHED"},
    )["post"]
    return post


def notifications(client: Rest) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = client.ok("GET", "/v1/notifications").get("notifications", [])
    return listed


def wait_for_notification(client: Rest, kind: str) -> dict[str, Any]:
    """Notifications are delivered asynchronously (outbox → stream → consumer)."""
    deadline = time.monotonic() + NOTIFICATION_WAIT
    while time.monotonic() < deadline:
        found = [n for n in notifications(client) if n["kind"] == kind]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no {kind} notification within {NOTIFICATION_WAIT}s")


def test_rest_tour(mesh: Mesh) -> None:
    ada = mesh.rest()
    user = ada.sign_up("Ada")
    assert "password" not in user
    assert "password_hash" not in user

    tokens = ada.log_in(user["email"])
    assert tokens["token_type"] == "Bearer"
    assert tokens["refresh_token"]
    assert int(tokens["expires_in"]) > 0

    me = ada.ok("GET", "/v1/users/me")["user"]
    assert me["id"] == user["id"]
    assert me["display_name"] == "Ada"
    assert ada.ok("GET", f"/v1/users/{user['id']}")["user"]["email"] == user["email"]

    post = published_post(ada)
    assert post["author_id"] == user["id"]
    assert ada.ok("GET", f"/v1/posts/{post['id']}")["post"]["title"] == "Hello, mesh"

    grace = mesh.rest()
    grace.signed_up("Grace")
    comment = grace.ok("POST", f"/v1/posts/{post['id']}/comments", {"body": "Welcome aboard!"})[
        "comment"
    ]
    comments = ada.ok("GET", f"/v1/posts/{post['id']}/comments")["comments"]
    assert [c["id"] for c in comments] == [comment["id"]]

    welcome = wait_for_notification(ada, "NOTIFICATION_KIND_WELCOME")
    assert welcome["user_id"] == user["id"]
    commented = wait_for_notification(ada, "NOTIFICATION_KIND_COMMENT")
    assert commented["post_id"] == post["id"]
    assert commented["comment_id"] == comment["id"]
    assert ada.ok("GET", "/v1/notifications:unreadCount")["unread_count"] >= 2


def test_notification_stream_over_rest(mesh: Mesh) -> None:
    ada, grace = mesh.rest(), mesh.rest()
    ada.signed_up("Ada")
    grace.signed_up("Grace")
    post = published_post(ada)
    with ada.stream("/v1/notifications:stream", timeout=NOTIFICATION_WAIT) as response:
        assert response.status == 200
        assert response.getheader("content-type", "").startswith("application/json")
        messages = stream_messages(response, time.monotonic() + NOTIFICATION_WAIT)
        # The first message is a heartbeat, sent once the subscription is in place.
        assert "heartbeat" in next(messages)
        comment = grace.ok("POST", f"/v1/posts/{post['id']}/comments", {"body": "Streamed?"})[
            "comment"
        ]
        received = next((m["notification"] for m in messages if "notification" in m), None)
    assert received is not None, "the comment notification never arrived on the stream"
    assert received["kind"] == "NOTIFICATION_KIND_COMMENT"
    assert received["comment_id"] == comment["id"]


def test_notification_stream_over_grpc(mesh: Mesh) -> None:
    ada, grace = mesh.rest(), mesh.rest()
    ada.signed_up("Ada")
    grace.signed_up("Grace")
    post = published_post(ada)
    with mesh.channel() as channel:
        stream = notification_grpc.NotificationServiceStub(channel).SubscribeNotifications(
            notification_pb.SubscribeNotificationsRequest(),
            metadata=bearer(ada.token),
            timeout=NOTIFICATION_WAIT,
        )
        try:
            assert next(iter(stream)).WhichOneof("event") == "heartbeat"
            comment = grace.ok("POST", f"/v1/posts/{post['id']}/comments", {"body": "Over gRPC"})[
                "comment"
            ]
            for message in stream:
                if message.WhichOneof("event") == "notification":
                    assert message.notification.comment_id == comment["id"]
                    assert message.notification.post_id == post["id"]
                    break
            else:
                pytest.fail("the stream ended without the notification")
        finally:
            stream.cancel()


def test_refresh_rotates_and_logout_revokes(mesh: Mesh) -> None:
    ada = mesh.rest()
    user = ada.sign_up("Ada")
    tokens = ada.log_in(user["email"])
    rotated = ada.ok("POST", "/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert rotated["refresh_token"] != tokens["refresh_token"]
    reused = ada.post("/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]}, token="")
    assert reused.status == 401, str(reused)
    assert reused.error()["code"] == 16


def test_grpc_callers_see_what_rest_callers_see(mesh: Mesh) -> None:
    ada = mesh.rest()
    user = ada.signed_up("Ada")
    with mesh.channel() as channel:
        reply = user_grpc.UserServiceStub(channel).GetUser(
            user_pb.GetUserRequest(id="me"),
            metadata=bearer(ada.token),
            timeout=10,
        )
    assert reply.user.id == user["id"]
    assert reply.user.email == user["email"]
