"""`make lint`'s buf step and `make breaking`, run for real with buf's own binary."""

from __future__ import annotations

from pathlib import Path

import yaml
from google.protobuf import descriptor_pb2

from tools.protogen import buf, paths


def test_buf_config_is_v2_standard_lint_and_file_breaking() -> None:
    config = yaml.safe_load(buf.CONFIG.read_text())
    assert config["version"] == "v2"
    assert config["modules"] == [{"path": "proto"}]
    assert "STANDARD" in config["lint"]["use"]
    assert config["breaking"]["use"] == ["FILE"]


def test_buf_lint_is_clean() -> None:
    assert buf.lint() == 0


def test_unchanged_contracts_are_not_breaking() -> None:
    assert buf.breaking_against_image(paths.DESCRIPTOR_SET) == 0


def test_a_deleted_field_is_breaking(tmp_path: Path) -> None:
    """Against contracts that had one more field, today's contracts deleted it: breaking."""
    committed = descriptor_pb2.FileDescriptorSet.FromString(paths.DESCRIPTOR_SET.read_bytes())
    user_proto = next(f for f in committed.file if f.name == "mesh/user/v1/user.proto")
    user = next(m for m in user_proto.message_type if m.name == "User")
    user.field.add(
        name="nickname",
        json_name="nickname",
        number=max(f.number for f in user.field) + 1,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
    )
    against = tmp_path / "older.binpb"
    against.write_bytes(committed.SerializeToString())
    assert buf.breaking_against_image(against) != 0
