"""Fixtures for the edge tests: the generator, dev TLS files and a rendered configuration."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from services.launcher.tls import DevTls, ensure_dev_tls
from tools.edge import generator

REPO = Path(__file__).resolve().parents[2]
DESCRIPTOR_SET = REPO / "generated" / "descriptor.binpb"


@pytest.fixture(scope="session")
def edge() -> ModuleType:
    return generator()


@pytest.fixture(scope="session")
def dev_tls(tmp_path_factory: pytest.TempPathFactory) -> DevTls:
    return ensure_dev_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def rendered_config_path(
    edge: ModuleType, dev_tls: DevTls, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The configuration as the launcher renders it: absolute paths, default topology."""
    files = edge.Files(
        descriptor_set=str(DESCRIPTOR_SET),
        tls_cert=str(dev_tls.server_cert),
        tls_key=str(dev_tls.server_key),
    )
    out: Path = edge.render(tmp_path_factory.mktemp("envoy") / "envoy.yaml", files=files)
    return out


@pytest.fixture(scope="session")
def rendered_config(rendered_config_path: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(rendered_config_path.read_text())
    return config
