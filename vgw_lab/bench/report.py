"""The benchmark's results as Markdown (the README's tables) and as a PNG plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MODE_LABELS = (("A", "(a) NORMAL, no firewall"),
               ("B", "(b) fast path, two zones (both VMs protected), 123 rules"),
               ("B1", "(b1) fast path, one zone (client unprotected)"),
               ("S", "(s) fast path, measured traffic on stateless rules"),
               ("C", "(c) slow path: every packet through the controller"))
TARGETS = {"B/A throughput": ">= 0.90", "B/A connections": ">= 0.90",
           "B1/A throughput": ">= 0.95", "B1/A connections": ">= 0.92",
           "S/A throughput": ">= 0.97", "C/B throughput": "reported (well under 0.3 expected)"}


def markdown(r: dict[str, Any]) -> str:
    lines = [f"Measured {r['date']} on {r['machine']['cpus']} cores ({r['machine']['cpu']}), "
             f"`{r['command']}`.", ""]
    if "experiment" in r:
        e = r["experiment"]
        t, c = e["throughput_gbps"], e["connections_per_s"]
        passes = e.get("datapath_passes_per_packet", {})
        lines += ["| path | TCP Gbit/s (median, min-max) | new TCP conn/s (median, min-max) "
                  "| datapath passes/packet |", "|---|---|---|---|"]
        for m, label in MODE_LABELS:
            if m not in t:
                continue
            p = f"{passes[m]['median']:.2f}" if m in passes else "-"
            lines.append(f"| {label} | {t[m]['median']:.2f} ({t[m]['min']:.2f}-"
                         f"{t[m]['max']:.2f}) | {c[m]['median']:,.0f} ({c[m]['min']:,.0f}-"
                         f"{c[m]['max']:,.0f}) | {p} |")
        lines += ["", "| ratio | value | target |", "|---|---|---|"]
        for k, v in e["ratios"].items():
            lines.append(f"| {k} | {v:.3f} | {TARGETS.get(k, 'reported')} |")
    if "isolation" in r:
        i = r["isolation"]
        lines += ["", "| punt isolation | Gbit/s (median) | ratio |", "|---|---|---|",
                  f"| fast path, quiet | {i['quiet_gbps']['median']:.2f} | 1 |",
                  f"| under the same flood, drops not logged (no punts) | "
                  f"{i['plain_flood_gbps']['median']:.2f} | "
                  f"{i['plain_flood_gbps']['median'] / i['quiet_gbps']['median']:.3f} |",
                  f"| under a log flood + unknown-port flood (punting) | "
                  f"{i['flooded_gbps']['median']:.2f} | {i['ratios']['flooded/quiet']:.3f} "
                  f"(target >= 0.95); vs the unlogged flood: "
                  f"{i['ratios']['flooded/plain flood']:.3f} |",
                  f"| measured rule with `log: true` | {i['logged_rule_gbps']['median']:.2f} | "
                  f"{i['ratios']['logged/unlogged']:.3f} |"]
    if "scale" in r:
        s = r["scale"]
        lines += ["", "| VMs x 20 rules | bridges | flows | flows/VM | programmed in | "
                      "`ovs-ofctl --bundle add-flows`, same flows | ratio | controller RSS "
                      "(peak) |", "|---|---|---|---|---|---|---|---|"]
        for row in s["sizes"]:
            anchor = ratio = rss = "-"   # results from before the anchor was measured
            if "ofctl_seconds" in row:
                anchor = f"{row['ofctl_seconds']:.2f} s"
                ratio = f"{row['ofctl_ratio']:.1f}x"
            if "rss_mib" in row:
                rss = f"{row['rss_mib']:.0f} MiB ({row['peak_rss_mib']:.0f} MiB)"
            lines.append(f"| {row['vms']:,} | {row['bridges']} | {row['flows']:,} | "
                         f"{row['flows_per_vm']:.1f} | {row['seconds']:.2f} s | {anchor} | "
                         f"{ratio} | {rss} |")
        if any("ofctl_seconds" in row for row in s["sizes"]):
            lines += ["", "Programmed in: from the REST write to every switch reporting the "
                          "revision applied. The anchor takes the very flows the controller "
                          "installed off the same bridge and puts them back in one bundle; "
                          "the ratio is programming time over the anchor's."]
        timed = [row for row in s["sizes"] if row.get("sync_parts_s", {}).get("compile")]
        if timed:
            lines += ["", "| VMs | REST write answered | controller's sync (vs anchor) | "
                          "compile + diff | encode | switch, until its commit reply |",
                      "|---|---|---|---|---|---|"]
            for row in timed:
                parts = row["sync_parts_s"]
                lines.append(f"| {row['vms']:,} | {row['rest_answer_s']:.2f} s | "
                             f"{row['sync_s']:.2f} s ({row['sync_ofctl_ratio']:.1f}x) | "
                             f"{parts['compile']:.2f} s | {parts['encode']:.2f} s | "
                             f"{parts['switch']:.2f} s |")
        if s.get("change"):
            ch = s["change"]
            lines += ["", f"Single rule change at {ch['vms']:,} VMs, REST answer to enforced "
                          f"(ofproto/trace), {ch['changes']} changes: p50 {ch['p50_ms']:.0f} ms,"
                          f" p99 {ch['p99_ms']:.0f} ms (target p99 <= 100 ms)."]
    if "compile" in r:
        cp = r["compile"]
        lines += ["", f"Compiler alone: {cp['vms']:,} VMs x {cp['rules']} rules (groups of "
                      f"{cp['group_size']}): {cp['flows']:,} flows ({cp['flows_per_vm']:.1f}/VM)"
                      f" in {cp['seconds']:.2f} s."]
        if "analysis_seconds" in cp:
            lines += ["", f"Rule analysis of the same state (shadowed, overlapping, never "
                          f"matching rules): {cp['analysis_seconds'] * 1000:.0f} ms "
                          f"(target <= 100 ms), {cp['analysis_warnings']} warnings."]
        if "preview" in cp:
            pv = cp["preview"]
            lines += ["", f"Impact preview: {pv['vms']:,} VMs with {pv['connections']:,} live "
                          f"connections judged under the state and a candidate "
                          f"({pv['cut']:,} cut) in {pv['seconds']:.2f} s (target <= 2 s)."]
    return "\n".join(lines) + "\n"


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [k for k in ("experiment", "scale") if k in r]
    fig, axes = plt.subplots(1, 3 if "experiment" in r else 1, figsize=(14, 4.2))
    axes = list(axes) if isinstance(axes, (list, tuple)) or hasattr(axes, "__len__") \
        else [axes]
    ax_i = 0
    if "experiment" in panels:
        e = r["experiment"]
        modes = [m for m, _ in MODE_LABELS if m in e["throughput_gbps"]]
        short = {"A": "NORMAL", "B": "2 zones", "B1": "1 zone", "S": "stateless",
                 "C": "slow path"}
        colors = {"A": "#999999", "B": "#2a7ab0", "B1": "#5b9bd5", "S": "#9dc3e6",
                  "C": "#c0504d"}
        for key, title, unit in (("throughput_gbps", "TCP throughput", "Gbit/s"),
                                 ("connections_per_s", "New TCP connections", "per second")):
            ax = axes[ax_i]
            ax_i += 1
            med = [e[key][m]["median"] for m in modes]
            lo = [med[i] - e[key][m]["min"] for i, m in enumerate(modes)]
            hi = [e[key][m]["max"] - med[i] for i, m in enumerate(modes)]
            ax.bar([short[m] for m in modes], med, yerr=[lo, hi],
                   color=[colors[m] for m in modes], capsize=4)
            ax.set_title(title)
            ax.set_ylabel(unit)
    if "scale" in panels and ax_i < len(axes):
        s = r["scale"]["sizes"]
        ax = axes[ax_i]
        xs = [row["vms"] for row in s]
        ax.plot(xs, [row["flows"] for row in s], "o-", color="#2a7ab0", label="flows")
        ax.set_xlabel("VM ports (x 20 rules)")
        ax.set_ylabel("flows")
        ax2 = ax.twinx()
        ax2.plot(xs, [row["seconds"] for row in s], "s--", color="#c0504d",
                 label="programming time")
        if all("ofctl_seconds" in row for row in s):
            ax2.plot(xs, [row["ofctl_seconds"] for row in s], "^:", color="#777777",
                     label="ovs-ofctl --bundle, same flows")
        ax2.set_ylabel("seconds to program")
        ax.set_title("Policy scale")
        ax.legend(loc="upper left")
        ax2.legend(loc="lower right")
    fig.suptitle(f"vgw_ryu on {r['machine']['cpus']} cores, {r['date'][:10]}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
