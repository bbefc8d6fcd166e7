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
                      "(peak) | rule change, enforced p50 / p99 | its REST answer p50 / p99 |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for row in s["sizes"]:
            anchor = ratio = rss = "-"   # results from before the anchor was measured
            if "ofctl_seconds" in row:
                anchor = f"{row['ofctl_seconds']:.2f} s"
                ratio = f"{row['ofctl_ratio']:.1f}x"
            if "rss_mib" in row:
                rss = f"{row['rss_mib']:.0f} MiB ({row['peak_rss_mib']:.0f} MiB)"
            ch = size_change(s, row)
            lines.append(f"| {row['vms']:,} | {row['bridges']} | {row['flows']:,} | "
                         f"{row['flows_per_vm']:.1f} | {row['seconds']:.2f} s | {anchor} | "
                         f"{ratio} | {rss} | {_p50_p99(ch, '')} | {_p50_p99(ch, 'rest_')} |")
        if any("ofctl_seconds" in row for row in s["sizes"]):
            lines += ["", "Programmed in: from the REST write to every switch reporting the "
                          "revision applied (`GET /v1/switches?wait_revision=R` sent after "
                          "the answer, no polling). The anchor takes the very flows the controller "
                          "installed off the same bridge and puts them back in one bundle; "
                          "the ratio is programming time over the anchor's."]
        timed = [row for row in s["sizes"] if row.get("sync_parts_s", {}).get("compile")]
        if timed:
            lines += ["", "| VMs | REST write answered | from the answer to all installed "
                          "(vs anchor) | controller's sync (vs anchor) | compile + diff | "
                          "encode | switch, until its commit reply |",
                      "|---|---|---|---|---|---|---|"]
            for row in timed:
                parts = row["sync_parts_s"]
                after = row["seconds"] - row["rest_answer_s"]
                lines.append(f"| {row['vms']:,} | {row['rest_answer_s']:.2f} s | "
                             f"{after:.2f} s ({after / row['ofctl_seconds']:.1f}x) | "
                             f"{row['sync_s']:.2f} s ({row['sync_ofctl_ratio']:.1f}x) | "
                             f"{parts['compile']:.2f} s | {parts['encode']:.2f} s | "
                             f"{parts['switch']:.2f} s |")
            lines += ["", "From the answer to all installed: programming time less the "
                          "REST write's answer (the write is durable when it answers), i.e. "
                          "how long an acknowledged policy takes to be enforced."]
            if any(row.get("bridges", 1) > 1 for row in timed):
                lines += ["", "Each switch's sync is timed on its own and the times are "
                              "summed. With several bridges two syncs run at once (one "
                              "compiles while the other's commit runs in ovs-vswitchd), so "
                              "there each sync's time includes waiting for the other and the "
                              "sum exceeds the wall time; programming time is the wall time."]
        if s.get("change"):
            lines += ["", *writes_table(s)]
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


WRITES = (("change", "one rule changed (`PUT /v1/policies/p`)"),
          ("label_change", "a VM's label changed, moving it between groups "
                           "(`PUT /v1/vms/NAME`)"),
          ("vm_add", "a VM added, its port already plugged (`PUT /v1/vms/NEW`)"))


def size_change(s: dict[str, Any], row: dict[str, Any]) -> dict[str, Any] | None:
    """The rule changes measured at this size (results from before changes were measured
    at every size have only the one in ``s["change"]``)."""
    if row.get("change"):
        return row["change"]
    ch = s.get("change")
    return ch if ch and ch.get("vms") == row["vms"] else None


def _p50_p99(ch: dict[str, Any] | None, prefix: str) -> str:
    if not ch or f"{prefix}p50_ms" not in ch:
        return "-"
    return f"{ch[f'{prefix}p50_ms']:.0f} / {ch[f'{prefix}p99_ms']:.0f} ms"


def writes_table(s: dict[str, Any]) -> list[str]:
    """One write of each kind at 1,000 VMs (or the largest size below it): the REST
    answer and from it to enforced; the port burst."""
    vms = s["change"]["vms"]
    lines = [f"| one write at {vms:,} VMs x 20 rules | writes | REST answer p50 / p99 | "
             "enforced after the answer p50 / p99 |", "|---|---|---|---|"]
    for key, label in WRITES:
        if s.get(key):
            w = s[key]
            lines.append(f"| {label} | {w['changes']} | {_p50_p99(w, 'rest_')} | "
                         f"{_p50_p99(w, '')} |")
    if s.get("port_burst"):
        b = s["port_burst"]
        lines.append(f"| {b['ports']} VM ports plugged in one OVSDB transaction (VMs "
                     f"declared before) | - | - | {b['enforced_ms']:.0f} ms after `ovs-vsctl` "
                     f"returned (first and last port), {b['syncs']} sync(s) |")
    if s.get("mass_delete"):
        d = s["mass_delete"]
        sent = "" if d["flush_messages"] is None else \
            (f", {d['flush_messages']:,} flush messages for the entries the connection "
             f"table held (every zone: {d['flush_messages_every_zone']:,})")
        lines.append(f"| {d['vms']} VMs deleted in one write (`PUT /v1/state`) | 1 | "
                     f"{d['rest_answer_s'] * 1000:.0f} ms | every switch on the revision "
                     f"{d['seconds']:.2f} s after the write{sent} |")
    how = " (polled over ovs-vswitchd's control socket)" if "rest_p50_ms" in s["change"] \
        else ""
    lines += ["", "REST answer: from the request sent to its answer read, one object "
                  "written. Enforced: from the answer until `ofproto/trace` on the VMs' "
                  f"bridge shows the connection the write allows committed by both stages"
                  f"{how}. Targets at 1,000 VMs: enforced p99 <= 50 ms, REST answer p99 "
                  "<= 20 ms."]
    return lines


def _log_x(ax: Any, xs: list[int]) -> None:
    """A log VM axis ticked at the sizes measured, with room for labels at the ends."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.set_xticks(xs, [f"{x:,}" for x in xs])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.12)


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    s = r.get("scale") or {}
    rows = s.get("sizes", [])
    changed = [(row["vms"], ch) for row in rows if (ch := size_change(s, row))]
    n_panels = (2 if "experiment" in r else 0) + (1 if rows else 0) + (1 if changed else 0)
    fig, axes = plt.subplots(1, max(1, n_panels), figsize=(max(6.0, 4.7 * n_panels), 4.2),
                             squeeze=False)
    axes = list(axes[0])
    ax_i = 0
    if "experiment" in r:
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
    if rows:
        ax = axes[ax_i]
        ax_i += 1
        xs = [row["vms"] for row in rows]
        ax.plot(xs, [row["seconds"] for row in rows], "o-", color="#c0504d",
                label="vgw_ryu: REST write to programmed")
        for row in rows:   # how much was programmed, next to each point
            ax.annotate(f"{row['flows'] / 1000:.3g}k flows" if row["flows"] >= 1000
                        else f"{row['flows']} flows", (row["vms"], row["seconds"]),
                        textcoords="offset points", xytext=(4, 6), fontsize=8)
        anchored = [row for row in rows if "ofctl_seconds" in row]
        if anchored:
            ax.plot([row["vms"] for row in anchored],
                    [row["ofctl_seconds"] for row in anchored], "^:", color="#777777",
                    label="ovs-ofctl --bundle add-flows, same flows")
        _log_x(ax, xs)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.margins(y=0.15)
        ax.set_xlabel("VMs (x 20 rules)")
        ax.set_ylabel("seconds")
        ax.set_title("Policy scale: initial programming")
        ax.legend(loc="best", fontsize=8)
    if changed:
        ax = axes[ax_i]
        ax_i += 1
        xs = [vms for vms, _ in changed]
        ax.plot(xs, [ch["p50_ms"] for _, ch in changed], "o-", color="#2a7ab0",
                label="enforced after the REST answer, p50")
        ax.plot(xs, [ch["p99_ms"] for _, ch in changed], "s--", color="#2a7ab0",
                label="enforced after the REST answer, p99")
        rest = [(vms, ch) for vms, ch in changed if "rest_p50_ms" in ch]
        if rest:
            ax.plot([vms for vms, _ in rest], [ch["rest_p50_ms"] for _, ch in rest], "x:",
                    color="#999999", label="REST answer, p50")
            ax.plot([vms for vms, _ in rest], [ch["rest_p99_ms"] for _, ch in rest], "+:",
                    color="#555555", label="REST answer, p99")
        _log_x(ax, xs)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("VMs (x 20 rules)")
        ax.set_ylabel("ms")
        ax.set_title("Policy scale: one rule change")
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(f"vgw_ryu on {r['machine']['cpus']} cores, {r['date'][:10]}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
