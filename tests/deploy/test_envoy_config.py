"""The container edge configuration: generated from the contracts, discovering replicas by DNS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deploy import render_envoy
from services.launcher.tls import ensure_dev_tls
from tests.deploy import kustomize
from tests.deploy.sources import BASE, DEPLOY, REPO, edge_port, service_ports

RENDERED = BASE / "envoy" / "envoy.yaml"
ENVOY = Path(sys.executable).parent / "envoy"
DNS_CLUSTER = "type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded: dict[str, Any] = kustomize.parse(RENDERED.read_text())
    return loaded


def clusters(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in config["static_resources"]["clusters"]}


def routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    (edge,) = [
        listener
        for listener in config["static_resources"]["listeners"]
        if listener["name"] == "edge_https"
    ]
    manager = edge["filter_chains"][0]["filters"][0]["typed_config"]
    found: list[dict[str, Any]] = manager["route_config"]["virtual_hosts"][0]["routes"]
    return found


def test_the_committed_file_is_what_the_renderer_builds(config: dict[str, Any]) -> None:
    # Compared as data (dumping 1,400 lines of YAML in pure Python is the slow part).
    assert RENDERED.read_text().startswith(render_envoy.HEADER)
    assert config == render_envoy.build(), (
        "deploy/k8s/base/envoy/envoy.yaml is stale: run python -m deploy.render_envoy"
    )


def test_routes_are_the_generated_ones_of_the_one_machine_edge(config: dict[str, Any]) -> None:
    one_machine = kustomize.parse((REPO / "generated" / "envoy.yaml").read_text())
    assert routes(config) == routes(one_machine)
    assert len(routes(config)) > 10


def test_every_upstream_is_found_by_strict_dns_on_its_container_port(
    config: dict[str, Any],
) -> None:
    by_name = clusters(config)
    ports = service_ports()
    assert set(ports) <= set(by_name)
    for name, port in ports.items():
        cluster = by_name[name]
        assert "type" not in cluster
        discovery = cluster["cluster_type"]["typed_config"]
        assert discovery["@type"] == DNS_CLUSTER
        # Strict: every address the name resolves to is one replica.
        assert discovery["all_addresses_in_single_endpoint"] is False
        (group,) = cluster["load_assignment"]["endpoints"]
        (endpoint,) = group["lb_endpoints"]
        address = endpoint["endpoint"]["address"]["socket_address"]
        # The compose service and the headless Kubernetes Service carry the cluster's name.
        assert address == {"address": name, "port_value": port}


def test_service_clusters_keep_health_checks_and_outlier_detection(config: dict[str, Any]) -> None:
    for name in ("auth", "user", "content", "notification"):
        cluster = clusters(config)[name]
        assert cluster["health_checks"][0]["grpc_health_check"] == {"service_name": ""}
        assert cluster["outlier_detection"]
        assert cluster["lb_policy"] == "LEAST_REQUEST"


def test_only_the_edge_listener_leaves_loopback(config: dict[str, Any]) -> None:
    addresses = {
        listener["name"]: listener["address"]["socket_address"]
        for listener in config["static_resources"]["listeners"]
    }
    everywhere = "0.0.0.0"  # noqa: S104 (the edge accepts clients from other machines)
    assert addresses.pop("edge_https") == {"address": everywhere, "port_value": edge_port()}
    assert all(address["address"] == "127.0.0.1" for address in addresses.values())
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


@pytest.mark.skipif(not ENVOY.exists(), reason="the envoy binary is not installed")
def test_envoy_accepts_the_configuration(tmp_path: Path) -> None:
    # The paths the containers mount, recreated under a temporary directory.
    tls = ensure_dev_tls(tmp_path / "tls")
    text = RENDERED.read_text()
    text = text.replace(render_envoy.DESCRIPTOR_SET, str(REPO / "generated" / "descriptor.binpb"))
    text = text.replace(render_envoy.TLS_DIR, str(tls.server_cert.parent))
    config = tmp_path / "envoy.yaml"
    config.write_text(text)
    result = subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(config), "--log-level", "warn"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Deprecated" not in result.stdout + result.stderr


def test_the_renderer_lives_in_deploy() -> None:
    assert Path(render_envoy.__file__).parent == DEPLOY
