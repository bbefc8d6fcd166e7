"""VM flow templates give exactly what build_vm gives, or step aside."""

from __future__ import annotations

import ipaddress
import random

import pytest

from vgw_ryu.compiler import vmtemplate
from vgw_ryu.compiler.facts import PortFacts
from vgw_ryu.compiler.vm import link_local
from vgw_ryu.compiler.vmtemplate import VmTemplates
from vgw_ryu.pipeline import wire
from vgw_ryu.policy.model import Vm
from vgw_ryu.policy.objects import AddressPair


def _same(got: list, want: list) -> None:
    assert [f.key for f in got] == [f.key for f in want]
    for g, w in zip(got, want, strict=True):
        assert g == w, (g.body, w.body)
        assert g.cookie == w.cookie, g.body
        assert g.body == w.body
        assert wire.add(g) == wire.add(w), g.body


def _random_vm(rng: random.Random, k: int) -> tuple[Vm, PortFacts, int, str]:
    mac = f"02:{rng.randrange(256):02x}:00:00:{k >> 8 & 255:02x}:{k & 255:02x}"
    v4 = [ipaddress.ip_address(f"10.{rng.randrange(256)}.{rng.randrange(256)}.{i + 1}")
          for i in range(rng.choice([0, 1, 1, 2, 3]))]
    v6 = [ipaddress.ip_address(f"fd00:{rng.randrange(1 << 16):x}::{i + 1:x}")
          for i in range(rng.choice([0, 0, 1, 2]))]
    ips = v4 + v6
    if ips and rng.random() < 0.1:
        ips.append(rng.choice(ips))                 # an address given twice
    if rng.random() < 0.05:
        ips.append(link_local(mac))                 # its own link-local, listed
    rng.shuffle(ips)
    pairs = ()
    if rng.random() < 0.1:
        pairs = (AddressPair(ipaddress.ip_network("10.99.0.0/24"), None),)
    own_mac = rng.random() < 0.8
    vm = Vm(f"vm{k}", mac=mac if own_mac else None, ips=tuple(ips), address_pairs=pairs)
    port_mac = mac if not own_mac and rng.random() < 0.5 else None
    port = PortFacts(rng.randrange(1, 60000), f"p{k}", "vm", vm.name, port_mac)
    return vm, port, rng.randrange(1, 60000), rng.choice(["none", "drops", "all"])


@pytest.mark.parametrize("seed", range(4))
def test_random_vms_get_exactly_build_vms_flows(seed):
    rng = random.Random(seed)
    templates = VmTemplates()
    for k in range(150):
        vm, port, zone, log = _random_vm(rng, k)
        _same(templates.vm_flows(vm, port, zone, log), vmtemplate._built(vm, port, zone, log))
    # Most of them came from templates (else this proved nothing about them).
    assert sum(t is not None for t in templates.shapes.values()) >= 10


def test_the_usual_shapes_have_templates():
    templates = VmTemplates()
    for shape in [(1, 0, True, "none"), (1, 1, True, "none"), (2, 2, True, "all"),
                  (0, 0, False, "drops"), (1, 0, False, "none")]:
        assert templates.template(shape) is not None, shape


def test_a_vm_flow_the_sentinels_do_not_carry_is_built_by_build_vm(monkeypatch):
    """A flow depending on the VM in a way a template cannot follow (here its port + 1)
    fails the template's check: that shape is built flow by flow, still right."""
    real = vmtemplate.build_vm

    def odd(b, vm, port, zone, log="none"):
        real(b, vm, port, zone, log)
        b.add("classify", 1, {"in_port": port.ofport + 1}, kind=2, owner=zone)
    monkeypatch.setattr(vmtemplate, "build_vm", odd)
    templates = VmTemplates()
    vm = Vm("a", mac="02:00:00:00:00:01", ips=(ipaddress.ip_address("10.0.0.1"),))
    port = PortFacts(5, "p", "vm", "a")
    got = templates.vm_flows(vm, port, 9)
    assert templates.shapes == {(1, 0, True, "none"): None}
    _same(got, vmtemplate._built(vm, port, 9, "none"))
    assert any(f.match == (("in_port", 6),) for f in got)


def test_a_vm_with_more_addresses_than_a_template_holds_is_built():
    templates = VmTemplates()
    ips = tuple(ipaddress.ip_address(f"10.1.{i >> 8}.{i & 255}")
                for i in range(1, vmtemplate.MAX_ADDRESSES + 2))
    vm = Vm("big", mac="02:00:00:00:00:02", ips=ips)
    port = PortFacts(7, "p", "vm", "big")
    _same(templates.vm_flows(vm, port, 3), vmtemplate._built(vm, port, 3, "none"))
    assert templates.shapes == {}
