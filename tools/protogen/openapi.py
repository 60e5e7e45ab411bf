"""OpenAPI 3.1 for the REST surface, rendered from the descriptor set Envoy transcodes.

Everything comes from the descriptor set alone: routes from `google.api.http`, who may call
them from the `mesh.options.v1.policy` option (internal methods are left out), required and
read/write-only fields from `google.api.field_behavior`, and prose from the proto comments.
JSON names follow Envoy's transcoder as we configure it: proto field names
(`preserve_proto_field_names`), enums as their names, 64-bit integers as strings, server
streams as newline-delimited JSON (`stream_newline_delimited`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    FieldDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)

Schema = dict[str, Any]

OPENAPI_FILE = "openapi.json"
OPENAPI_VERSION = "3.1.0"
SERVER_URL = "https://localhost:8443"
BEARER = "bearerAuth"
STATUS = "google.rpc.Status"
SCHEMA_REF = "#/components/schemas/"
RESPONSE_REF = "#/components/responses/"
STREAM_MEDIA_TYPE = "application/x-ndjson"

HTTP_EXTENSION = "google.api.http"
FIELD_BEHAVIOR_EXTENSION = "google.api.field_behavior"
POLICY_EXTENSION = "mesh.options.v1.policy"

HTTP_METHODS = ("get", "put", "post", "delete", "patch")

# Canonical gRPC codes named in method comments, and the HTTP status Envoy maps each to.
CODE_TO_STATUS = {
    "INVALID_ARGUMENT": "400",
    "FAILED_PRECONDITION": "400",
    "OUT_OF_RANGE": "400",
    "UNAUTHENTICATED": "401",
    "PERMISSION_DENIED": "403",
    "NOT_FOUND": "404",
    "ALREADY_EXISTS": "409",
    "ABORTED": "409",
    "RESOURCE_EXHAUSTED": "429",
    "UNAVAILABLE": "503",
}

# Reusable error responses, keyed by HTTP status: (component name, description).
ERROR_RESPONSES = {
    "400": (
        "BadRequest",
        "INVALID_ARGUMENT or FAILED_PRECONDITION: google.rpc.BadRequest details name the fields.",
    ),
    "401": ("Unauthorized", "UNAUTHENTICATED: the access token or credentials are missing or bad."),
    "403": ("Forbidden", "PERMISSION_DENIED: the caller may not act on this resource."),
    "404": ("NotFound", "NOT_FOUND: the resource does not exist or is not visible to the caller."),
    "409": ("Conflict", "ALREADY_EXISTS or ABORTED (e.g. an etag mismatch)."),
    "429": ("TooManyRequests", "RESOURCE_EXHAUSTED: a rate limit was hit; retry later."),
    "503": ("ServiceUnavailable", "UNAVAILABLE: the service cannot answer now; retry later."),
    "default": ("Error", "Any other error, as a google.rpc.Status."),
}

# Every route can be malformed, rate limited at the edge, or find no healthy replica.
ALWAYS_POSSIBLE = ("400", "429", "503", "default")

RATE_LIMIT_HEADERS = {
    "x-ratelimit-limit": "The request budget that applies, and its window.",
    "x-ratelimit-remaining": "Requests left in the current window.",
    "x-ratelimit-reset": "Seconds until the window resets.",
}

SCALARS: dict[int, Schema] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "uint32", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "uint32", "minimum": 0},
    # Proto3 JSON writes 64-bit integers as strings: JavaScript numbers cannot hold them.
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}

# Well-known types with a special JSON form, written inline rather than as components.
WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?s$"},
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": "Comma-separated field paths (google.protobuf.FieldMask).",
    },
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {"description": "Any JSON value."},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.DoubleValue": {"type": ["number", "null"], "format": "double"},
    "google.protobuf.FloatValue": {"type": ["number", "null"], "format": "float"},
    "google.protobuf.Int64Value": {"type": ["string", "null"], "format": "int64"},
    "google.protobuf.UInt64Value": {"type": ["string", "null"], "format": "uint64"},
    "google.protobuf.Int32Value": {"type": ["integer", "null"], "format": "int32"},
    "google.protobuf.UInt32Value": {"type": ["integer", "null"], "format": "uint32"},
    "google.protobuf.BoolValue": {"type": ["boolean", "null"]},
    "google.protobuf.StringValue": {"type": ["string", "null"]},
    "google.protobuf.BytesValue": {"type": ["string", "null"], "format": "byte"},
}

ANY_SCHEMA: Schema = {
    "type": "object",
    "description": (
        "A message of the type named by @type, its fields alongside @type; error details are "
        "type.googleapis.com/google.rpc.ErrorInfo (reason, domain, metadata) and "
        "type.googleapis.com/google.rpc.BadRequest (field_violations)."
    ),
    "properties": {"@type": {"type": "string"}},
    "required": ["@type"],
    "additionalProperties": True,
}

# Source-info path tags (descriptor.proto field numbers) used to find comments.
FILE_MESSAGES, FILE_ENUMS, FILE_SERVICES = 4, 5, 6
MESSAGE_FIELDS, MESSAGE_NESTED, MESSAGE_ENUMS = 2, 3, 4
ENUM_VALUES, SERVICE_METHODS = 2, 2

TEMPLATE_VARIABLE = re.compile(r"\{([^}=]+)(?:=([^}]*))?\}")
ERRORS_SECTION = re.compile(r"Errors:(.*)", re.DOTALL)


def render(descriptor_set_path: Path, out_dir: Path) -> None:
    """Write out_dir/openapi.json for every REST-routed, non-internal method."""
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(descriptor_set_path.read_bytes())
    document = build_document(fds)
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    (out_dir / OPENAPI_FILE).write_text(text, encoding="utf-8")


def build_document(fds: descriptor_pb2.FileDescriptorSet) -> Schema:
    contract = Contract(fds)
    schemas = SchemaBook(contract)
    paths: dict[str, dict[str, Schema]] = {}
    tags: list[Schema] = []
    versions: set[str] = set()
    for service in contract.services():
        routes = [route for method in service.methods for route in contract.routes(method)]
        if not routes:
            continue
        tags.append(_tag(contract, service))
        versions.add(service.file.package.rsplit(".", 1)[-1])
        for route in routes:
            paths.setdefault(route.path, {})[route.verb] = _operation(contract, schemas, route)
    schemas.add(contract.pool.FindMessageTypeByName(STATUS))
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Mesh API",
            "version": ", ".join(sorted(versions)),
            "description": (
                "REST/JSON surface of the mesh, transcoded to gRPC by the edge. Generated from "
                "the protobuf contracts: do not edit."
            ),
        },
        "servers": [{"url": SERVER_URL, "description": "The edge (Envoy)"}],
        "tags": sorted(tags, key=lambda tag: tag["name"]),
        "paths": paths,
        "components": {
            "schemas": schemas.schemas,
            "responses": _error_responses(),
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from POST /v1/auth/login.",
                }
            },
        },
    }


@dataclass(frozen=True)
class Route:
    """One HTTP binding of a method: the main rule or one of its additional_bindings."""

    method: MethodDescriptor
    verb: str
    template: str
    body: str
    response_body: str
    operation_id: str
    access: str
    role: str

    @property
    def path(self) -> str:
        return TEMPLATE_VARIABLE.sub(_openapi_segment, self.template)

    @property
    def bound_fields(self) -> set[str]:
        """Field paths the template sets, including those fixed to a literal ({id=me})."""
        return {match.group(1) for match in TEMPLATE_VARIABLE.finditer(self.template)}

    @property
    def path_parameters(self) -> list[str]:
        """Field paths bound by the template; literal-only variables ({id=me}) bind none."""
        return [
            match.group(1)
            for match in TEMPLATE_VARIABLE.finditer(self.template)
            if not _is_literal(match.group(2))
        ]


def _is_literal(pattern: str | None) -> bool:
    return pattern is not None and "*" not in pattern


def _openapi_segment(match: re.Match[str]) -> str:
    # {id=me} matches only the literal "me"; {id} and {name=users/*} become a parameter.
    pattern = match.group(2)
    return pattern if _is_literal(pattern) else "{" + match.group(1) + "}"


class Contract:
    """The descriptor set as a pool, with its custom options decoded and its comments indexed."""

    def __init__(self, fds: descriptor_pb2.FileDescriptorSet) -> None:
        self.files = list(fds.file)
        self.pool = descriptor_pool.DescriptorPool()
        for file in self.files:
            self.pool.Add(file)
        # Message classes from this pool know every extension in the set, so options can be
        # reparsed with their extensions readable instead of left as unknown fields.
        classes = message_factory.GetMessageClassesForFiles([f.name for f in self.files], self.pool)
        # Typed as Any: these classes and extensions exist only at run time, in this pool.
        self._method_options: Any = classes["google.protobuf.MethodOptions"]
        self._field_options: Any = classes["google.protobuf.FieldOptions"]
        self._http: Any = self.pool.FindExtensionByName(HTTP_EXTENSION)
        self._behavior: Any = self.pool.FindExtensionByName(FIELD_BEHAVIOR_EXTENSION)
        self._policy: Any = self.pool.FindExtensionByName(POLICY_EXTENSION)
        self._comments = _index_comments(self.files)

    def services(self) -> Iterator[ServiceDescriptor]:
        for file in self.files:
            for service in file.service:
                yield self.pool.FindServiceByName(f"{file.package}.{service.name}")

    def comment(self, full_name: str) -> str:
        return self._comments.get(full_name, "")

    def field_behaviors(self, field: FieldDescriptor) -> set[str]:
        options = self._field_options.FromString(field.GetOptions().SerializeToString())
        values = self._behavior.enum_type.values_by_number
        return {values[number].name for number in options.Extensions[self._behavior]}

    def routes(self, method: MethodDescriptor) -> list[Route]:
        options = self._method_options.FromString(method.GetOptions().SerializeToString())
        policy = options.Extensions[self._policy]
        access = _enum_name(policy, "access")
        if access == "ACCESS_INTERNAL":
            return []
        rule = options.Extensions[self._http]
        bindings = [rule, *rule.additional_bindings]
        base_id = f"{method.containing_service.name}_{method.name}"
        routes = []
        for index, binding in enumerate(bindings, start=1):
            verb = binding.WhichOneof("pattern")
            if verb not in HTTP_METHODS:
                continue  # no rule, or a custom verb OpenAPI cannot express
            routes.append(
                Route(
                    method=method,
                    verb=verb,
                    template=getattr(binding, verb),
                    body=binding.body,
                    response_body=binding.response_body,
                    operation_id=base_id if index == 1 else f"{base_id}{index}",
                    access=access,
                    role=_enum_name(policy, "role"),
                )
            )
        return routes


def _enum_name(message: Any, field_name: str) -> str:
    field = message.DESCRIPTOR.fields_by_name[field_name]
    return str(field.enum_type.values_by_number[getattr(message, field_name)].name)


def _index_comments(files: list[descriptor_pb2.FileDescriptorProto]) -> dict[str, str]:
    """Leading comments by the full name of the element they precede."""
    comments: dict[str, str] = {}
    for file in files:
        names = dict(_element_paths(file))
        for location in file.source_code_info.location:
            name = names.get(tuple(location.path))
            if name and location.leading_comments:
                comments[name] = _tidy(location.leading_comments)
    return comments


def _element_paths(
    file: descriptor_pb2.FileDescriptorProto,
) -> Iterator[tuple[tuple[int, ...], str]]:
    package = file.package
    for i, message in enumerate(file.message_type):
        yield from _message_paths(message, (FILE_MESSAGES, i), package)
    for i, enum in enumerate(file.enum_type):
        yield from _enum_paths(enum, (FILE_ENUMS, i), package)
    for i, service in enumerate(file.service):
        service_name = f"{package}.{service.name}"
        yield (FILE_SERVICES, i), service_name
        for j, method in enumerate(service.method):
            yield (FILE_SERVICES, i, SERVICE_METHODS, j), f"{service_name}.{method.name}"


def _message_paths(
    message: descriptor_pb2.DescriptorProto, path: tuple[int, ...], scope: str
) -> Iterator[tuple[tuple[int, ...], str]]:
    name = f"{scope}.{message.name}"
    yield path, name
    for i, field in enumerate(message.field):
        yield (*path, MESSAGE_FIELDS, i), f"{name}.{field.name}"
    for i, nested in enumerate(message.nested_type):
        yield from _message_paths(nested, (*path, MESSAGE_NESTED, i), name)
    for i, enum in enumerate(message.enum_type):
        yield from _enum_paths(enum, (*path, MESSAGE_ENUMS, i), name)


def _enum_paths(
    enum: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], scope: str
) -> Iterator[tuple[tuple[int, ...], str]]:
    name = f"{scope}.{enum.name}"
    yield path, name
    for i, value in enumerate(enum.value):
        # Enum values live in their enum's parent scope, but keying by enum keeps them apart.
        yield (*path, ENUM_VALUES, i), f"{name}.{value.name}"


def _tidy(comment: str) -> str:
    return "\n".join(line.strip() for line in comment.strip().splitlines())


def _summary(comment: str) -> str:
    first_paragraph = " ".join(comment.split("\n\n", 1)[0].split("\n"))
    sentence, dot, _ = first_paragraph.partition(". ")
    return sentence + dot.strip() if dot else first_paragraph


class SchemaBook:
    """components.schemas, filled with every message and enum a route reaches."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        self.schemas: dict[str, Schema] = {}

    def add(self, descriptor: Descriptor | EnumDescriptor) -> Schema:
        """A $ref to the component for descriptor, writing the component on first use."""
        name = descriptor.full_name
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder first: messages may refer to themselves
            if isinstance(descriptor, EnumDescriptor):
                self.schemas[name] = self._enum(descriptor)
            else:
                self.schemas[name] = self.message(descriptor)
        return {"$ref": SCHEMA_REF + name}

    def type_schema(self, descriptor: Descriptor) -> Schema:
        """The schema of a message-typed value: inline for well-known types, else a $ref."""
        name = descriptor.full_name
        if name in WELL_KNOWN:
            return dict(WELL_KNOWN[name])
        if name == "google.protobuf.Any":
            if name not in self.schemas:
                self.schemas[name] = ANY_SCHEMA
            return {"$ref": SCHEMA_REF + name}
        return self.add(descriptor)

    def message(self, message: Descriptor, exclude: frozenset[str] = frozenset()) -> Schema:
        properties: dict[str, Schema] = {}
        required: list[str] = []
        for field in message.fields:
            if field.name in exclude:
                continue
            properties[field.name] = self.field(field)
            if "REQUIRED" in self.contract.field_behaviors(field):
                required.append(field.name)
        schema: Schema = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        description = self._message_description(message)
        if description:
            schema["description"] = description
        return schema

    def _message_description(self, message: Descriptor) -> str:
        parts = [self.contract.comment(message.full_name)]
        for oneof in message.oneofs:
            names = [field.name for field in oneof.fields]
            if len(names) > 1:  # one-field oneofs are proto3 `optional`, not a choice
                parts.append(f"At most one of {', '.join(names)} is set.")
        return "\n\n".join(part for part in parts if part)

    def field(self, field: FieldDescriptor) -> Schema:
        schema = self._repeated_or_map(field) if field.is_repeated else self._single(field)
        description = self.contract.comment(field.full_name)
        if description:
            schema = {**schema, "description": description}
        behaviors = self.contract.field_behaviors(field)
        if "OUTPUT_ONLY" in behaviors:
            schema["readOnly"] = True
        if "INPUT_ONLY" in behaviors:
            schema["writeOnly"] = True
        return schema

    def _repeated_or_map(self, field: FieldDescriptor) -> Schema:
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            value = entry.fields_by_name["value"]
            return {"type": "object", "additionalProperties": self._single(value)}
        return {"type": "array", "items": self._single(field)}

    def _single(self, field: FieldDescriptor) -> Schema:
        if field.enum_type is not None:
            return self.add(field.enum_type)
        if field.message_type is not None:
            return self.type_schema(field.message_type)
        return dict(SCALARS[field.type])

    def _enum(self, enum: EnumDescriptor) -> Schema:
        lines = [self.contract.comment(enum.full_name)]
        for value in enum.values:
            comment = self.contract.comment(f"{enum.full_name}.{value.name}")
            lines.append(f"- {value.name}: {' '.join(comment.splitlines())}".rstrip(": "))
        return {
            "type": "string",
            "enum": [value.name for value in enum.values],
            "description": "\n".join(line for line in lines if line),
        }


def _operation(contract: Contract, schemas: SchemaBook, route: Route) -> Schema:
    method = route.method
    comment = contract.comment(method.full_name)
    description = comment
    if route.role == "ROLE_ADMIN":
        description += "\n\nRequires the admin role."
    operation: Schema = {
        "operationId": route.operation_id,
        "tags": [method.containing_service.name],
        "summary": _summary(comment) or method.name,
        "description": description,
        "parameters": _path_parameters(schemas, route) + _query_parameters(schemas, route),
        "responses": {**_success(schemas, route), **_errors(route, comment)},
        # An explicit empty list marks public routes as needing no credentials at all.
        "security": [{BEARER: []}] if route.access != "ACCESS_PUBLIC" else [],
    }
    request_body = _request_body(schemas, route)
    if request_body:
        operation["requestBody"] = request_body
    if not operation["parameters"]:
        del operation["parameters"]
    return operation


def _tag(contract: Contract, service: ServiceDescriptor) -> Schema:
    tag: Schema = {"name": service.name}
    description = contract.comment(service.full_name)
    if description:
        tag["description"] = description
    return tag


def _resolve(message: Descriptor, field_path: str) -> FieldDescriptor:
    """The field a dotted path (user.id) names, starting at message."""
    names = field_path.split(".")
    for name in names[:-1]:
        nested = message.fields_by_name[name].message_type
        if nested is None:
            raise ValueError(f"{field_path}: {name} is not a message field of {message.full_name}")
        message = nested
    return message.fields_by_name[names[-1]]


def _parameter(schemas: SchemaBook, field: FieldDescriptor, name: str, where: str) -> Schema:
    schema = schemas.field(field)
    description = schema.pop("description", "")
    # Parameters are always input: read/write-only describe message bodies.
    schema.pop("writeOnly", None)
    schema.pop("readOnly", None)
    parameter: Schema = {"name": name, "in": where, "schema": schema}
    if where == "path" or "REQUIRED" in schemas.contract.field_behaviors(field):
        parameter["required"] = True
    if description:
        parameter["description"] = description
    return parameter


def _path_parameters(schemas: SchemaBook, route: Route) -> list[Schema]:
    request = route.method.input_type
    return [
        _parameter(schemas, _resolve(request, name), name, "path") for name in route.path_parameters
    ]


def _query_parameters(schemas: SchemaBook, route: Route) -> list[Schema]:
    # Fields bound by neither the path nor the body are read from the query string.
    if route.body == "*":
        return []
    bound = route.bound_fields
    if route.body:
        bound.add(route.body)
    return [
        _parameter(schemas, field, name, "query")
        for name, field in _unbound_fields(
            schemas.contract, route.method.input_type, bound, "", frozenset()
        )
    ]


def _unbound_fields(
    contract: Contract, message: Descriptor, bound: set[str], prefix: str, seen: frozenset[str]
) -> Iterator[tuple[str, FieldDescriptor]]:
    for field in message.fields:
        name = prefix + field.name
        if name in bound or "OUTPUT_ONLY" in contract.field_behaviors(field):
            continue
        nested = field.message_type
        if nested is None or nested.full_name in WELL_KNOWN:
            yield name, field
        elif not field.is_repeated and nested.full_name not in seen:
            # Query strings address nested fields by dotted path (a.b=...).
            yield from _unbound_fields(
                contract, nested, bound, name + ".", seen | {nested.full_name}
            )


def _request_body(schemas: SchemaBook, route: Route) -> Schema | None:
    request = route.method.input_type
    if not route.body:
        return None
    if route.body == "*":
        bound = frozenset(name for name in route.bound_fields if "." not in name)
        if not bound:
            schema, required = schemas.add(request), True
        else:
            schema = schemas.message(request, exclude=bound)
            if not schema["properties"]:
                return None  # everything travels in the path
            required = bool(schema.get("required"))
    else:
        field = request.fields_by_name[route.body]
        schema = schemas.field(field)
        required = "REQUIRED" in schemas.contract.field_behaviors(field)
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _success(schemas: SchemaBook, route: Route) -> Schema:
    output = route.method.output_type
    if route.response_body:
        schema = schemas.field(output.fields_by_name[route.response_body])
        schema.pop("description", None)
    else:
        schema = schemas.type_schema(output)
    if route.method.server_streaming:
        return {
            "200": {
                "description": (
                    f"A stream of {output.name} messages, one JSON object per line, sent as "
                    "they happen until the server or the client ends the stream."
                ),
                "content": {STREAM_MEDIA_TYPE: {"schema": schema}},
            }
        }
    return {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}}


def _errors(route: Route, comment: str) -> Schema:
    statuses = set(ALWAYS_POSSIBLE)
    section = ERRORS_SECTION.search(comment)
    if section:
        statuses |= {status for code, status in CODE_TO_STATUS.items() if code in section.group(1)}
    if route.access != "ACCESS_PUBLIC":
        statuses.add("401")
    if route.role == "ROLE_ADMIN":
        statuses.add("403")
    return {
        status: {"$ref": RESPONSE_REF + ERROR_RESPONSES[status][0]} for status in sorted(statuses)
    }


def _error_responses() -> Schema:
    responses: Schema = {}
    for status, (name, description) in ERROR_RESPONSES.items():
        response: Schema = {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": SCHEMA_REF + STATUS}}},
        }
        if status == "429":
            response["headers"] = {
                header: {"description": text, "schema": {"type": "string"}}
                for header, text in RATE_LIMIT_HEADERS.items()
            }
        responses[name] = response
    return responses
