"""Loads envoy/generate.py, the edge configuration generator, as a module.

It lives in envoy/ beside the topology it reads, but `envoy` is already the name of an installed
package (Envoy's API stubs and binary), so it is loaded by path under a name of its own.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

GENERATOR = Path(__file__).resolve().parents[1] / "envoy" / "generate.py"
_MODULE_NAME = "mesh_envoy_generate"


@cache
def generator() -> ModuleType:
    """envoy/generate.py, imported once."""
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, GENERATOR)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {GENERATOR}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def render(descriptor_set: Path, generated_dir: Path) -> None:
    """`make gen` stage: generated/envoy.yaml, paths relative to the repository root."""
    edge = generator()
    edge.render(generated_dir / "envoy.yaml", descriptor_set=descriptor_set)


__all__ = ["GENERATOR", "generator", "render"]
