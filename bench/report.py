"""BENCHMARKS.md's generated part and the latency plot, from results.json's contents.

Only the text between the two markers below is rewritten; the rest of the file
(what was tried, and what each change gave) is written by people.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.hops import describe_interval

BEGIN = "<!-- bench:begin: written by `python -m bench`; edit outside these markers -->"
END = "<!-- bench:end -->"

PATH_LABELS = {
    "direct": "calculator direct",
    "gateway": "gateway → calculator",
    "mesh": "ingress Envoy → gateway → sidecar Envoy → calculator",
    "calculator-telemetry-on": "calculator, telemetry on",
    "calculator-telemetry-off": "calculator, TELEMETRY_ENABLED=false",
}

# key, what, goal as text, test of the measured value. Goals are ratios measured side by side in
# one run: the machine's speed drifts too much between windows for an absolute latency to say
# anything about the mesh (the latencies are reported below, with their intervals, as context).
GOALS = [
    ("envoy_hop_limit_ratio", "sidecar Envoy / bare Envoy, CPU per request (the worse of two rates)", "≤ 1.10", lambda v: v <= 1.10, "{:.3f}"),
    ("telemetry_rps_ratio", "telemetry on / off, requests per second (the instrumentations as shipped)", "≥ 0.70", lambda v: v >= 0.70, "{:.3f}"),
    ("mesh_throughput_ratio", "mesh / gateway path throughput at saturation", "≥ 0.85", lambda v: v >= 0.85, "{:.3f}"),
    ("telemetry_p50_ratio", "telemetry on / off, p50 at the fixed rate", "≤ 1.10", lambda v: v <= 1.10, "{:.3f}"),
    ("envoy_rss_mb", "largest Envoy RSS after load", "≤ 40 MB", lambda v: v <= 40, "{:.1f} MB"),
    ("scrape_ms", "/metrics scrape", "≤ 100 ms", lambda v: v <= 100, "{:.2f} ms"),
    ("cold_start_s", "run command to first 200 through the ingress", "≤ 5 s", lambda v: v <= 5, "{:.2f} s"),
]


def _fmt(value, pattern="{:.3f}") -> str:
    return "–" if value is None else pattern.format(value)


def _range(stats: dict, pattern: str = "{:.3f}") -> str:
    return f"{_fmt(stats['min'], pattern)} – {_fmt(stats['max'], pattern)}"


def goals_table(results: dict) -> list[str]:
    summary, details = results["summary"], results["details"]
    rows = ["| goal | target | measured (median) | over rounds (min – max) | met |", "|---|---|---|---|---|"]
    for key, what, target, test, pattern in GOALS:
        value = summary.get(key)
        stats = details.get(key) if isinstance(details.get(key), dict) and "median" in details.get(key, {}) else None
        if key == "scrape_ms":
            what = f"{what} after {details['scrape']['requests_before']:,} requests"
        over = _range(stats, pattern) if stats else ""
        if key == "envoy_rss_mb":
            memory = details["envoy_memory_mb"]
            over = "; ".join(
                f"{name}: anon {m['anon_mb']:.1f}, file {m['file_mb']:.1f}, PSS {m['pss_mb']:.1f}" for name, m in memory.items()
            )
        if key == "cold_start_s" and details["cold_start_s"]:
            runs = details["cold_start_s"]
            over = f"{min(runs):.2f} – {max(runs):.2f} ({len(runs)} runs)"
        if key == "scrape_ms":
            over = f"max {details['scrape']['text']['max_ms']:.2f} ms, {details['scrape']['text']['bytes']:,} bytes"
        if key == "envoy_hop_limit_ratio" and "hops" in details:
            over = "; ".join(
                f"{details['hops']['rates_rps'][name]:.0f}/s: {describe_interval(rate['envoy_hop_limit_ratio'], '', '{:.3f}')}"
                for name, rate in details["hops"]["by_rate"].items()
            )
        met = "–" if value is None else ("yes" if test(value) else "**no**")
        rows.append(f"| {what} | {target} | {_fmt(value, pattern)} | {over} | {met} |")
    if "mesh_throughput_ratio_pinned" in summary:
        pinned = details["pinned"]["mesh_throughput_ratio"]
        value = summary["mesh_throughput_ratio_pinned"]
        rows.append(
            f"| same, pinned: wrk on CPU 0, every server on CPU 1 | ≥ 0.85 | {value:.3f} | {_range(pinned)} | "
            f"{'yes' if value >= 0.85 else '**no**'} |"
        )
    return rows


def hops_lines(details: dict) -> list[str]:
    """One hop in front of the calculator: each proxy's CPU per request, and the latency it adds."""
    if "hops" not in details:
        return []
    hops = details["hops"]
    rows = [
        "One hop in front of the same calculator, at two rates (the loads in turns, each round): the project's "
        "sidecar Envoy (its translated configuration, JSON access log included), a bare Envoy (one listener, "
        "the router alone, one static cluster, no access log; same binary and flags) and HAProxy (one thread, no "
        "log). CPU is the proxy's own, per request; added latency is the path's p50 minus the direct path's in "
        "the same round, with a distribution-free interval for the median over rounds, \"not resolved\" when it "
        "holds zero.",
        "",
        "| rate | proxy | CPU µs per request | added p50 | added p99 |",
        "|---|---|---|---|---|",
    ]
    for name, rate in hops["by_rate"].items():
        for proxy, cpu in rate["proxy_cpu_us_per_request"].items():
            rows.append(
                f"| {hops['rates_rps'][name]:.0f}/s | {proxy} | {cpu:.0f} | "
                f"{describe_interval(rate['added_p50_ms'][proxy])} | {describe_interval(rate['added_p99_ms'][proxy])} |"
            )
    for name, rate in hops["by_rate"].items():
        line = f"At {hops['rates_rps'][name]:.0f}/s: sidecar / bare Envoy {describe_interval(rate['envoy_hop_limit_ratio'], '', '{:.3f}')}"
        if "haproxy_hop_ratio" in rate:
            line += f"; bare Envoy / HAProxy {describe_interval(rate['haproxy_hop_ratio'], '', '{:.2f}')}"
        rows += ["", line + "."]
    return rows + [""]


def paths_table(results: dict) -> list[str]:
    details = results["details"]
    rates = f"the three paths at {details['paths_rate_rps']:.0f}/s"
    if details["paths_rate_rps"] != details["fixed_rate_rps"]:
        rates += f", telemetry rows at {details['fixed_rate_rps']:.0f}/s"
    rows = [
        f"| path | saturation rps (min – max) | p50 | p90 | p99 (ms; {rates}) | CPU µs per request, at saturation |",
        "|---|---|---|---|---|---|",
    ]
    for path, stats in details["paths"].items():
        cpu = ", ".join(f"{name} {us:.0f}" for name, us in stats["cpu_us_per_request_at_saturation"].items())
        rows.append(
            f"| {PATH_LABELS.get(path, path)} | {stats['saturation_rps']['median']:.0f} "
            f"({_range(stats['saturation_rps'], '{:.0f}')}) | {stats['p50_ms']['median']:.3f} | "
            f"{stats['p90_ms']['median']:.3f} | {stats['p99_ms']['median']:.3f} | {cpu} |"
        )
    return rows


def rates_note(details: dict) -> list[str]:
    rate, compared = details["fixed_rate_rps"], details["paths_rate_rps"]
    if rate == compared:
        return [f"Latencies at {rate:.0f}/s (half of the direct path's saturation), for every row."]
    paths = details["paths"]
    at_half = "; ".join(
        f"{PATH_LABELS[p].split(' →')[0] if p != 'mesh' else 'mesh'}: p50 {paths[p]['at_half_direct_saturation']['p50_ms']['median']:.2f}, "
        f"p99 {paths[p]['at_half_direct_saturation']['p99_ms']['median']:.2f} ms, "
        f"served {paths[p]['at_half_direct_saturation']['achieved_rate']['median']:.0f}/s"
        for p in ("direct", "gateway", "mesh")
    )
    added = details["mesh_added_at_half_direct_saturation_ms"]
    return [
        f"Half of the direct path's saturation, {rate:.0f}/s, is more than the gateway and mesh paths can serve "
        f"(their saturation is in the table below), so at that rate their latency is time spent queueing, "
        f"not in the hops: {at_half}; mesh minus gateway there: p50 {added['p50']['median']:.2f} ms, "
        f"p99 {added['p99']['median']:.2f} ms. The three paths are therefore compared at {compared:.0f}/s, "
        f"half of the slowest path's saturation; the mesh's added latency above, and the table and plot below, "
        f"are at that rate. The telemetry ratios are at {rate:.0f}/s.",
    ]


def wait_lines(details: dict) -> list[str]:
    """Working and waiting for a CPU, per request and process, at the comparison rate."""
    rows = [
        f"Where a request's time went at {details['paths_rate_rps']:.0f}/s, µs per request and process "
        "(CPU: working; run queue: runnable but waiting for a core, time that other programs and the "
        "path's own processes took from it):",
        "",
        "| path | CPU | run queue |",
        "|---|---|---|",
    ]
    for path in ("direct", "gateway", "mesh"):
        stats = details["paths"][path]
        cpu = stats["cpu_us_per_request_at_fixed_rate"]
        wait = stats.get("run_queue_wait_us_per_request_at_fixed_rate", {})
        rows.append(
            f"| {PATH_LABELS[path]} | {', '.join(f'{n} {v:.0f}' for n, v in cpu.items())} (Σ {sum(cpu.values()):.0f}) "
            f"| {', '.join(f'{n} {v:.0f}' for n, v in wait.items())} (Σ {sum(wait.values()):.0f}) |"
        )
    return rows + [""]


def render(results: dict, plot: Path | None, report_dir: Path) -> str:
    machine, details = results["machine"], results["details"]
    plan = results["raw"]["plan"]
    noise = details["noise"]
    lines = [
        BEGIN,
        "",
        f"Command: `{results['command']}` · date: {results['date']} · took {results['duration_s']} s",
        "",
        f"Machine: {machine['cpus']} × {machine['cpu_model']}, {machine['memory_gb']} GiB, Linux {machine['kernel']}, "
        f"Python {machine['python']}, Envoy {machine['envoy']}, wrk {machine['wrk']}.",
        "",
        f"Plan: {plan['rounds']} rounds of every load, each {plan['saturation_s']:g} s at saturation "
        f"({plan['connections']} keep-alive connections) and {plan['fixed_s']:g} s at the fixed rate "
        f"({details['fixed_rate_rps']:.0f}/s, half of the direct path's saturation), after {plan['warmup_s']:g} s "
        "of warm-up per path; medians over rounds, each comparison made round by round (the two loads ran back to back).",
        "",
        *goals_table(results),
        "",
        *rates_note(details),
        "",
        *paths_table(results),
        "",
    ]
    if plot is not None:
        lines += [f"![Latency percentiles of the three paths]({os.path.relpath(plot, report_dir)})", ""]
    lines += wait_lines(details)
    lines += hops_lines(details)
    mesh = [
        f"{key.split('_')[2]} {describe_interval(results['summary'][key])}"
        for key in ("mesh_added_p50_ms", "mesh_added_p99_ms")
    ]
    lines += [f"The mesh's added latency (mesh path minus gateway path, paired by round): {'; '.join(mesh)}.", ""]
    envoy_cpu = ", ".join(f"{name} {v:.3f}" for name, v in details["envoy_cores_per_1000_rps"].items())
    lines += [
        f"Envoy CPU, cores per 1000 rps at {details['paths_rate_rps']:.0f}/s: {envoy_cpu}. "
        f"Envoy's own heap (admin /memory, MB): "
        + "; ".join(f"{n}: {', '.join(f'{k} {v}' for k, v in m.items())}" for n, m in details["envoy_admin_memory_mb"].items())
        + ".",
        "",
        f"Noise: other programs used {noise['others_busy']['median']:.0%} of the machine's CPU during the median load "
        f"({noise['others_busy']['min']:.0%} – {noise['others_busy']['max']:.0%}); load average "
        f"{noise['load_average_start']:.2f} at the start, {noise['load_average_end']:.2f} at the end. "
        "The spread of each figure over rounds is in the tables and in bench/results.json.",
        "",
        END,
    ]
    return "\n".join(lines)


def write(results: dict, report: Path, plot: Path | None) -> None:
    """Replace the generated part of ``report`` (or append it, or create the file)."""
    section = render(results, plot, report.parent)
    if report.exists():
        text = report.read_text()
        if BEGIN in text and END in text:
            before, rest = text.split(BEGIN, 1)
            after = rest.split(END, 1)[1]
            report.write_text(before + section + after)
            return
        report.write_text(text.rstrip("\n") + "\n\n" + section + "\n")
        return
    report.write_text("# Benchmarks\n\n" + section + "\n")


def plot(results: dict, target: Path) -> Path | None:
    """Grouped bars of p50/p90/p99 per path at the fixed rate, min–max over rounds as error bars."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    details = results["details"]
    paths = ["direct", "gateway", "mesh"]
    percentiles = [("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99")]
    colors = {"direct": "#4c72b0", "gateway": "#55a868", "mesh": "#c44e52"}
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=110)
    width = 0.26
    for index, path in enumerate(paths):
        stats = [details["paths"][path][key] for key, _ in percentiles]
        medians = [s["median"] for s in stats]
        errors = [[s["median"] - s["min"] for s in stats], [s["max"] - s["median"] for s in stats]]
        positions = [i + (index - 1) * width for i in range(len(percentiles))]
        bars = axes.bar(positions, medians, width, yerr=errors, capsize=3, label=PATH_LABELS[path], color=colors[path])
        axes.bar_label(bars, labels=[f"{m:.2f}" for m in medians], padding=2, fontsize=7)
    axes.set_xticks(range(len(percentiles)), [label for _, label in percentiles])
    axes.set_yscale("log")  # p50 and p99 differ by orders of magnitude on a busy machine
    axes.set_ylabel("latency (ms, log scale)")
    axes.set_title(
        f"POST /calcular at {details['paths_rate_rps']:.0f} requests/s — median of "
        f"{details['paths']['direct']['p50_ms']['n']} rounds, bars min–max",
        fontsize=9,
    )
    axes.legend(fontsize=7, loc="upper left")
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(target)
    plt.close(figure)
    return target
