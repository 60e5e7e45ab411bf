"""What the deployment files are checked against: the settings each service documents, the
topology's ports and the files under deploy/. Read from the source, never restated here."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
BASE = K8S / "base"
OVERLAYS = sorted(path.parent for path in (K8S / "overlays").glob("*/kustomization.yaml"))
SECRET_TEMPLATE = BASE / "secret.template.yaml"

# Each process and the modules whose settings table documents the variables it reads.
_SETTINGS_MODULES: dict[str, tuple[str, ...]] = {
    "auth": ("platform/settings.py", "auth/settings.py"),
    "user": ("platform/settings.py", "user/settings.py"),
    "content": ("platform/settings.py", "content/settings.py"),
    "notification": ("platform/settings.py", "notification/settings.py"),
    "ratelimit": ("ratelimit/settings.py",),
}
# Processes without a settings module: the variables their entry point reads.
_ENTRY_POINTS = {"reflection": "reflection/__main__.py"}
SERVICES = (*_SETTINGS_MODULES, *_ENTRY_POINTS)
# The four contract services run with two replicas each (the product's shape).
REPLICATED = ("auth", "user", "content", "notification")

_TABLE_ROW = re.compile(r"^\|\s*([A-Z][A-Z0-9_]+)\s*\|\s*([^|]*?)\s*\|", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Variables:
    documented: frozenset[str]
    required: frozenset[str]


@cache
def variables(service: str) -> Variables:
    """The environment variables `service` reads, from its settings modules' tables."""
    documented: set[str] = set()
    required: set[str] = set()
    for module in _SETTINGS_MODULES.get(service, ()):
        docstring = ast.get_docstring(ast.parse((REPO / "services" / module).read_text())) or ""
        for name, default in _TABLE_ROW.findall(docstring):
            documented.add(name)
            if default == "required":
                required.add(name)
    if service in _ENTRY_POINTS:
        source = (REPO / "services" / _ENTRY_POINTS[service]).read_text()
        documented |= set(re.findall(r"os\.environ\.get\(\s*['\"]([A-Z0-9_]+)['\"]", source))
    return Variables(frozenset(documented), frozenset(required))


@cache
def topology() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "envoy" / "topology.yaml").read_text())
    return loaded


def service_ports() -> dict[str, int]:
    """The port each process listens on in a container: its topology base port."""
    raw = topology()
    ports = {entry["name"]: int(entry["base_port"]) for entry in raw["services"]}
    ports["ratelimit"] = int(raw["ratelimit"]["port"])
    ports["reflection"] = int(raw["reflection"]["port"])
    return ports


def edge_port() -> int:
    return int(topology()["edge"]["port"])
