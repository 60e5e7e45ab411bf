"""A small offline Kustomize renderer: enough of it to check what `kubectl apply -k` creates.

It understands what deploy/k8s uses and nothing more: `resources` (files and directories),
`namespace`, `configMapGenerator` with `files` (without the content-hash suffix), `images`
and strategic-merge `patches` (optionally with a `target` by kind/name). Anything else in a
kustomization.yaml is refused, so a new feature cannot be silently ignored by the tests.
When kubectl is installed, a test compares this renderer's output with `kubectl kustomize`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]
# libyaml when PyYAML was built with it: the Envoy configuration alone is 1,400 lines.
Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SUPPORTED_FIELDS = frozenset(
    {"apiVersion", "kind", "namespace", "resources", "configMapGenerator", "images", "patches"}
)
# Lists merged element by element on this key (strategic merge); other lists are replaced.
_MERGE_KEYS = ("name", "containerPort", "mountPath")


def load_yaml_documents(path: Path) -> list[Resource]:
    return parse_all(path.read_text())


def parse_all(text: str) -> list[Resource]:
    documents = yaml.load_all(text, Loader=Loader)  # a safe loader, C or Python
    return [doc for doc in documents if doc is not None]


def parse(text: str) -> Any:
    return yaml.load(text, Loader=Loader)  # noqa: S506 (a safe loader, C or Python)


def kustomization(directory: Path) -> Resource:
    data: Resource = parse((directory / "kustomization.yaml").read_text())
    unsupported = set(data) - SUPPORTED_FIELDS
    if unsupported:
        raise ValueError(f"{directory}: kustomization fields not understood: {sorted(unsupported)}")
    return data


def referenced_files(directory: Path) -> list[Path]:
    """Every file or directory the kustomization in `directory` names."""
    data = kustomization(directory)
    paths = [directory / entry for entry in data.get("resources", [])]
    paths += [directory / patch["path"] for patch in data.get("patches", [])]
    for generator in data.get("configMapGenerator", []):
        paths += [directory / _file_source(entry)[1] for entry in generator.get("files", [])]
    return paths


def render(directory: Path) -> list[Resource]:
    """The resources `kustomize build directory` produces (generated names without hashes)."""
    data = kustomization(directory)
    resources: list[Resource] = []
    for entry in data.get("resources", []):
        path = directory / entry
        resources += render(path) if path.is_dir() else load_yaml_documents(path)
    for generator in data.get("configMapGenerator", []):
        resources.append(_config_map(directory, generator))
    for patch in data.get("patches", []):
        _apply_patch(resources, load_yaml_documents(directory / patch["path"])[0], patch)
    if "namespace" in data:
        for resource in resources:
            if resource["kind"] != "Namespace":
                resource["metadata"]["namespace"] = data["namespace"]
    for image in data.get("images", []):
        for container in containers(resources):
            if image_name(container["image"]) == image["name"]:
                container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
    return resources


def containers(resources: list[Resource]) -> list[Resource]:
    """Every container and init container of every workload in `resources`."""
    found = []
    for resource in resources:
        pod = resource.get("spec", {}).get("template", {}).get("spec", {})
        found += pod.get("initContainers", []) + pod.get("containers", [])
    return found


def image_name(image: str) -> str:
    """`registry/name:tag` or `name@sha256:...` → the name Kustomize's `images` matches."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(last)] + last.split(":", 1)[0]


def _file_source(entry: str) -> tuple[str, str]:
    key, _, path = entry.rpartition("=")
    return key or Path(path).name, path


def _config_map(directory: Path, generator: Resource) -> Resource:
    data = {}
    for entry in generator.get("files", []):
        key, path = _file_source(entry)
        data[key] = (directory / path).read_text()
    labels = generator.get("options", {}).get("labels", {})
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": generator["name"], **({"labels": labels} if labels else {})},
        "data": data,
    }


def _apply_patch(resources: list[Resource], patch: Resource, entry: Resource) -> None:
    target = entry.get("target") or {"kind": patch["kind"], "name": patch["metadata"]["name"]}
    matched = [
        resource
        for resource in resources
        if resource["kind"] == target["kind"]
        and ("name" not in target or resource["metadata"]["name"] == target["name"])
    ]
    if not matched:
        raise ValueError(f"patch {entry['path']} matches no resource")
    body = {key: value for key, value in patch.items() if key not in ("apiVersion", "kind")}
    body["metadata"] = {k: v for k, v in patch["metadata"].items() if k != "name"}
    for resource in matched:
        _merge(resource, body)


def _merge(into: Resource, patch: Resource) -> None:
    for key, value in patch.items():
        current = into.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            _merge(current, value)
        elif isinstance(value, list) and isinstance(current, list):
            into[key] = _merge_list(current, value)
        else:
            into[key] = value


def _merge_list(current: list[Any], patch: list[Any]) -> list[Any]:
    key = next(
        (k for k in _MERGE_KEYS if patch and all(isinstance(i, dict) and k in i for i in patch)),
        None,
    )
    if key is None:
        return patch
    merged = list(current)
    for item in patch:
        existing = next(
            (m for m in merged if isinstance(m, dict) and m.get(key) == item[key]), None
        )
        if existing is None:
            merged.append(item)
        else:
            _merge(existing, item)
    return merged
