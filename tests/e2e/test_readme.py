"""The README's Tour, run as written against the test mesh, so the docs cannot rot.

Only what differs between a developer's `make run` and the test mesh is rewritten: the edge
port, the CA path, and the e-mail addresses (made unique so the tour can run again).
"""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.e2e.conftest import Mesh
from tests.e2e.edge import GRPCURL

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"
REPO = README.parent


def tour_blocks() -> list[str]:
    """The ```sh blocks of the `## Tour` section, in order."""
    text = README.read_text()
    section = re.search(r"^## Tour\n(.*?)(?=^## )", text, re.S | re.M)
    assert section, "README.md has no '## Tour' section"
    return re.findall(r"^```sh\n(.*?)^```", section.group(1), re.S | re.M)


def for_the_test_mesh(script: str, mesh: Mesh) -> str:
    run = uuid.uuid4().hex[:8]
    script = script.replace("localhost:8443", f"localhost:{mesh.edge_port}")
    script = script.replace(".data/tls/ca.crt", str(mesh.ca_cert))
    script = script.replace(".venv/bin/grpcurl", GRPCURL)
    return re.sub(r"([a-z]+)@example\.com", rf"\1-{run}@example.com", script)


def test_the_tour_has_the_promised_steps() -> None:
    tour = "\n".join(tour_blocks())
    for step in (
        "/v1/users ",  # sign up
        "/v1/auth/login",
        "/v1/users/me",
        "/v1/posts ",
        "/comments",
        "/v1/notifications ",
        "/v1/notifications:stream",
        "grpcurl -cacert $CA localhost:8443 list",
        "describe",
        '-H "authorization: Bearer $TOKEN"',
    ):
        assert step in tour, step


def test_the_tour_runs_against_the_mesh(mesh: Mesh) -> None:
    script = for_the_test_mesh("\n".join(tour_blocks()), mesh)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    output = result.stdout
    assert result.returncode == 0, f"{result.stderr}\n{output}"
    assert '"display_name":"Ada"' in output  # signed up, read herself
    assert '"title":"Notes"' not in result.stderr
    assert '"body":"Remarkable!"' in output  # Grace's comment
    assert '"kind":"NOTIFICATION_KIND_COMMENT"' in output  # listed (and streamed)
    assert output.count('"kind":"NOTIFICATION_KIND_COMMENT"') >= 2, "not on the stream"
    assert '{"heartbeat":{}}' in output
    assert "mesh.user.v1.UserService" in output  # grpcurl list
    assert "rpc CreatePost" in output  # grpcurl describe
    assert '"unreadCount"' in output or '"unread_count"' in output
    assert '"message":"Jwt is missing"' in output
