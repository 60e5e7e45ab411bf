"""Every error class reaches REST clients as its HTTP status and a JSON google.rpc.Status body.

400/401/403/404/409 here; 429 in test_ratelimit.py; 503 in test_faults.py (it needs a
service down). Service errors keep their details (ErrorInfo, BadRequest) through the edge.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.conftest import Mesh
from tests.e2e.edge import PASSWORD, Reply, Rest

pytestmark = pytest.mark.e2e


def details(reply: Reply, type_name: str) -> list[dict[str, Any]]:
    suffix = f"/google.rpc.{type_name}"
    return [d for d in reply.error().get("details", []) if d.get("@type", "").endswith(suffix)]


def test_400_invalid_argument_names_the_field(rest: Rest) -> None:
    reply = rest.post(
        "/v1/users", {"email": "not-an-email", "password": PASSWORD, "display_name": "X"}
    )
    assert reply.status == 400, str(reply)
    assert reply.error()["code"] == 3
    violations = details(reply, "BadRequest")[0]["field_violations"]
    assert [v["field"] for v in violations] == ["email"]
    assert details(reply, "ErrorInfo")[0]["reason"]


def test_401_unauthenticated(rest: Rest) -> None:
    reply = rest.post("/v1/posts", {"title": "t"})
    assert reply.status == 401, str(reply)
    assert reply.error()["code"] == 16


def test_403_permission_denied(mesh: Mesh) -> None:
    author, other = mesh.rest(), mesh.rest()
    author.signed_up("Author")
    other.signed_up("Other")
    post = author.ok("POST", "/v1/posts", {"title": "Mine", "state": "POST_STATE_PUBLISHED"})[
        "post"
    ]
    reply = other.request(
        "PATCH",
        f"/v1/posts/{post['id']}?update_mask=title",
        {"title": "Yours now"},
    )
    assert reply.status == 403, str(reply)
    assert reply.error()["code"] == 7
    assert details(reply, "ErrorInfo")


def test_404_not_found(mesh: Mesh) -> None:
    client = mesh.rest()
    client.signed_up("Finder")
    reply = client.get(f"/v1/posts/{uuid.uuid4()}")
    assert reply.status == 404, str(reply)
    assert reply.error()["code"] == 5
    assert details(reply, "ErrorInfo")


def test_409_already_exists_and_aborted(mesh: Mesh) -> None:
    client = mesh.rest()
    user = client.sign_up("Twin")
    again = client.post(
        "/v1/users", {"email": user["email"], "password": PASSWORD, "display_name": "Twin"}
    )
    assert again.status == 409, str(again)
    assert again.error()["code"] == 6  # ALREADY_EXISTS

    client.log_in(user["email"])
    post = client.ok("POST", "/v1/posts", {"title": "v1"})["post"]
    client.ok(
        "PATCH", f"/v1/posts/{post['id']}?update_mask=title", {"title": "v2", "etag": post["etag"]}
    )
    stale = client.request(
        "PATCH", f"/v1/posts/{post['id']}?update_mask=title", {"title": "v3", "etag": post["etag"]}
    )
    assert stale.status == 409, str(stale)
    assert stale.error()["code"] == 10  # ABORTED


def test_no_error_leaks_internals(mesh: Mesh) -> None:
    client = mesh.rest()
    for reply in (
        client.get("/v1/posts/not-a-uuid"),
        client.post("/v1/auth/login", {"email": "a@example.com", "password": "x" * 5000}),
        client.request("POST", "/v1/users", raw=b"[1, 2"),
    ):
        assert reply.status in (400, 401, 404), str(reply)
        body = reply.body.decode()
        assert "Traceback" not in body
        assert 'File "' not in body
