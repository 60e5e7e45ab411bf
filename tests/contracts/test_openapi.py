"""The committed OpenAPI document describes the whole public REST surface of PRODUCT.md."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.protogen import openapi, paths

STATUS_REF = "#/components/schemas/google.rpc.Status"

# (HTTP method, OpenAPI path, who may call it): the minimum REST surface of the product.
ROUTES = [
    ("post", "/v1/users", "public"),
    ("post", "/v1/auth/login", "public"),
    ("post", "/v1/auth/refresh", "public"),
    ("post", "/v1/auth/logout", "bearer"),
    ("get", "/v1/auth/jwks", "public"),
    ("get", "/v1/users/{id}", "bearer"),
    ("get", "/v1/users/me", "bearer"),
    ("patch", "/v1/users/{user.id}", "bearer"),
    ("delete", "/v1/users/{id}", "bearer"),
    ("get", "/v1/users", "bearer"),
    ("post", "/v1/posts", "bearer"),
    ("get", "/v1/posts/{id}", "public"),
    ("get", "/v1/posts", "public"),
    ("patch", "/v1/posts/{post.id}", "bearer"),
    ("delete", "/v1/posts/{id}", "bearer"),
    ("post", "/v1/posts/{post_id}/comments", "bearer"),
    ("get", "/v1/posts/{post_id}/comments", "bearer"),
    ("get", "/v1/notifications", "bearer"),
    ("post", "/v1/notifications/{id}:markRead", "bearer"),
    ("get", "/v1/notifications:stream", "bearer"),
]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return json.loads(paths.OPENAPI.read_text())


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for verb, operation in item.items():
            yield verb, path, operation


def _deref(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _property_names(document: dict[str, Any], schema: dict[str, Any]) -> Iterator[str]:
    """Every property name reachable from schema, following $refs once each."""
    seen: set[str] = set()
    pending = [schema]
    while pending:
        node = pending.pop()
        for ref in _refs(node):
            if ref not in seen:
                seen.add(ref)
                pending.append(_deref(document, {"$ref": ref}))
        resolved = _deref(document, node)
        yield from resolved.get("properties", {})
        pending.extend(resolved.get("properties", {}).values())
        if "items" in resolved:
            pending.append(resolved["items"])


def test_document_is_openapi_3_1_for_the_edge(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    assert document["info"]["version"] == "v1"
    assert document["servers"] == [
        {"url": "https://localhost:8443", "description": "The edge (Envoy)"}
    ]
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


def test_rendering_reproduces_the_committed_document(tmp_path: Path) -> None:
    openapi.render(paths.DESCRIPTOR_SET, tmp_path)
    assert (tmp_path / "openapi.json").read_bytes() == paths.OPENAPI.read_bytes()


@pytest.mark.parametrize(("verb", "path", "access"), ROUTES)
def test_every_product_route_is_documented_with_its_access(
    document: dict[str, Any], verb: str, path: str, access: str
) -> None:
    operation = document["paths"].get(path, {}).get(verb)
    assert operation is not None, f"{verb.upper()} {path} missing"
    if access == "bearer":
        assert operation["security"] == [{"bearerAuth": []}]
        assert "401" in operation["responses"]
    else:
        assert operation["security"] == []


def test_operation_ids_are_service_and_method(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in _operations(document)]
    assert len(ids) == len(set(ids))
    assert document["paths"]["/v1/users"]["post"]["operationId"] == "UserService_CreateUser"
    assert {tag["name"] for tag in document["tags"]} == {
        "AuthService",
        "UserService",
        "ContentService",
        "NotificationService",
    }


def test_internal_methods_are_absent(document: dict[str, Any]) -> None:
    assert not [path for path in document["paths"] if path.startswith("/internal")]
    ids = {operation["operationId"] for _, _, operation in _operations(document)}
    assert "AuthService_SetCredential" not in ids


def test_path_templates_become_parameters_or_literals(document: dict[str, Any]) -> None:
    update = document["paths"]["/v1/users/{user.id}"]["patch"]
    by_name = {p["name"]: p for p in update["parameters"]}
    assert by_name["user.id"]["in"] == "path"
    assert by_name["user.id"]["required"] is True
    # Fields outside the path and the body travel in the query string.
    assert by_name["update_mask"]["in"] == "query"
    # {id=me} is the literal segment "me": it binds id, so id is neither path nor query.
    me = document["paths"]["/v1/users/me"]["get"]
    assert "id" not in {p["name"] for p in me.get("parameters", [])}


def test_list_routes_take_paging_from_the_query(document: dict[str, Any]) -> None:
    for path in ("/v1/users", "/v1/posts", "/v1/notifications"):
        names = {p["name"]: p["in"] for p in document["paths"][path]["get"]["parameters"]}
        assert names["page_size"] == "query"
        assert names["page_token"] == "query"


def test_sign_up_body_requires_what_the_contract_requires(document: dict[str, Any]) -> None:
    body = document["paths"]["/v1/users"]["post"]["requestBody"]
    schema = _deref(document, body["content"]["application/json"]["schema"])
    assert {"email", "password", "display_name"} <= set(schema["required"])
    assert schema["properties"]["password"]["writeOnly"] is True


def test_no_response_carries_a_password(document: dict[str, Any]) -> None:
    user = document["components"]["schemas"]["mesh.user.v1.User"]
    assert "password" not in user["properties"]
    for verb, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            for media in _deref(document, response).get("content", {}).values():
                names = set(_property_names(document, media["schema"]))
                assert "password" not in names, f"{verb.upper()} {path} {status}"


def test_field_behavior_and_well_known_types_shape_the_schemas(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    user = schemas["mesh.user.v1.User"]["properties"]
    assert user["id"]["readOnly"] is True
    assert user["create_time"] == {**user["create_time"], "type": "string", "format": "date-time"}
    state = schemas["mesh.content.v1.PostState"]
    assert state["type"] == "string"
    assert "POST_STATE_PUBLISHED" in state["enum"]


def test_streaming_is_newline_delimited_json(document: dict[str, Any]) -> None:
    ok = document["paths"]["/v1/notifications:stream"]["get"]["responses"]["200"]
    assert set(ok["content"]) == {"application/x-ndjson"}


def test_every_operation_documents_errors_as_status(document: dict[str, Any]) -> None:
    for verb, path, operation in _operations(document):
        errors = [
            _deref(document, response)
            for status, response in operation["responses"].items()
            if status == "default" or status >= "400"
        ]
        assert errors, f"{verb.upper()} {path} documents no error"
        for error in errors:
            assert error["content"]["application/json"]["schema"] == {"$ref": STATUS_REF}
    status = document["components"]["schemas"]["google.rpc.Status"]["properties"]
    assert {"code", "message", "details"} <= set(status)
    detail = _deref(document, status["details"]["items"])
    assert "@type" in detail["properties"]


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    for ref in set(_refs(document)):
        assert ref.startswith("#/"), ref
        _deref(document, {"$ref": ref})  # raises KeyError when dangling
