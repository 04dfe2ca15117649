#!/usr/bin/env python3
"""Turns the measured figures into BENCHMARKS.md's results table and benches/ratios.png.

Reads what the benches wrote under the criterion folder (target/criterion, or
$CARGO_TARGET_DIR/criterion): criterion's medians for `layer` and `conversion`, the rounds
pairing the clients with the sandbox's ceiling measured by wrk, the memory bench's figure and
the load tests' results. Computes every ratio from those files, so no figure is copied by hand,
and rewrites the part of BENCHMARKS.md between the `results` markers.

    python3 benches/report.py            # needs matplotlib (pip install matplotlib)
"""

import json
import os
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CRITERION = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "criterion"
BENCHMARKS = ROOT / "BENCHMARKS.md"
CHART = ROOT / "benches" / "ratios.png"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def median_ns(*path):
    """criterion's median time per iteration, in nanoseconds."""
    estimates = CRITERION.joinpath(*path, "new", "estimates.json")
    return json.loads(estimates.read_text())["median"]["point_estimate"]


def paired_ratio(group, candidate, baseline):
    """From the interleaved timing of a `layer` group: the median over blocks of candidate /
    baseline (block k of each stack ran side by side), and both stacks' median times."""
    blocks = json.loads((CRITERION / "interleaved" / f"{group}.json").read_text())
    a, b = blocks[candidate], blocks[baseline]
    ratio = statistics.median(x / y for x, y in zip(a, b))
    return ratio, statistics.median(a), statistics.median(b)


def read_json(*path):
    file = CRITERION.joinpath(*path)
    return json.loads(file.read_text()) if file.exists() else None


class Figure:
    """One target: a measured value against its bound."""

    def __init__(self, label, value, target, at_most, detail, unit="×"):
        self.label, self.value, self.target, self.at_most = label, value, target, at_most
        self.detail, self.unit = detail, unit

    @property
    def met(self):
        if self.target is None:
            return True
        return self.value <= self.target if self.at_most else self.value >= self.target

    def shown(self):
        """The value as printed: three decimals, or four where three would round a miss onto its
        bound (0.97965 against 0.98 must not read 0.980)."""
        if self.unit != "×":
            return f"{self.value:,.0f}"
        value = f"{self.value:.3f}"
        if not self.met and float(value) == self.target:
            value = f"{self.value:.4f}"
        return value

    def row(self):
        value = self.shown()
        if self.target is None:
            return f"| {self.label} | {value} {self.unit} | none | reported | {self.detail} |"
        bound = f"≤ {self.target:g}" if self.at_most else f"≥ {self.target:g}"
        verdict = "met" if self.met else "**missed**"
        return f"| {self.label} | {value} {self.unit} | {bound} {self.unit} | {verdict} | {self.detail} |"


def us(ns):
    return f"{ns / 1000:.2f} µs"


def figures():
    out = []
    ratio, sov, ident = paired_ratio("hot_path", "sovendus", "identity")
    out.append(Figure("Hot path vs `Identity`", ratio, 1.05, True, f"{us(sov)} vs {us(ident)}"))
    ratio, sov, none = paired_ratio("hot_path", "sovendus", "none")
    out.append(Figure("Hot path vs no layer", ratio, None, True, f"{us(sov)} vs {us(none)}"))
    counted = read_json("instructions", "hot_path.json")
    if counted:
        for baseline, label in [("identity", "`Identity`"), ("none", "no layer")]:
            out.append(Figure(f"Hot path vs {label}, in instructions (callgrind)",
                              counted["sovendus"] / counted[baseline], None, True,
                              f"{counted['sovendus']:,.0f} vs {counted[baseline]:,.0f} instructions per request"))
    ratio, sov, guide = paired_ratio("hot_path", "sovendus", "from_fn")
    out.append(Figure("Hot path vs guide's `from_fn`", ratio, 1.0, True, f"{us(sov)} vs {us(guide)} (must be faster)"))
    for group, label in [("capture_new_visitor", "new visitor"), ("capture_existing_session", "existing session")]:
        ratio, sov, guide = paired_ratio(group, "sovendus", "from_fn")
        out.append(Figure(f"Capture, {label}, vs `from_fn`", ratio, 1.5, True, f"{us(sov)} vs {us(guide)}"))
    for concurrency in (1, 64):
        group = f"conversion_c{concurrency}"
        pooled, per_call = median_ns(group, "pooled"), median_ns(group, "per_call")
        rate = 1e9 / pooled
        out.append(Figure(f"Conversions, concurrency {concurrency}, vs client per call", per_call / pooled, 2, False,
                          f"{rate:,.0f}/s vs {1e9 / per_call:,.0f}/s"))
        ceiling = read_json("sandbox_ceiling", f"c{concurrency}.json")
        if ceiling:
            wrk = ceiling["wrk"]
            rounds = f"medians of {len(wrk)} paired rounds"
            for stack, label, target, note in [
                ("pooled", "", 0.7, ""),
                ("reqwest", ", bare reqwest", None, "; the floor of any client on reqwest"),
            ]:
                rates = ceiling[stack]
                ratio = statistics.median(r / w for r, w in zip(rates, wrk))
                out.append(Figure(f"Conversions, concurrency {concurrency}{label}, vs sandbox ceiling (wrk)", ratio,
                                  target, False,
                                  f"{statistics.median(rates):,.0f}/s vs {statistics.median(wrk):,.0f}/s, "
                                  f"{rounds}{note}"))
    memory = read_json("memory", "tokens.json")
    if memory:
        grown = (memory["resident_after"] - memory["resident_before"]) / 2**20
        floors = memory["moka_floors"]
        out.append(Figure("Resident memory per token", memory["bytes_per_token"], 400, True,
                          f"{memory['tokens']:,} tokens: +{grown:.0f} MiB resident; moka's own cost per empty "
                          f"entry: {floors['moka_floor_expiry']:.0f} bytes (expiry per entry), "
                          f"{floors['moka_floor_ttl']:.0f} (one TTL), {floors['moka_floor_bounded']:.0f} (no expiry)",
                          unit="bytes"))
    for backend, label in [("sqlite", "SQLite"), ("postgres", "Postgres")]:
        for operation, what in [("capture", "Capture"), ("order", "Order (take into owed)")]:
            try:
                candidate, memory = median_ns(f"store_{backend}", operation), median_ns("store_memory", operation)
            except FileNotFoundError:
                continue
            out.append(Figure(f"{what} on {label} vs the embedded store", candidate / memory, None, True,
                              f"{us(candidate)} vs {us(memory)} per operation"))
    for backend, label in [("sqlite", "SQLite (WAL, synchronous FULL)"), ("sqlite_normal", "SQLite (WAL, NORMAL)"),
                           ("postgres", "Postgres"), ("postgres_async", "Postgres (synchronous_commit off)")]:
        order = read_json("order", f"{backend}.json")
        if order:
            for mode, what, target in [("transaction", "in its transaction", 1.25),
                                       ("delivering", "and its delivery on the same machine", None)]:
                blocks = order[mode]
                ratio = statistics.median(s / p for s, p in zip(blocks["sovendus"], blocks["plain"]))
                out.append(Figure(f"Order with its conversion {what} on {label} vs without", ratio, target, True,
                                  f"{us(statistics.median(blocks['sovendus']))} vs "
                                  f"{us(statistics.median(blocks['plain']))} per order; median of "
                                  f"{len(blocks['plain'])} paired blocks of {order['block']}"))
    backlog = read_json("backlog", "drain.json")
    if backlog:
        for backend, measured in backlog["stores"].items():
            drain, client = statistics.median(measured["drain_per_second"]), statistics.median(measured["client_per_second"])
            # A shop converts at its order rate: the floor is a backlog drained at 1,000 a second.
            out.append(Figure(f"Backlog of {backlog['backlog']:,} owed, drained on {backend}",
                              drain, 1000, False,
                              f"{measured['ratio']:.3f} × the pooled client with no store ({client:,.0f}/s) at "
                              f"concurrency {backlog['workers']}; median of {len(measured['drain_per_second'])} "
                              f"paired rounds", unit="/s"))
    # The target's pair, in Cargo's release profile and in the release-lto profile (Cargo.toml).
    for file, build in [("results.json", ""), ("results-release-lto.json", ", fat LTO build (`release-lto`)")]:
        load = read_json("load", file)
        if not load:
            continue
        w, wo = load["with"], load["without"]
        out.append(Figure(f"Load test throughput, with / without layer{build}", load["throughput_ratio"], 0.95, False,
                          f"{w['requests_per_second']:,.0f} vs {wo['requests_per_second']:,.0f} req/s; "
                          f"{rounds_summary(load)}"))
        out.append(Figure(f"Load test p99, with / without layer{build}", load["p99_ratio"], 1.05, True,
                          f"p99 {w['p99_us'] / 1000:.2f} vs {wo['p99_us'] / 1000:.2f} ms; "
                          f"p50 {w['p50_us'] / 1000:.2f} vs {wo['p50_us'] / 1000:.2f} ms"))
    aa = read_json("load", "results-aa.json")
    if aa:
        out.append(Figure("Load test throughput, A/A: without / without layer", aa["throughput_ratio"], None, False,
                          f"the method's own noise; {rounds_summary(aa)}"))
    # An order from a Sovendus visitor against one without a token, under load (benches/load/orders.sh).
    for store, label, target in [("sqlite", "SQLite", 0.6), ("postgres", "Postgres", 0.8)]:
        orders = read_json("load", f"orders-{store}.json")
        if orders:
            out.append(Figure(f"Orders under load on {label}, with a token / without", orders["ratio"], target, False,
                              f"{statistics.median(orders['with']):,.1f} vs "
                              f"{statistics.median(orders['without']):,.1f} orders/s, {orders['visitors']} visitors "
                              f"at once; median of {len(orders['ratios'])} paired rounds, range "
                              f"{orders['ratio_low']:.3f} to {orders['ratio_high']:.3f}"))
    # The staff's console on 100,000 conversions (benches/console.rs): each page's p95.
    console = read_json("console", "pages.json")
    if console:
        for store, label in [("sqlite", "SQLite"), ("postgres", "Postgres")]:
            measured = console["stores"].get(store)
            if not measured:
                continue
            for page, timing in measured["pages"].items():
                out.append(Figure(f"Console on {label}, {console['conversions']:,} conversions: {page}, p95",
                                  timing["p95_ms"], 100, True,
                                  f"p50 {timing['p50_ms']:.1f} ms; {timing['requests']} requests, "
                                  f"{console['staff']} staff at once", unit="ms"))
    return out


def rounds_summary(load):
    """How many rounds a load test ran, the mean of their ratios with its standard error, and
    the ratio of CPU time per request where the run measured it."""
    summary = (f"median of {load['rounds']} rounds; mean {load['throughput_mean']:.3f} "
               f"± {load['throughput_standard_error']:.3f} (standard error)")
    if "cpu_time_ratio" in load:
        summary += (f"; CPU time per request {load['cpu_time_ratio']:.3f} (user {load['user_time_ratio']:.3f}, "
                    f"system {load['system_time_ratio']:.3f})")
    return summary


def table(figs):
    lines = ["| Figure | Measured | Target | | Times, rates |", "|---|---|---|---|---|"]
    return "\n".join(lines + [f.row() for f in figs])


def chart(figs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [f for f in figs if f.target is not None]
    cap = 2.0  # scores above this (the client-per-call ratios) are drawn cut off, with their value
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(shown) + 1.6), dpi=110)
    for y, f in enumerate(reversed(shown)):
        # Drawn so that longer is better: an "at least" target as measured / target, an "at
        # most" one as target / measured.
        score = f.value / f.target if not f.at_most else f.target / f.value
        ax.barh(y, min(score, cap), color="#2e8b57" if f.met else "#c0392b")
        unit = f.unit if f.unit in ("×", "/s") else f" {f.unit}"
        value = f.shown() if f.unit != "×" or f.value < 10 else f"{f.value:.1f}"
        bound = "≤" if f.at_most else "≥"
        cut = " (bar cut off)" if score > cap else ""
        ax.text(min(score, cap) + 0.02, y, f"{value}{unit}, target {bound} {f.target:g}{unit}{cut}",
                va="center", fontsize=9)
    ax.axvline(1, color="black", linewidth=1)
    ax.set_yticks(range(len(shown)), [f.label.replace("`", "") for f in reversed(shown)], fontsize=9)
    ax.set_xlabel("score: measured against target (1 = on target, longer is better)")
    ax.set_xlim(0, cap + 1.6)
    ax.set_title("tower-sovendus: each figure against its target (green met, red missed)")
    fig.tight_layout()
    fig.savefig(CHART)


def main():
    figs = figures()
    text = BENCHMARKS.read_text()
    before, rest = text.split(START)
    _, after = rest.split(END)
    BENCHMARKS.write_text(f"{before}{START}\n{table(figs)}\n{END}{after}")
    chart(figs)
    print(table(figs))


if __name__ == "__main__":
    main()
