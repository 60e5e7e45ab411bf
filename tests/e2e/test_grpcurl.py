"""Engineers with grpcurl: reflection lists and describes the contracts, calls carry tokens."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import Mesh
from tests.e2e.edge import grpcurl

pytestmark = pytest.mark.e2e

SERVICES = (
    "mesh.auth.v1.AuthService",
    "mesh.content.v1.ContentService",
    "mesh.notification.v1.NotificationService",
    "mesh.user.v1.UserService",
)


def test_list_shows_the_four_services(mesh: Mesh) -> None:
    result = grpcurl(mesh.edge_port, mesh.ca_cert, "list")
    assert result.returncode == 0, result.stderr
    listed = set(result.stdout.split())
    assert set(SERVICES) <= listed
    assert not any(name.startswith("mesh.ratelimit") for name in listed)


def test_describe_a_service_and_a_message(mesh: Mesh) -> None:
    service = grpcurl(mesh.edge_port, mesh.ca_cert, "describe", "mesh.user.v1.UserService")
    assert service.returncode == 0, service.stderr
    assert "rpc GetUser ( .mesh.user.v1.GetUserRequest )" in service.stdout
    message = grpcurl(mesh.edge_port, mesh.ca_cert, "describe", "mesh.content.v1.Post")
    assert message.returncode == 0, message.stderr
    assert "string etag" in message.stdout


def test_calls_with_and_without_a_bearer_token(mesh: Mesh) -> None:
    client = mesh.rest()
    user = client.signed_up("Linus")
    method = "mesh.user.v1.UserService/GetUser"

    call = grpcurl(mesh.edge_port, mesh.ca_cert, method, token=client.token, data={"id": "me"})
    assert call.returncode == 0, call.stderr
    assert json.loads(call.stdout)["user"]["id"] == user["id"]

    anonymous = grpcurl(mesh.edge_port, mesh.ca_cert, method, data={"id": "me"})
    assert anonymous.returncode != 0
    assert "Unauthenticated" in anonymous.stderr
    assert "Jwt is missing" in anonymous.stderr
    assert '"code"' not in anonymous.stderr  # plain text for gRPC, not the REST JSON body

    public = grpcurl(mesh.edge_port, mesh.ca_cert, "mesh.auth.v1.AuthService/GetJwks")
    assert public.returncode == 0, public.stderr
    assert json.loads(public.stdout)["keys"]


def test_invalid_argument_names_the_field(mesh: Mesh) -> None:
    result = grpcurl(
        mesh.edge_port,
        mesh.ca_cert,
        "mesh.user.v1.UserService/CreateUser",
        data={"email": "not-an-email", "password": "quiet-lantern-orbit-7413", "display_name": "X"},
    )
    assert result.returncode != 0
    assert "InvalidArgument" in result.stderr
    assert "email" in result.stderr
