"""The edge itself: TLS only, HTTP/2 and HTTP/1.1 on one port, JSON errors for what it refuses."""

from __future__ import annotations

import socket
import ssl
import time
import uuid

import pytest

from tests.e2e.conftest import Mesh
from tests.e2e.edge import Rest

pytestmark = pytest.mark.e2e


def test_tls_offers_h2_and_http11_and_verifies_against_the_dev_ca(mesh: Mesh) -> None:
    for protocol in ("h2", "http/1.1"):
        context = ssl.create_default_context(cafile=str(mesh.ca_cert))
        context.set_alpn_protocols([protocol])
        with (
            socket.create_connection(("127.0.0.1", mesh.edge_port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            assert tls.selected_alpn_protocol() == protocol


def test_plain_http_on_the_tls_port_is_refused(mesh: Mesh) -> None:
    # No HTTP response at all: the TLS listener drops a connection that does not speak TLS.
    with socket.create_connection(("127.0.0.1", mesh.edge_port), timeout=5) as raw:
        raw.sendall(b"GET /v1/auth/jwks HTTP/1.1\r\nHost: localhost\r\n\r\n")
        received = b""
        try:
            while chunk := raw.recv(4096):
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    assert not received.startswith(b"HTTP/"), received[:200]


def test_public_route_answers_json(rest: Rest) -> None:
    jwks = rest.ok("GET", "/v1/auth/jwks")
    assert jwks["keys"]
    assert all(key["kty"] == "OKP" and key["kid"] for key in jwks["keys"])
    assert not any("d" in key for key in jwks["keys"])  # public halves only


def test_unknown_route_is_404_with_a_json_status(rest: Rest) -> None:
    for method, path in (("GET", "/v1/nothing-here"), ("POST", "/v1/auth/jwks")):
        reply = rest.request(method, path)
        assert reply.status == 404, str(reply)
        assert reply.error()["code"] == 5  # NOT_FOUND


def test_unknown_query_parameter_is_400_with_a_json_status(rest: Rest) -> None:
    reply = rest.get("/v1/posts?colour=blue")
    assert reply.status == 400, str(reply)
    status = reply.error()
    assert status["code"] == 3  # INVALID_ARGUMENT
    assert "colour" in status["message"]


def test_request_body_over_the_limit_is_413_with_a_json_status(rest: Rest) -> None:
    padding = "x" * (1024 * 1024 + 1)
    reply = rest.request(
        "POST", "/v1/auth/login", raw=f'{{"email": "{padding}", "password": "p"}}'.encode()
    )
    assert reply.status == 413, str(reply)
    assert reply.error()["code"] == 3


def test_malformed_json_is_400_with_a_json_status(rest: Rest) -> None:
    reply = rest.request("POST", "/v1/auth/login", raw=b'{"email": ')
    assert reply.status == 400, str(reply)
    assert reply.error()["code"] == 3


def test_cors_preflight_from_a_local_origin(rest: Rest) -> None:
    reply = rest.request(
        "OPTIONS",
        "/v1/posts",
        headers={
            "origin": "http://localhost:3000",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        },
    )
    assert reply.status == 200, str(reply)
    assert reply.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "authorization" in reply.headers["access-control-allow-headers"]

    origin = {"origin": "http://127.0.0.1:8080"}
    simple = rest.get("/v1/auth/jwks", headers=origin)
    assert simple.status == 200, str(simple)
    assert simple.headers["access-control-allow-origin"] == origin["origin"]
    # A browser request is authenticated like any other.
    assert rest.get("/v1/notifications", headers=origin).status == 401

    foreign = rest.request(
        "OPTIONS",
        "/v1/posts",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in foreign.headers


def test_every_response_carries_a_request_id_and_admin_serves_prometheus(
    mesh: Mesh, rest: Rest
) -> None:
    reply = rest.get("/v1/auth/jwks", headers={"x-request-id": "spoofed"})
    assert reply.status == 200
    metrics = mesh.admin("/stats/prometheus")
    assert "envoy_cluster_upstream_rq" in metrics
    assert 'envoy_cluster_name="auth"' in metrics


def test_one_rest_call_is_one_trace_across_envoy_and_every_service_hop(mesh: Mesh) -> None:
    client = mesh.rest()
    client.signed_up("Tracer")
    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    # Creating a post makes the content service ask the user service about its author.
    reply = client.post("/v1/posts", {"title": "traced"}, headers={"traceparent": traceparent})
    assert reply.status == 200, str(reply)

    def hops() -> set[str]:
        return {
            line.split("|", 1)[0].strip().rsplit("-", 1)[0]
            for line in mesh.launcher.log().splitlines()
            if trace_id in line and "|" in line
        }

    deadline = time.monotonic() + 10  # Envoy flushes its access log every second or so
    while not {"envoy", "content", "user"} <= hops() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert {"envoy", "content", "user"} <= hops(), hops()


def test_grpc_web_for_browsers(rest: Rest) -> None:
    # One uncompressed, empty GetJwksRequest message in gRPC-Web framing.
    reply = rest.request(
        "POST",
        "/mesh.auth.v1.AuthService/GetJwks",
        raw=b"\x00\x00\x00\x00\x00",
        headers={
            "content-type": "application/grpc-web+proto",
            "x-grpc-web": "1",
            "origin": "http://localhost:3000",
        },
    )
    assert reply.status == 200, str(reply)
    assert reply.headers["content-type"].startswith("application/grpc-web")
    assert reply.headers["access-control-allow-origin"] == "http://localhost:3000"
    # A message frame (flag 0) with the JWKS, then a trailer frame (flag 0x80) with the status.
    assert reply.body[0] == 0
    length = int.from_bytes(reply.body[1:5], "big")
    trailers = reply.body[5 + length :]
    assert trailers[0] == 0x80
    assert b"grpc-status:0" in trailers[5:].replace(b" ", b"")
