"""Where the code generator reads and writes."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO / "proto"
GENERATED = REPO / "generated"
BUILD = REPO / ".build"

# The package root of our own contracts, under proto/ and generated/.
OWN_PACKAGE_DIR = "mesh"

DESCRIPTOR_SET = GENERATED / "descriptor.binpb"
OPENAPI = GENERATED / "openapi.json"


def own_proto_files() -> list[str]:
    """Our .proto files, relative to proto/, in a stable order."""
    return sorted(p.relative_to(PROTO_ROOT).as_posix() for p in PROTO_ROOT.rglob("*.proto"))
