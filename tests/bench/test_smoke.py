"""bench-smoke: `python -m tests.bench --smoke` end to end, so the harness cannot rot.

It runs the real harness (mesh, baselines, h2load, wrk) with tiny durations and checks what
it produced, never how fast anything was: on a shared CI machine the figures mean nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench import load

REPO = Path(__file__).resolve().parents[2]
RATIOS = ("R1", "R2", "R3 hit", "R3 miss", "R4", "R5")
PATHS = (
    "empty_grpc",
    "grpc_hit",
    "envoy_grpc_hit",
    "envoy_rest_hit",
    "twin_hit",
    "envoy_rest_miss",
    "twin_miss",
)


@pytest.fixture(scope="module")
def smoke(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    try:
        load.require_tools()
    except load.MissingTools as missing:
        pytest.skip(str(missing))
    out = tmp_path_factory.mktemp("bench-results")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    completed = subprocess.run(
        [sys.executable, "-m", "tests.bench", "--smoke", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return completed, out


def test_prints_every_ratio_in_a_markdown_table(
    smoke: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    completed, _ = smoke
    for ratio in RATIOS:
        assert f"| {ratio} | " in completed.stdout
    assert "| path | req/s | p50 ms | p99 ms |" in completed.stdout


def test_writes_json_with_every_path_ratio_and_the_machine(
    smoke: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = smoke
    [result_file] = out.glob("bench-*-smoke.json")
    results = json.loads(result_file.read_text())
    for key in ("commit", "cpu", "python", "grpcio", "envoy", "h2load", "wrk"):
        assert results["machine"][key]
    assert set(results["paths"]) == set(PATHS)
    for name, path in results["paths"].items():
        assert path["rps"] > 0, name
        assert path["p99_ms"] is not None, name
        # Every response was a real answer: HTTP 2xx and, for gRPC, a message in the body.
        # (Socket errors, e.g. a timeout on a starved CI machine, are reported, not failed.)
        assert path["failed"] == 0, (name, path)
        assert path["grpc_errors"] == 0, (name, path)
        assert path["cpu_us_per_request"], name
    for ratio in RATIOS:
        assert results["ratios"][ratio]["value"] is not None, ratio
    assert results["logins"]["rps"] > 0
    assert results["logins"]["grpc_errors"] == 0
    assert results["fanout"]["delivered"] > 0


def test_writes_a_png_chart(smoke: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    _, out = smoke
    [chart] = out.glob("bench-*-smoke.png")
    data = chart.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert b"IEND" in data[-12:]
