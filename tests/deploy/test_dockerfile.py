"""deploy/Dockerfile, parsed: a multi-stage build of the pinned environment, run as non-root."""

from __future__ import annotations

import fnmatch
import re
import shlex
from dataclasses import dataclass, field

import pytest

from tests.deploy.sources import DEPLOY, REPO

DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"  # BuildKit's per-Dockerfile ignore file
# What the image needs at run time: the services, their generated stubs and descriptor set,
# the edge generator and tools the services import, and the contracts.
SOURCES = ("services/", "generated/", "envoy/", "tools/", "proto/")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) with comments dropped and line continuations joined."""
    joined: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        joined.append(pending + stripped)
        pending = ""
    assert not pending, "dangling line continuation"
    parsed = []
    for line in joined:
        keyword, _, arguments = line.partition(" ")
        parsed.append((keyword.upper(), arguments.strip()))
    return parsed


@pytest.fixture(scope="module")
def global_args() -> dict[str, str]:
    args = {}
    for keyword, arguments in instructions():
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = arguments.partition("=")
            args[name] = default
    return args


@pytest.fixture(scope="module")
def stages(global_args: dict[str, str]) -> list[Stage]:
    found: list[Stage] = []
    for keyword, arguments in instructions():
        if keyword == "FROM":
            words = arguments.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(image, name))
        elif found:
            found[-1].instructions.append((keyword, arguments))
    return found


def test_every_stage_builds_on_python_3_11_slim(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "a multi-stage build keeps build tooling out of the image"
    assert {stage.base for stage in stages} == {"python:3.11-slim"}
    assert all(stage.name for stage in stages)


def test_dependencies_are_the_pinned_set(stages: list[Stage]) -> None:
    runs = " ".join(stages[0].arguments("RUN"))
    assert re.search(r"pip install -r \S*requirements\.txt -c \S*constraints\.txt", runs)
    copies = " ".join(stages[0].arguments("COPY"))
    assert "requirements.txt" in copies
    assert "constraints.txt" in copies


def test_the_image_holds_every_source_directory_the_services_import(stages: list[Stage]) -> None:
    copied = {shlex.split(args)[0] for args in stages[0].arguments("COPY")}
    assert set(SOURCES) <= copied
    for source in SOURCES:
        assert (REPO / source).is_dir()


def test_the_final_stage_copies_only_from_earlier_stages(stages: list[Stage]) -> None:
    names = [stage.name for stage in stages]
    for index, stage in enumerate(stages):
        for args in stage.arguments("COPY"):
            origin = re.match(r"--from=(\S+)", args)
            if origin:
                assert origin.group(1) in names[:index], args


def test_the_service_runs_as_a_numeric_non_root_user(stages: list[Stage]) -> None:
    users = stages[-1].arguments("USER")
    assert users, "the final stage must switch away from root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), "numeric, so Kubernetes can verify runAsNonRoot"
    assert int(uid) != 0
    # The Kubernetes pods run with the same uid (their volumes are owned by it).
    for path in (DEPLOY / "k8s" / "base" / "services").glob("*.yaml"):
        assert f"runAsUser: {uid}" in path.read_text(), path


def test_the_default_command_starts_the_service_named_by_the_build_arg(
    stages: list[Stage],
) -> None:
    final = stages[-1]
    assert any(args.startswith("SERVICE") for args in final.arguments("ARG"))
    env = " ".join(final.arguments("ENV"))
    assert "MESH_SERVICE=${SERVICE}" in env
    (command,) = final.arguments("CMD")
    assert "exec python -m" in command
    assert "services.${MESH_SERVICE}" in command
    # Imports resolve like the tests': the repository root and generated/.
    assert "PYTHONPATH=/app:/app/generated" in env


def test_no_secret_is_baked_into_the_image(stages: list[Stage]) -> None:
    for stage in stages:
        for keyword in ("ENV", "ARG"):
            for args in stage.arguments(keyword):
                assert not re.search(r"SECRET|PASSWORD|TOKEN|DATABASE_URL|REDIS_URL", args), args
        for args in stage.arguments("COPY") + stage.arguments("ADD"):
            assert ".data" not in args, args
            assert ".env" not in args, args


def test_local_state_never_enters_the_build_context() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        result = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            body = pattern.removeprefix("!").rstrip("/").removeprefix("**/")
            if any(fnmatch.fnmatch(part, body) for part in _prefixes(path)) or fnmatch.fnmatch(
                path, body
            ):
                result = not negated
        return result

    for kept in ("requirements.txt", "constraints.txt", *(s.rstrip("/") for s in SOURCES)):
        assert not ignored(kept), kept
    for secret in (".data", ".data/tls/server.key", ".venv", ".git", "services/x/.data"):
        assert ignored(secret), secret


def _prefixes(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[: index + 1]) for index in range(len(parts))] + parts
