"""Safe changes with real traffic: the impact preview names exactly the live connection a
change would cut, assertions refuse a breaking write, and the audit catches a flow
changed by hand before it repairs it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from vgw_lab.netlab import Controller, sh, wait_until

MAC = {"client": "02:00:00:00:d3:01", "web1": "02:00:00:00:d3:02"}
IP = {"client": "10.245.0.1", "web1": "10.245.0.2"}
PORTS = (80, 8080, 9090)

# Three TCP connections (one per port) that echo a message every 0.1 s until stdin closes;
# prints, per port, the time of the last echo and whether it is still answered.
STREAMS = """
import json, socket, sys, time, select
socks = {int(p): socket.create_connection((sys.argv[1], int(p)), timeout=2)
         for p in sys.argv[2].split(",")}
last = {p: 0.0 for p in socks}
print("up", flush=True)
while not select.select([sys.stdin], [], [], 0.1)[0]:
    for p, s in socks.items():
        try:
            s.settimeout(0.05); s.sendall(b"x"); s.recv(16); last[p] = time.time()
        except OSError:
            pass
print(json.dumps(last), flush=True)
"""


def _state(ports: tuple[int, ...], expectations: list | None = None) -> dict:
    doc = {"settings": {"default_ingress": "deny", "default_egress": "allow"},
           "vms": {n: {"mac": MAC[n], "ips": [IP[n]]} for n in MAC},
           "policies": {"web": {"applied_to": ["vm:web1"], "rules": [
               {"id": f"p{p}", "direction": "ingress", "action": "allow",
                "protocol": "tcp", "ports": str(p)} for p in ports]}}}
    if expectations:
        doc["expectations"] = expectations
    return doc


@pytest.fixture
def lab(controller_factory, bridges, vms, ovs):
    ctl: Controller = controller_factory(extra_args=["--vgw-audit-interval", "2"]).start()
    br = bridges(ctl)
    made = {}
    for n in MAC:
        made[n] = vms(n, MAC[n], [IP[n]])
        made[n].attach(br, {"vm-id": n})
    _put(ctl, _state(PORTS))
    made["web1"].serve(list(PORTS), [])
    return ctl, made, br


def _put(ctl: Controller, doc: dict, query: str = "") -> dict:
    s, body = ctl.request("PUT", f"/v1/state{query}", doc)
    assert s == 200, body
    if "preview" not in query:
        rev = body["revision"]
        wait_until(lambda: (sw := ctl.get("/v1/switches")[1]["switches"]) and
                   sw[0]["applied_revision"] == rev and len(sw[0]["vm_ports"]) == 2,
                   timeout=20, what=f"revision {rev} applied")
    return body


def test_preview_names_the_one_cut_and_applying_cuts_only_it(lab):
    ctl, vm, _ = lab
    streams = vm["client"].popen(sys.executable, "-c", STREAMS, IP["web1"],
                                 ",".join(map(str, PORTS)), stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
    try:
        assert streams.stdout.readline().strip() == "up"
        time.sleep(0.5)
        before = ctl.get("/v1/state")[1]
        preview = _put(ctl, _state((80, 8080)), "?preview=impact")
        assert ctl.get("/v1/state")[1] == before, "a preview changed the state"
        imp = preview["impact"]
        assert imp["cut_total"] == 1, imp
        cut = imp["cut"][0]
        assert (cut["vm"], cut["dport"], cut["rule_now"], cut["rule_after"]) == \
            ("web1", "9090", "web/p9090", "default"), cut
        time.sleep(1)   # the streams still run after the preview
        t_apply = time.time()
        _put(ctl, _state((80, 8080)))
        time.sleep(1.5)
        out = streams.communicate(timeout=30)[0]   # closing stdin ends the streams
    finally:
        if streams.poll() is None:
            streams.kill()
            streams.wait(timeout=10)
    last = {int(k): v for k, v in json.loads(out).items()}
    assert last[80] > t_apply + 1 and last[8080] > t_apply + 1, last
    assert last[9090] < t_apply + 1, last


def test_a_breaking_write_is_refused_and_force_is_reported(lab):
    ctl, _, _ = lab
    keep = [{"from": "client", "to": "web1", "protocol": "tcp", "port": 8080,
             "verdict": "allow"}]
    rev = _put(ctl, _state(PORTS, keep))["revision"]
    s, body = ctl.request("PUT", "/v1/state", _state((80,), keep))
    assert s == 409 and body["error"]["code"] == "assertion_failed", body
    assert body["error"]["violations"][0]["pair"] == ["client", "web1"]
    assert ctl.get("/v1/health")[1]["revision"] == rev
    _put(ctl, _state((80,), keep), "?force=true")
    health = ctl.get("/v1/health")[1]
    assert health["status"] == "degraded" and any(
        p["code"] == "assertion_violated" for p in health["problems"]), health


def test_a_flow_deleted_by_hand_is_reported_before_it_is_repaired(lab):
    ctl, vm, br = lab
    keep = [{"from": "client", "to": "web1", "protocol": "tcp", "port": 8080,
             "verdict": "allow"}]
    _put(ctl, _state(PORTS, keep))
    rules = [ln for ln in br.dump_flows("table=60") if "conj_id=" in ln]
    victims = [ln for ln in rules if re.search(r"load:0x\w+->NXM_NX_REG3\[\]", ln)]
    assert victims
    for ln in victims:   # delete every allow conj_id flow: 8080 is no longer allowed
        cookie = re.search(r"cookie=(0x[0-9a-f]+)", ln).group(1)
        sh("ovs-ofctl", "-O", "OpenFlow14", "del-flows", br.name, f"cookie={cookie}/-1")
    wait_until(lambda: "violated in the datapath" in ctl.log_text(), timeout=15,
               what="the audit's report")
    # ...and then repaired: the connection works again, and health recovers.
    wait_until(lambda: vm["client"].probe("tcp", IP["web1"], 8080)["verdict"] == "allow",
               timeout=15, what="the repair")
    wait_until(lambda: ctl.get("/v1/health")[1]["status"] == "ok", timeout=15,
               what="health ok again")
