"""Mininet custom topologies for vgw_ryu: every topologies/*.yaml, by its name.

    .venv/bin/vgw-ryu --vgw-db /tmp/vgw.db &                  # the controller
    sudo .venv/bin/mn --custom mininet/vgw_topos.py --topo three-tier \
        --switch ovs,datapath=user,protocols=OpenFlow13,OpenFlow14 \
        --controller remote,ip=127.0.0.1,port=6653
    .venv/bin/vgw-lab state three-tier | .venv/bin/vgwctl apply -f -   # the policy

Options: ``--topo three-tier,prefix=lab1`` names the bridges lab1hv1, lab1hv2 (the
default is the hypervisor names). The topologies bring their own switch class (an
OVSSwitch on the userspace datapath that writes libvirt-style external_ids), so the
bridges are right whatever ``--switch`` says. The topology file itself is not a state
document (its VMs are a separate section): ``vgw-lab state`` prints the one to apply.
``vgw-lab run`` does all of this for you.
"""

import sys
from pathlib import Path

try:
    _HERE = Path(__file__)
except NameError:  # mn exec()s custom files without __file__: find it in argv
    _HERE = Path(next(a.split("=", 1)[-1] for a in sys.argv if a.endswith("vgw_topos.py")))
_ROOT = _HERE.resolve().parent.parent
sys.path.insert(0, str(_ROOT))
# Debian's /usr/bin/mn runs the system Python: let it find the venv's packages too.
for _site in sorted((_ROOT / ".venv" / "lib").glob("python3*/site-packages")):
    sys.path.append(str(_site))

from vgw_lab import topology  # noqa: E402
from vgw_lab.mnlab import LabTopo, switch_names  # noqa: E402


def _factory(path):
    def make(prefix=""):
        lab = topology.load(path)
        return LabTopo(lab=lab, names=switch_names(lab, prefix))
    return make


topos = {topology.load(p).name: _factory(p)
         for p in sorted((_ROOT / "topologies").glob("*.yaml"))}
