"""vgw-lab: build a Mininet lab from a topology file and prove its verdicts with traffic.

    vgw-lab run topologies/three_tier.yaml            # build, apply, test, tear down
    vgw-lab run three-tier --cli                      # ... then the Mininet CLI
    vgw-lab run three-tier --keep                     # ... leave it up (exec, vgwctl)
    vgw-lab run three-tier --api http://127.0.0.1:8080 --of-port 6653   # your controller
    vgw-lab run fleet                                 # database cluster, API servers, agents
    vgw-lab run three-tier --fleet                    # any topology on such a fleet
    vgw-lab exec [--run RUN] VM [CMD ...]             # a command in a running lab's VM
    vgw-lab down [RUN]                                # tear a running lab down
    vgw-lab state three-tier [--json]                 # its state document (vgwctl apply -f -)
    vgw-lab list                                      # topologies, and the running labs

Exit status: 0 when every observed verdict matches, 1 on a mismatch, 2 on set-up errors.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys

import yaml

from vgw_lab import report, runs, topology
from vgw_lab.lab import ROOT, Lab, say
from vgw_lab.remote import TargetError
from vgw_lab.topology import TopologyError
from vgw_ryu.api.client import Client

TOPOLOGIES = ROOT / "topologies"
# Topologies that run on a fleet without --fleet. (A topology file has no field for it:
# the format is shared with `mn --custom`, which has no fleet.)
FLEET_TOPOLOGIES = {"fleet"}


class Terminate(BaseException):
    """SIGTERM/SIGHUP (e.g. from `vgw-lab down`): tear down. Not a KeyboardInterrupt,
    which Mininet's CLI would swallow."""


def _on_term(*_):
    raise Terminate


def cmd_run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        say("vgw-lab: needs root (Mininet, namespaces, OVS)")
        return 2
    try:
        path = topology.find(args.topology, TOPOLOGIES)
        topo = topology.load(path)
    except TopologyError as e:
        say(f"vgw-lab: {e}")
        return 2
    fleet = args.fleet or (path.parent.resolve() == TOPOLOGIES.resolve()
                           and path.stem in FLEET_TOPOLOGIES)
    if fleet and args.api:
        say("vgw-lab: a fleet lab starts its own database, API servers and agents; "
            "--api names a controller that runs already (use one or the other)")
        return 2
    say(f"[lab] {topo.name}: {' '.join(topo.description.split())}")
    subprocess.run([str(ROOT / "scripts" / "ovs-up.sh")], check=True)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGHUP, _on_term)
    lab = Lab(topo, args)
    say(f"[lab] run {lab.run}: bridges {', '.join(lab.names.values())}; run directory "
        f"{lab.dir} (state.json, controller and firewall logs; removed at teardown"
        f"{' unless --keep (Ctrl-C)' if args.keep else ''})")
    failed, stopped = True, False
    try:
        of_port: int | dict[str, int]
        if fleet:
            url, of_port = lab.start_fleet()
        else:
            url, of_port = lab.start_controller()
        api = Client(url, args.token, timeout=30)
        lab.build(of_port)
        rev = lab.apply_policy(api)
        if fleet:
            lab.wait_agents_ready(rev)
            say("[fleet] where everything runs:\n" + "\n".join(
                f"  {line}" for line in lab.where()))
        else:
            lab.wait_ready(api, rev)
        lab.start_servers()
        obs = lab.check_verdicts("before any move" if topo.moves else "policy")
        problems = []
        if topo.moves:
            problems = lab.migrate(api)
            lab.wait_ready(api, rev)
            obs += lab.check_verdicts("after the move")
        say("\n" + report.matrix(obs))
        for p in problems:
            say(f"PROBLEM: {p}")
        failed = any(not o.ok for o in obs) or bool(problems)
        if args.cli or args.keep:
            e = topo.verdicts[0]
            trace = (f"trace {lab.vm_ids[e.dst]} ingress "
                     f"{topo.vms[e.src].ip(6 if e.ipv6 else 4)} {e.protocol} "
                     f"{e.port or ''}").rstrip()
            say("\n" + report.reach(lab.run, url, e.src, e.dst, trace, keep=args.keep))
        else:
            say("\n" + report.hint(args.topology))
        if args.cli:
            from vgw_lab.mnlab import LabCLI
            say("[lab] Mininet CLI: e.g. `client ping -c1 web`, `pingall` (1 s per denied "
                "pair), `nodes`, `py net`; `exit` tears the lab down")
            LabCLI(lab.net)
        elif args.keep:
            say(f"[lab] kept up as run {lab.run}; REST API {url}")
            try:
                while True:
                    signal.pause()
            except KeyboardInterrupt:
                pass
        return 1 if failed else 0
    except Terminate:
        stopped = True  # `vgw-lab down` (or a SIGTERM): nothing of the run is kept
        say("[lab] asked to stop")
        return 1 if failed else 0
    except KeyboardInterrupt:
        say("[lab] interrupted")
        return 1
    except TargetError as e:
        say(f"vgw-lab: {e}")
        return 2
    except Exception as e:
        say(f"vgw-lab: {type(e).__name__}: {e}")
        if lab.ctl is not None:
            say(lab.ctl.log_text()[-3000:])
        if lab.fleet is not None:
            say(f"[lab] the fleet's logs are under {lab.fleet.dir} (kept with --keep)")
        return 2
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)  # the teardown must finish
        say(f"[lab] tearing down run {lab.run} (only what this run built)")
        lab.stop(keep_dir=args.keep and not stopped)


def cmd_list(args: argparse.Namespace) -> int:
    for f in sorted(TOPOLOGIES.glob("*.yaml")):
        name = f.stem.replace("_", "-")
        try:
            say(report.topology_line(name, topology.load(f)))
        except TopologyError as e:
            say(f"{name:18} INVALID: {e}")
    running = runs.live_runs()
    if running:
        say("\nRunning labs (vgw-lab exec --run RUN VM CMD, vgw-lab down RUN):")
        for run, st in running.items():
            up = "up" if runs.runner_alive(st) else "runner gone: vgw-lab down " + run
            say(f"  {run:8} {st.get('topology', '?'):18} {st.get('api', '')}  {up}")
    return 0


def cmd_state(args: argparse.Namespace) -> int:
    try:
        doc = topology.load(topology.find(args.topology, TOPOLOGIES)).state_document()
    except TopologyError as e:
        print(f"vgw-lab: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None), end="")
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    try:
        _, state = runs.find_run(args.run)
        argv = runs.exec_argv(state, args.vm, args.command)
    except runs.RunError as e:
        print(f"vgw-lab: {e}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    os.execvp(argv[0], argv)


def cmd_down(args: argparse.Namespace) -> int:
    # A named run that is not there any more has nothing left to remove: `down` run
    # twice (or after the runner's own teardown) succeeds.
    live = runs.live_runs()
    if args.run is not None and args.run not in live:
        # (The running ones named, in case the name was mistyped.)
        say(f"[down] no lab {args.run} is running (running: {', '.join(live) or 'none'}): "
            "nothing to remove")
        return 0
    try:
        run_dir, state = runs.find_run(args.run)
    except runs.RunError as e:
        say(f"vgw-lab: {e}")
        return 2
    problems = runs.down(run_dir, state, args.token, say=say)
    for p in problems:
        say(f"PROBLEM: {p}")
    if problems:
        say(f"[down] run directory {run_dir} kept: its state.json names what is left; "
            f"retry with: vgw-lab down {state['run']}")
    else:
        say(f"[down] lab {state['run']} is gone")
    return 1 if problems else 0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vgw-lab", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="build a lab and check its verdicts")
    r.add_argument("topology", help="a topologies/*.yaml file or its name (three-tier)")
    r.add_argument("--cli", action="store_true", help="open the Mininet CLI at the end")
    r.add_argument("--keep", action="store_true",
                   help="keep the lab up until Ctrl-C or `vgw-lab down RUN`")
    r.add_argument("--api", help="REST URL of a running controller (default: start one); "
                   "the lab adds its own objects there and deletes them at the end")
    r.add_argument("--of-port", type=int, default=6653, help="its OpenFlow port")
    r.add_argument("--fleet", action="store_true",
                   help="run on a fleet: a 3-member database cluster (vgw-db), 2 vgw-api "
                   "servers and one agent per hypervisor (the default for `fleet`)")
    r.add_argument("--token", default=os.environ.get("VGW_TOKEN"),
                   help="bearer token of the --api controller (default: $VGW_TOKEN)")
    r.add_argument("--timeout", type=float, default=1.5,
                   help="seconds of silence that count as deny")
    r.set_defaults(fn=cmd_run)
    sub.add_parser("list", help="the known topologies and the running labs").set_defaults(
        fn=cmd_list)
    s = sub.add_parser("state", help="print a topology's whole state document "
                       "(for `vgwctl apply -f -`)")
    s.add_argument("topology")
    s.add_argument("--json", action="store_true", help="JSON instead of YAML")
    s.set_defaults(fn=cmd_state)
    e = sub.add_parser("exec", help="run a command in a VM of a running lab")
    e.add_argument("--run", help="the lab (as `vgw-lab list` shows it); default: the only one")
    e.add_argument("vm")
    e.add_argument("command", nargs=argparse.REMAINDER,
                   help="the command and its arguments (default: a shell)")
    e.set_defaults(fn=cmd_exec)
    d = sub.add_parser("down", help="tear a running lab down (its bridges, VMs, controller "
                       "or fleet or --api objects, run directory), also after its runner "
                       "was killed")
    d.add_argument("run", nargs="?", help="the lab; default: the only one")
    d.add_argument("--token", default=os.environ.get("VGW_TOKEN"))
    d.set_defaults(fn=cmd_down)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vgw-lab`` console script."""
    args = parser().parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
