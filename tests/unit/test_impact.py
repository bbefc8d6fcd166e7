"""Impact preview: which live connections a candidate state cuts, which denials it lifts."""

from __future__ import annotations

from vgw_ryu.policy.model import parse_state
from vgw_ryu.policy.ruleset import effective_rules
from vgw_ryu.runtime.connections import parse_dump
from vgw_ryu.runtime.impact import cuts, newly_allowed

VMS = {"web1": {"mac": "02:00:00:00:00:02", "ips": ["10.0.0.2"]},
       "client": {"mac": "02:00:00:00:00:01", "ips": ["10.0.0.1"], "protected": False}}
HTTP = {"id": "http", "direction": "ingress", "action": "allow", "protocol": "tcp",
        "ports": "80"}
SSH = {"id": "ssh", "direction": "ingress", "action": "allow", "protocol": "tcp",
       "ports": "22"}


def _st(rules: list[dict]) -> object:
    return parse_state({"settings": {"default_ingress": "deny"}, "vms": VMS,
                        "policies": {"web": {"applied_to": ["vm:web1"], "rules": rules}}})


DUMP = parse_dump("""\
tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=40001,dport=80),reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=40001),zone=1,protoinfo=(state=ESTABLISHED)
tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=40002,dport=22),reply=(src=10.0.0.2,dst=10.0.0.1,sport=22,dport=40002),zone=1,protoinfo=(state=ESTABLISHED)
tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=40003,dport=80),reply=(src=10.0.0.2,dst=10.0.0.1,sport=80,dport=40003),zone=1,protoinfo=(state=TIME_WAIT)
tcp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=40004,dport=22),reply=(src=10.0.0.2,dst=10.0.0.1,sport=22,dport=40004),zone=1,mark=2147483648,protoinfo=(state=ESTABLISHED)
udp,orig=(src=10.0.0.2,dst=10.9.9.9,sport=5353,dport=53),reply=(src=10.9.9.9,dst=10.0.0.2,sport=53,dport=5353),zone=1
""")


def test_exactly_the_connections_a_change_denies():
    old, new = _st([HTTP, SSH]), _st([HTTP])
    r = cuts(old, new, effective_rules(old), effective_rules(new), {"web1": DUMP})
    assert r["cut_total"] == 1 and r["connections_judged"] == 3
    c = r["cut"][0]
    assert (c["vm"], c["direction"], c["sport"], c["dport"]) == ("web1", "ingress", "40002",
                                                                  "22")
    assert (c["rule_now"], c["verdict_after"], c["rule_after"]) == ("web/ssh", "deny",
                                                                      "default")


def test_no_change_cuts_nothing_and_deleting_the_vm_cuts_all():
    old = _st([HTTP, SSH])
    assert cuts(old, old, effective_rules(old), effective_rules(old),
                {"web1": DUMP})["cut_total"] == 0
    gone = parse_state({"vms": {"client": VMS["client"]}})
    r = cuts(old, gone, effective_rules(old), effective_rules(gone), {"web1": DUMP})
    assert r["cut_total"] == 3 and {c["rule_after"] for c in r["cut"]} == {"vm deleted"}


def test_limit_bounds_the_list_not_the_count():
    old, new = _st([HTTP, SSH]), _st([])
    r = cuts(old, new, effective_rules(old), effective_rules(new), {"web1": DUMP}, limit=1)
    assert r["cut_total"] == 2 and len(r["cut"]) == 1 and r["cut_truncated"]


def test_recent_denials_the_candidate_would_allow():
    old, new = _st([HTTP]), _st([HTTP, SSH])
    recs = [{"vm": "web1", "direction": "ingress", "verdict": "deny", "protocol": "tcp",
             "src": "10.0.0.1", "dst": "10.0.0.2", "sport": s, "dport": 22, "rule": "default"}
            for s in (1, 2, 3)]
    recs += [{"vm": "web1", "direction": "ingress", "verdict": "deny", "protocol": "tcp",
              "src": "10.0.0.1", "dst": "10.0.0.2", "dport": 23, "rule": "default"},
             {"vm": "web1", "direction": "ingress", "verdict": "deny", "event": "revoked",
              "protocol": "tcp", "src": "10.0.0.1", "dport": 22}]
    r = newly_allowed(old, new, effective_rules(new), recs)
    assert r["newly_allowed_total"] == 1
    item = r["newly_allowed"][0]
    assert (item["port"], item["allowed_by"], item["records"]) == (22, "web/ssh", 3)
