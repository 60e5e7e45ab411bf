"""Descriptors of the imported protos that no installed package ships as .proto source.

`google/api`, `google/rpc` and `google/protobuf` sources come with googleapis-common-protos and
grpcio-tools. protovalidate ships `buf/validate/validate.proto` only as a compiled descriptor,
so we lift that descriptor out of the installed (pinned) package and hand it to protoc with
`--descriptor_set_in`. No network, no Buf Schema Registry, no vendored copy to drift.
"""

from __future__ import annotations

import ast
from pathlib import Path

import protovalidate
from google.protobuf import descriptor_pb2

VALIDATE_PROTO = "buf/validate/validate.proto"


def _validate_descriptor_bytes() -> bytes:
    module = Path(protovalidate.__file__).parent / "_gen" / "buf" / "validate" / "validate_pb.py"
    tree = ast.parse(module.read_text())
    prefix = b"\n" + bytes([len(VALIDATE_PROTO)]) + VALIDATE_PROTO.encode()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, bytes)
            and node.value.startswith(prefix)
        ):
            return node.value
    raise RuntimeError(f"no serialized descriptor for {VALIDATE_PROTO} in {module}")


def write_dependency_set(path: Path) -> Path:
    """Write a FileDescriptorSet holding buf/validate/validate.proto."""
    fds = descriptor_pb2.FileDescriptorSet()
    fds.file.add().ParseFromString(_validate_descriptor_bytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(fds.SerializeToString(deterministic=True))
    return path
