"""How Ryu loads the app: ``ryu-manager vgw_ryu.app`` must also load the ofctl service."""

from __future__ import annotations

import subprocess
import sys

CODE = """
from vgw_ryu.ryuapp import compat
compat.apply()
import vgw_ryu.app
from ryu.controller.handler import get_dependent_services
print(sorted(get_dependent_services(vgw_ryu.app.VgwApp)))
"""


def test_the_shim_app_requires_the_ofctl_service():
    # Without it every switch request (flow dump, bundle, stats) waits forever.
    p = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    assert "'ryu.app.ofctl.service'" in p.stdout
