"""jwt_authn at the edge: bad tokens never reach a service, identity headers cannot be forged."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from mesh.notification.v1 import notification_service_pb2 as notification_pb
from mesh.notification.v1 import notification_service_pb2_grpc as notification_grpc
from tests.e2e.conftest import Mesh
from tests.e2e.edge import Rest, bearer, expired_token, forged_token, unsigned_token

pytestmark = pytest.mark.e2e

BAD_TOKENS: dict[str, Callable[[Path, str, str, str], str]] = {
    "expired": expired_token,
    "forged": forged_token,
    "alg none": unsigned_token,
}


def test_missing_token_is_401_with_a_json_status(rest: Rest) -> None:
    reply = rest.get("/v1/notifications")
    assert reply.status == 401, str(reply)
    assert reply.error()["code"] == 16  # UNAUTHENTICATED


@pytest.mark.parametrize("kind", BAD_TOKENS)
def test_bad_token_is_401_over_rest_and_unauthenticated_over_grpc(
    mesh: Mesh, rest: Rest, kind: str
) -> None:
    token = BAD_TOKENS[kind](mesh.data_dir, mesh.issuer, mesh.audience, str(uuid.uuid4()))
    reply = rest.get("/v1/notifications", token=token)
    assert reply.status == 401, str(reply)
    assert reply.error()["code"] == 16

    with mesh.channel() as channel:
        stub = notification_grpc.NotificationServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetUnreadCount(
                notification_pb.GetUnreadCountRequest(),
                metadata=bearer(token),
                timeout=10,
            )
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_garbage_and_wrong_scheme_are_401(rest: Rest) -> None:
    for authorization in ("Bearer not.a.jwt", "Basic YWRhOnNlY3JldA==", "Bearer "):
        reply = rest.get("/v1/notifications", headers={"authorization": authorization}, token="")
        assert reply.status == 401, (authorization, str(reply))
        assert reply.error()["code"] == 16


def test_identity_headers_sent_by_a_client_are_ignored(mesh: Mesh) -> None:
    victim = mesh.rest()
    victim_user = victim.signed_up("Victim")
    attacker = mesh.rest()
    attacker_user = attacker.signed_up("Mallory")
    spoofed = {
        "x-mesh-user-id": victim_user["id"],
        "x-jwt-payload": "eyJzdWIiOiJhZG1pbiIsInJvbGVzIjpbImFkbWluIl19",  # {"sub":"admin",...}
    }

    # Without a token the headers authenticate nobody.
    anonymous = attacker.get("/v1/users/me", headers=spoofed, token="")
    assert anonymous.status == 401, str(anonymous)

    # With the attacker's token, "me" stays the attacker.
    me = attacker.ok("GET", "/v1/users/me", headers=spoofed)["user"]
    assert me["id"] == attacker_user["id"]

    # A payload header claiming the admin role does not make an admin.
    listing = attacker.get("/v1/users", headers=spoofed)
    assert listing.status == 403, str(listing)
    assert listing.error()["code"] == 7  # PERMISSION_DENIED

    # Nor can the attacker act on the victim's behalf: a post is authored by the token's user.
    post = attacker.ok("POST", "/v1/posts", {"title": "mine", "body": "b"}, headers=spoofed)["post"]
    assert post["author_id"] == attacker_user["id"]
