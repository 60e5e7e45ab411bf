"""The Kubernetes manifests, rendered offline: probes, discovery, scaling, disruption, settings."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy import kustomize
from tests.deploy.sources import (
    BASE,
    K8S,
    OVERLAYS,
    SECRET_TEMPLATE,
    SERVICES,
    edge_port,
    service_ports,
    variables,
)

Resource = dict[str, Any]
KUSTOMIZATIONS = [BASE, *OVERLAYS]
IDS = [str(path.relative_to(K8S)) for path in KUSTOMIZATIONS]


@pytest.fixture(scope="module", params=KUSTOMIZATIONS, ids=IDS)
def rendered(request: pytest.FixtureRequest) -> list[Resource]:
    resources: list[Resource] = kustomize.render(request.param)
    return resources


def of_kind(resources: list[Resource], kind: str) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def pod_spec(deployment: Resource) -> Resource:
    spec: Resource = deployment["spec"]["template"]["spec"]
    return spec


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def grpc_deployments(resources: list[Resource]) -> dict[str, Resource]:
    return {name: d for name, d in of_kind(resources, "Deployment").items() if name in SERVICES}


def env_of(container: Resource) -> dict[str, Resource]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def template_secrets() -> dict[str, Resource]:
    """The Secrets created outside Kustomize, as secret.template.yaml describes them."""
    return {d["metadata"]["name"]: d for d in kustomize.load_yaml_documents(SECRET_TEMPLATE)}


def config_maps(resources: list[Resource]) -> dict[str, Resource]:
    return of_kind(resources, "ConfigMap")


def test_every_yaml_file_parses_into_objects_with_api_version_kind_and_name() -> None:
    files = sorted(K8S.rglob("*.yaml"))
    assert files
    for path in files:
        documents = kustomize.load_yaml_documents(path)
        assert documents, path
        if path.parent.name == "envoy":  # the Envoy configuration the ConfigMap is built from
            continue
        for document in documents:
            assert document.get("apiVersion"), path
            assert document.get("kind"), path
            if document["kind"] != "Kustomization":
                assert document.get("metadata", {}).get("name"), path


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=IDS)
def test_kustomization_lists_only_files_that_exist(directory: Path) -> None:
    for path in kustomize.referenced_files(directory):
        assert path.exists(), f"{directory}/kustomization.yaml names missing {path}"


def test_every_manifest_in_base_is_listed_or_is_the_secret_template() -> None:
    listed = {path.resolve() for path in kustomize.referenced_files(BASE)}
    for path in BASE.rglob("*.yaml"):
        if path.name == "kustomization.yaml" or path == SECRET_TEMPLATE:
            continue
        assert path.resolve() in listed, f"{path} is not in base/kustomization.yaml"


def test_there_is_a_dev_overlay() -> None:
    assert K8S / "overlays" / "dev" in OVERLAYS


def test_every_service_has_a_deployment(rendered: list[Resource]) -> None:
    assert set(grpc_deployments(rendered)) == set(SERVICES)
    assert "envoy" in of_kind(rendered, "Deployment")


def test_deployment_selectors_match_their_pod_labels(rendered: list[Resource]) -> None:
    for name, deployment in of_kind(rendered, "Deployment").items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector, name
        assert selects(selector, deployment["spec"]["template"]["metadata"]["labels"]), name


def test_each_service_runs_its_own_module_on_its_topology_port(rendered: list[Resource]) -> None:
    ports = service_ports()
    for name, deployment in grpc_deployments(rendered).items():
        (container,) = pod_spec(deployment)["containers"]
        assert container["command"] == ["python", "-m", f"services.{name}"]
        assert (K8S.parents[1] / "services" / name / "__init__.py").is_file()
        assert env_of(container)["GRPC_PORT"]["value"] == str(ports[name])
        assert [p["containerPort"] for p in container["ports"]] == [ports[name]]


def test_grpc_probes_check_the_port_the_service_listens_on(rendered: list[Resource]) -> None:
    for name, deployment in grpc_deployments(rendered).items():
        (container,) = pod_spec(deployment)["containers"]
        port = int(env_of(container)["GRPC_PORT"]["value"])
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert container[probe]["grpc"]["port"] == port, (name, probe)


def test_pods_run_as_non_root_with_a_read_only_root_and_no_capabilities(
    rendered: list[Resource],
) -> None:
    for name, deployment in of_kind(rendered, "Deployment").items():
        pod = pod_spec(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod.get("initContainers", []) + pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert context.get("runAsUser", pod["securityContext"]["runAsUser"]) > 0, name
            assert container["resources"]["requests"], name
            assert container["resources"]["limits"]["memory"], name


def test_every_deployment_has_an_hpa_and_a_pdb_selecting_its_pods(
    rendered: list[Resource],
) -> None:
    hpas = of_kind(rendered, "HorizontalPodAutoscaler")
    pdbs = list(of_kind(rendered, "PodDisruptionBudget").values())
    for name, deployment in of_kind(rendered, "Deployment").items():
        hpa = hpas[name]
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        assert deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [p for p in pdbs if selects(p["spec"]["selector"]["matchLabels"], labels)]
        assert len(matching) == 1, f"{name}: {len(matching)} PodDisruptionBudgets"
        assert matching[0]["apiVersion"] == "policy/v1"


def test_grpc_services_are_headless_and_select_exactly_their_deployment(
    rendered: list[Resource],
) -> None:
    services = of_kind(rendered, "Service")
    deployments = of_kind(rendered, "Deployment")
    for name, deployment in grpc_deployments(rendered).items():
        service = services[name]  # the DNS name other pods and Envoy use
        assert service["spec"]["clusterIP"] == "None", name
        selected = [
            other
            for other, d in deployments.items()
            if selects(service["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
        ]
        assert selected == [name]
        (container,) = pod_spec(deployment)["containers"]
        (port,) = service["spec"]["ports"]
        assert port["port"] == container["ports"][0]["containerPort"]
        assert port["targetPort"] in (container["ports"][0]["name"], port["port"])


def test_the_edge_service_exposes_the_topology_edge_port(rendered: list[Resource]) -> None:
    service = of_kind(rendered, "Service")["envoy"]
    assert service["spec"].get("clusterIP") != "None"
    (container,) = pod_spec(of_kind(rendered, "Deployment")["envoy"])["containers"]
    assert container["image"].startswith("envoyproxy/envoy:v1.40")
    assert [p["containerPort"] for p in container["ports"]] == [edge_port()]
    assert [p["port"] for p in service["spec"]["ports"]] == [edge_port()]


def test_environment_names_are_the_ones_the_settings_modules_define(
    rendered: list[Resource],
) -> None:
    maps, secrets = config_maps(rendered), template_secrets()
    for name, deployment in grpc_deployments(rendered).items():
        (container,) = pod_spec(deployment)["containers"]
        names = set(env_of(container))
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                names |= set(maps[source["configMapRef"]["name"]]["data"])
            else:
                names |= set(secrets[source["secretRef"]["name"]]["stringData"])
        expected = variables(name)
        assert names <= expected.documented, f"{name}: {sorted(names - expected.documented)}"
        assert expected.required <= names, f"{name} misses {sorted(expected.required - names)}"
        # Unset would start an embedded server inside the pod: always provided.
        assert {"DATABASE_URL", "REDIS_URL"} & expected.documented <= names, name


def test_every_referenced_config_map_secret_and_claim_exists(rendered: list[Resource]) -> None:
    maps, secrets = config_maps(rendered), template_secrets()
    claims = of_kind(rendered, "PersistentVolumeClaim")
    for name, deployment in of_kind(rendered, "Deployment").items():
        pod = pod_spec(deployment)
        volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
        for container in pod.get("initContainers", []) + pod["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, (name, mount)
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef") or source["secretRef"]
                assert ref["name"] in (maps if "configMapRef" in source else secrets), name
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {})
                if "configMapKeyRef" in ref:
                    key = ref["configMapKeyRef"]
                    assert key["key"] in maps[key["name"]]["data"], (name, key)
                if "secretKeyRef" in ref:
                    key = ref["secretKeyRef"]
                    assert key["key"] in secrets[key["name"]]["stringData"], (name, key)
        for volume in volumes.values():
            if "configMap" in volume:
                assert volume["configMap"]["name"] in maps, (name, volume)
            if "secret" in volume:
                secret = secrets[volume["secret"]["secretName"]]
                keys = {item["key"] for item in volume["secret"].get("items", [])}
                assert keys <= set(secret["stringData"]), (name, volume)
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, (name, volume)


def test_no_secret_values_are_kept_in_the_repository(rendered: list[Resource]) -> None:
    assert not of_kind(rendered, "Secret"), "Secrets are created outside the manifests"
    for secret in template_secrets().values():
        assert secret["kind"] == "Secret"
        assert "data" not in secret
        assert all(value == "" for value in secret["stringData"].values()), secret
    for config in config_maps(rendered).values():
        for key in config["data"]:
            assert not re.search(r"SECRET|PASSWORD|TOKEN|_KEY$", key), key
            assert key not in ("DATABASE_URL", "REDIS_URL"), "URLs carry credentials"


def test_envoy_reads_its_config_descriptor_and_certificate_where_the_config_says(
    rendered: list[Resource],
) -> None:
    pod = pod_spec(of_kind(rendered, "Deployment")["envoy"])
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_path = container["args"][container["args"].index("-c") + 1]
    assert "configMap" in volumes[mounts[config_path]]
    text = config_maps(rendered)["envoy-config"]["data"]["envoy.yaml"]
    files = set(re.findall(r"(?:filename|proto_descriptor): (/\S+)", text))
    assert files
    for path in files:
        directory, file_name = path.rsplit("/", 1)
        volume = volumes[mounts[directory]]
        if "secret" in volume:
            assert file_name in {i["path"] for i in volume["secret"]["items"]}
        else:  # filled by the init container from the mesh image
            (init,) = pod["initContainers"]
            assert init["command"][-1] == path
            assert (
                init["image"]
                == pod_spec(grpc_deployments(rendered)["auth"])["containers"][0]["image"]
            )


def test_the_dev_overlay_runs_one_replica_of_the_dev_image() -> None:
    rendered = kustomize.render(K8S / "overlays" / "dev")
    for deployment in of_kind(rendered, "Deployment").values():
        assert deployment["spec"]["replicas"] == 1
    images = {c["image"] for c in kustomize.containers(rendered)}
    assert "mesh:dev" in images
    assert not any(image.startswith("mesh:") and image != "mesh:dev" for image in images)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=IDS)
def test_the_offline_renderer_agrees_with_kubectl_kustomize(directory: Path) -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # kubectl appends a content hash to generated names: map it back.
    text = re.sub(r"\b(envoy-config)-[a-z0-9]{10}\b", r"\1", result.stdout)
    theirs = sorted(kustomize.parse_all(text), key=_identity)
    ours = sorted(kustomize.render(directory), key=_identity)
    assert [_identity(r) for r in ours] == [_identity(r) for r in theirs]
    assert ours == theirs


def _identity(resource: Resource) -> tuple[str, str]:
    return resource["kind"], resource["metadata"]["name"]
