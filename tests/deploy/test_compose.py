"""deploy/compose.yaml: every process of the mesh, configured with the variables it reads."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy import kustomize
from tests.deploy.sources import DEPLOY, REPLICATED, REPO, SERVICES, service_ports, variables

# `${NAME:?message}`: compose refuses to start unless the caller's environment sets NAME.
REQUIRED_FROM_CALLER = re.compile(r"\$\{([A-Z0-9_]+):\?[^}]*\}")
MESH_DOCKERFILE = "deploy/Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = kustomize.parse((DEPLOY / "compose.yaml").read_text())
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def test_compose_runs_the_datastores_every_service_and_the_edge(services: dict[str, Any]) -> None:
    assert {"postgres", "redis", "envoy", *SERVICES} <= set(services)


def test_contract_services_run_two_replicas(services: dict[str, Any]) -> None:
    for name in REPLICATED:
        assert services[name]["deploy"]["replicas"] == 2, name


def test_every_service_is_built_from_the_one_mesh_image(services: dict[str, Any]) -> None:
    images = set()
    for name in SERVICES:
        service = services[name]
        build = service["build"]
        assert build["dockerfile"] == MESH_DOCKERFILE
        assert (DEPLOY / build["context"]).resolve() == REPO
        assert (REPO / build["dockerfile"]).is_file()
        assert service["command"] == ["python", "-m", f"services.{name}"]
        assert (REPO / "services" / name / "__init__.py").is_file()
        images.add(service["image"])
    assert len(images) == 1


def test_envoy_uses_the_envoy_1_40_image(services: dict[str, Any]) -> None:
    assert services["envoy"]["image"].startswith("envoyproxy/envoy:v1.40")


def test_environment_names_are_the_ones_the_settings_modules_define(
    services: dict[str, Any],
) -> None:
    for name in SERVICES:
        environment = services[name]["environment"]
        assert isinstance(environment, dict), f"{name}: use the mapping form"
        names = set(environment)
        expected = variables(name)
        assert names <= expected.documented, f"{name}: {sorted(names - expected.documented)}"
        assert expected.required <= names, f"{name} misses {sorted(expected.required - names)}"
        # Unset would start an embedded server inside the container: always provided.
        assert {"DATABASE_URL", "REDIS_URL"} & expected.documented <= names, name


def test_each_service_listens_on_its_topology_port_on_every_interface(
    services: dict[str, Any],
) -> None:
    for name, port in service_ports().items():
        environment = services[name]["environment"]
        assert environment["GRPC_PORT"] == str(port), name
        assert environment["GRPC_HOST"] == "0.0.0.0", name  # noqa: S104 (containers)


def test_service_targets_name_compose_services_and_their_ports(services: dict[str, Any]) -> None:
    ports = service_ports()
    for name in SERVICES:
        for variable, value in services[name]["environment"].items():
            if variable.endswith("_SERVICE_TARGET"):
                target = variable.removesuffix("_SERVICE_TARGET").lower()
                assert value == f"dns:///{target}:{ports[target]}", (name, variable)


def test_secrets_come_from_the_callers_environment(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for variable, value in (service.get("environment") or {}).items():
            if re.search(r"SECRET|PASSWORD|TOKEN", variable):
                assert REQUIRED_FROM_CALLER.fullmatch(str(value)), (name, variable)
            if variable == "DATABASE_URL":
                password = re.match(r"postgresql://[^:]+:(.*)@", str(value))
                assert password, value
                assert REQUIRED_FROM_CALLER.fullmatch(password.group(1)), (name, variable)


def test_only_the_edge_publishes_a_port(services: dict[str, Any]) -> None:
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert list(published) == ["envoy"]
    assert published["envoy"] == ["8443:8443"]


def test_dependencies_name_existing_services(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)


def test_envoy_mounts_the_rendered_config_and_the_files_it_names(
    services: dict[str, Any],
) -> None:
    envoy = services["envoy"]
    mounts = {}
    for volume in envoy["volumes"]:
        source, target, *_ = volume.split(":")
        mounts[target] = source
    config_path = envoy["command"][envoy["command"].index("-c") + 1]
    rendered = (DEPLOY / mounts[config_path]).resolve()
    assert rendered == DEPLOY / "k8s" / "base" / "envoy" / "envoy.yaml"
    named = set(re.findall(r"(?:filename|proto_descriptor): (/\S+)", rendered.read_text()))
    assert named
    for path in named:
        if path in mounts:  # a file from the repository
            assert (DEPLOY / mounts[path]).resolve().is_file(), path
        else:  # a file the one-shot `tls` service writes into a shared volume
            directory = next(t for t in mounts if path.startswith(t + "/"))
            volume = mounts[directory]
            writers = [
                s for s in services.values() if f"{volume}:/var/lib/mesh" in s.get("volumes", [])
            ]
            assert writers, path
            relative = path.removeprefix(directory + "/").rsplit("/", 1)[0]
            assert f"/var/lib/mesh/{relative}" in " ".join(writers[0]["command"]), path


def test_auth_replicas_share_their_signing_keys(services: dict[str, Any]) -> None:
    # AUTH_KEYS_DIR defaults to <DATA_DIR>/auth-keys: the data directory is a shared volume.
    auth = services["auth"]
    data_dir = auth["environment"]["DATA_DIR"]
    assert any(volume.endswith(f":{data_dir}") for volume in auth["volumes"])
