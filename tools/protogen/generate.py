"""`make gen`: everything under generated/ is rewritten from proto/, byte for byte."""

from __future__ import annotations

import importlib
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from tools.protogen import paths, protoc

# Top-level entries of generated/ that this generator owns and rewrites.
PYTHON_ROOTS = ("mesh", "buf")

# Later stages that render documents from the descriptor set: (module, function). Each takes
# (descriptor_set_path, generated_dir) and writes its files under generated/.
RENDERERS: tuple[tuple[str, str], ...] = (
    ("tools.protogen.openapi", "render"),
    ("tools.edge", "render"),  # generated/envoy.yaml from the policy options (envoy/)
)


def _without_services(pyi_or_py: Path) -> bool:
    # grpc_tools writes a *_pb2_grpc module for every file; keep only those defining a service.
    return "def add_" not in pyi_or_py.read_text()


def _python(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        protoc.generate_python(staging)
        for stub in sorted(staging.rglob("*_pb2_grpc.py*")):
            if _without_services(stub):
                stub.unlink()
        for root in PYTHON_ROOTS:
            shutil.rmtree(out / root, ignore_errors=True)
            shutil.copytree(staging / root, out / root)


def _renderers() -> list[Callable[[Path, Path], None]]:
    found = []
    for module_name, function in RENDERERS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        found.append(getattr(module, function))
    return found


def generate(out: Path = paths.GENERATED) -> None:
    """Write every generated artefact under out (generated/ by default)."""
    out.mkdir(parents=True, exist_ok=True)
    _python(out)
    descriptor_set = protoc.build_image(out / paths.DESCRIPTOR_SET.name)
    for render in _renderers():
        render(descriptor_set, out)
