"""Run protoc (from grpcio-tools) over our contracts."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

from tools.protogen import deps, paths


def include_paths() -> list[str]:
    """Import roots: our protos, then the well-known and Google API protos of installed packages."""
    grpc_tools_protos = Path(grpc_tools.__file__).parent / "_proto"
    site_packages = Path(grpc_tools.__file__).parents[1]
    return [str(paths.PROTO_ROOT), str(site_packages), str(grpc_tools_protos)]


def run(args: list[str]) -> None:
    dependency_set = deps.write_dependency_set(paths.BUILD / "deps.binpb")
    argv = ["protoc", f"--descriptor_set_in={dependency_set}"]
    argv += [f"-I{p}" for p in include_paths()]
    argv += args
    if protoc.main(argv) != 0:
        raise SystemExit(f"protoc failed: {' '.join(argv[1:])}")


def plugin(name: str) -> str:
    """A protoc plugin installed next to the running interpreter (in the venv)."""
    return f"--plugin=protoc-gen-{name}={Path(sys.executable).parent / f'protoc-gen-{name}'}"


# Not imported by any contract, but the edge needs them to render google.rpc.Status details
# (BadRequest, ErrorInfo) as JSON for REST clients.
ERROR_PROTOS = ("google/rpc/status.proto", "google/rpc/error_details.proto")


def build_image(out: Path, *, source_info: bool = True) -> Path:
    """A FileDescriptorSet of our protos with every import: what Envoy and buf consume."""
    out.parent.mkdir(parents=True, exist_ok=True)
    args = ["--include_imports", f"--descriptor_set_out={out}"]
    if source_info:
        args.append("--include_source_info")
    run([*args, *paths.own_proto_files(), *ERROR_PROTOS])
    return out


def generate_python(out_dir: Path) -> None:
    """Message modules, gRPC stubs and .pyi type stubs for them, under out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    run(
        [
            f"--python_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            plugin("mypy"),
            plugin("mypy_grpc"),
            f"--mypy_out=quiet:{out_dir}",
            f"--mypy_grpc_out=quiet:{out_dir}",
            *paths.own_proto_files(),
            deps.VALIDATE_PROTO,
        ]
    )
