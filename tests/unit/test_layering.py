"""The layering is enforced by ruff (banned imports): Ryu only in the Ryu layer."""

from __future__ import annotations

import subprocess

import pytest

from vgw_lab.netlab import ROOT, VENV_BIN


def _ruff(filename: str, source: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "ruff"), "check", "--no-cache", "--quiet",
                           "--stdin-filename", filename, "-"], input=source, text=True,
                          capture_output=True, cwd=ROOT, timeout=60)


@pytest.mark.parametrize("where", ["vgw_ryu/policy/x.py", "vgw_ryu/pipeline/x.py",
                                   "vgw_ryu/compiler/x.py", "vgw_ryu/runtime/x.py",
                                   "vgw_ryu/api/x.py", "vgw_ryu/cli/x.py"])
@pytest.mark.parametrize("source", ["import ryu\n", "from ryu.lib import hub\n",
                                    "import eventlet\n",
                                    "from vgw_ryu.ryuapp import punts\n",
                                    "from vgw_lab import netlab\n"])
def test_core_may_not_import_ryu_eventlet_or_outer_layers(where, source):
    p = _ruff(where, source + "\nprint(dir())\n")
    assert p.returncode != 0 and "TID251" in p.stdout, p.stdout + p.stderr


@pytest.mark.parametrize("where", ["vgw_ryu/ryuapp/x.py", "vgw_lab/x.py"])
def test_ryu_layer_and_labs_may_import_ryu(where):
    p = _ruff(where, "import ryu\n\nprint(ryu)\n")
    assert p.returncode == 0, p.stdout + p.stderr
