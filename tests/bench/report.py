"""Ratios against the targets of the issue, and the Markdown table printed at the end."""

from __future__ import annotations

from typing import Any

# name → (numerator path, denominator path, target, what it says)
RATIOS: dict[str, tuple[str, str, float, str]] = {
    "R1": ("grpc_hit", "empty_grpc", 0.85, "GetUser direct gRPC (hit) ÷ empty handler"),
    "R2": ("envoy_rest_hit", "grpc_hit", 0.85, "GetUser via Envoy REST ÷ direct gRPC (hit)"),
    "R3 hit": ("envoy_rest_hit", "twin_hit", 0.6, "Envoy REST ÷ FastAPI twin, cache hit"),
    "R3 miss": ("envoy_rest_miss", "twin_miss", 1.0, "Envoy REST ÷ FastAPI twin, cache miss"),
}
EDGE_P99_TARGET_MS = 5.0


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return numerator / denominator


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    paths = results["paths"]
    out: dict[str, Any] = {}
    for name, (top, bottom, target, meaning) in RATIOS.items():
        value = _ratio(paths[top]["rps"], paths[bottom]["rps"])
        out[name] = {"value": value, "target": target, "meaning": meaning}
    logins = results["logins"]
    out["R4"] = {
        "value": logins["ratio"],
        "target": 0.9,
        "meaning": "logins/s ÷ (cores ÷ one Argon2id verify)",
    }
    fanout = results["fanout"]
    out["R5"] = {
        "value": fanout["events_per_second"],
        "target": None,
        "meaning": f"events/s delivered to {results['settings']['streams']} streams; "
        f"comment→stream at half that rate: p50 {_ms(fanout['p50_ms'])} "
        f"p99 {_ms(fanout['p99_ms'])}",
    }
    return out


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _num(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"## Benchmark {results['when']}",
        "",
        f"commit {m['commit']} · {m['cpu']} x{m['cores']} · Linux {m['kernel']} · "
        f"Python {m['python']} · grpcio {m['grpcio']} · Envoy {m['envoy']} · "
        f"{m['h2load']} · {m['wrk']}",
        f"{results['settings']['reps']} interleaved repetitions of "
        f"{results['settings']['duration_s']:g} s, medians; one replica per service; "
        f"latency open-loop at half the closed-loop maximum.",
        "",
        "| ratio | value | target | meaning |",
        "|---|---:|---:|---|",
    ]
    for name, ratio in results["ratios"].items():
        target = ratio["target"]
        value = ratio["value"]
        verdict = ""
        if target is not None and value is not None:
            verdict = " ✅" if value >= target else " ❌"
        shown = _num(value, 0 if name == "R5" else 2)
        lines.append(
            f"| {name} | {shown}{verdict} | {'' if target is None else f'≥ {target:g}'} "
            f"| {ratio['meaning']} |"
        )
    lines += [
        "",
        "| path | req/s | p50 ms | p99 ms | at req/s | errors | socket errors "
        "| CPU µs/request | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for path in results["paths"].values():
        cpu = ", ".join(f"{k} {v:,.0f}" for k, v in path["cpu_us_per_request"].items() if v)
        rss = ", ".join(f"{k} {v:.0f}" for k, v in path["peak_rss_mib"].items())
        p99 = path["p99_ms"]
        flag = ""
        if path["title"].startswith("GetUser via Envoy") and p99 is not None:
            flag = " ✅" if p99 <= EDGE_P99_TARGET_MS else " ❌"
        lines.append(
            f"| {path['title']} | {_num(path['rps'])} | {_num(path['p50_ms'], 2)} "
            f"| {_num(p99, 2)}{flag} | {_num(path['open_rps'])} "
            f"| {path['failed'] + path['grpc_errors']} "
            f"| {path['socket_errors']} | {cpu} | {rss} |"
        )
    logins = results["logins"]
    cpu = ", ".join(f"{k} {v:,.0f}" for k, v in logins["cpu_us_per_login"].items() if v)
    lines += [
        "",
        f"Logins: {_num(logins['rps'], 1)}/s against a ceiling of "
        f"{_num(logins['ceiling_rps'], 1)}/s (one Argon2id verify "
        f"{logins['argon2_verify_ms']:.1f} ms); alongside, GetUser p99 "
        f"{_ms(logins['get_user_p99_ms'])}, auth GetJwks p99 {_ms(logins['get_jwks_p99_ms'])}; "
        f"CPU µs/login: {cpu}; errors {logins['grpc_errors']}.",
        f"Fan-out: {results['fanout']['delivered']} of {results['fanout']['expected']} events "
        "delivered.",
        "Idle RSS MiB: "
        + ", ".join(f"{k} {v:.0f}" for k, v in results["idle_rss_mib"].items())
        + ".",
        "p50/p99: open loop at half the closed-loop maximum; `at req/s` is the rate it "
        "actually reached (well below half means the load generator fell behind).",
        "Errors = non-2xx responses plus gRPC calls whose response carried no message; socket "
        "errors = wrk connect/read/write errors and 5 s timeouts.",
    ]
    return "\n".join(lines)
