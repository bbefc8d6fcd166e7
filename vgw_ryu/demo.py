"""Smallest end-to-end demo: OVS + controller + two namespace VMs, ping and TCP.

Superseded as the main job by the Mininet lab runner once it lands; kept as a quick
check that a machine can run vgw_ryu at all.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from vgw_ryu import netlab


def main() -> int:
    """Run the demo; exit status 0 when ping and TCP both work."""
    work = Path(tempfile.mkdtemp(prefix="vgw-demo-"))
    ctl = netlab.Controller(work)
    br = vm_a = vm_b = None
    ok = False
    try:
        print(f"[1/4] starting controller: {' '.join(ctl.argv())}", flush=True)
        ctl.start()
        br = netlab.make_bridge(ctl.of_port)
        print(f"[2/4] bridge {br.name} (netdev, fail_mode=secure) connected", flush=True)
        netlab.wait_until(lambda: ctl.get("/v1/health")[1]["switches"] == 1, timeout=15,
                          what="bridge to connect")
        vm_a = netlab.make_vm("a", "02:00:00:00:d0:01", ["10.230.0.1"])
        vm_b = netlab.make_vm("b", "02:00:00:00:d0:02", ["10.230.0.2"])
        vm_a.attach(br, {"vm-id": "demo-a"})
        vm_b.attach(br, {"vm-id": "demo-b"})
        # Until the firewall pipeline lands the demo forwards with conntrack itself.
        for flow in ("table=0,priority=10,ip actions=ct(zone=1,table=1)",
                     "table=0,priority=5,arp actions=NORMAL",
                     "table=1,priority=10,ct_state=+new+trk,ip actions=ct(commit,zone=1),NORMAL",
                     "table=1,priority=10,ct_state=+est+trk,ip actions=NORMAL"):
            netlab.sh("ovs-ofctl", "-O", "OpenFlow13", "add-flow", br.name, flow)
        print("[3/4] VMs a=10.230.0.1 b=10.230.0.2 attached; ping a -> b", flush=True)
        ping_ok = vm_a.ping("10.230.0.2", count=3, timeout=2)
        print(f"      ping: {'ok' if ping_ok else 'FAILED'}", flush=True)
        server = vm_b.popen("iperf3", "-s", "-1", "-p", "15201", stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
        netlab.wait_until(lambda: "15201" in vm_b.exec("ss", "-ltnH"), what="iperf3 server")
        out = vm_a.exec("iperf3", "-c", "10.230.0.2", "-p", "15201", "-t", "2", timeout=30,
                        check=False)
        server.wait(timeout=10)
        lines = [ln for ln in out.splitlines() if "receiver" in ln]
        tcp_ok = bool(lines)
        print(f"[4/4] TCP a -> b (iperf3 2 s): {lines[0].strip() if lines else 'FAILED'}",
              flush=True)
        ct = netlab.sh("ovs-appctl", "dpctl/dump-conntrack", "zone=1")
        print(f"      conntrack zone 1 holds {len(ct.splitlines())} connection(s)")
        ok = ping_ok and tcp_ok
    finally:
        for vm in (vm_a, vm_b):
            if vm is not None:
                netlab.delete_vm(vm)
        if br is not None:
            netlab.delete_bridge(br)
        ctl.stop()
    print("demo: OK" if ok else f"demo: FAILED (controller log: {ctl.log_path})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
