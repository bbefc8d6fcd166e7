"""The Python 3.11 compatibility shim for Ryu 4.34 is needed and works."""

import subprocess
import sys

from vgw_lab.netlab import VENV_BIN


def _py(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)


def test_ryu_wsgi_fails_without_shim():
    # If this starts passing, eventlet gave the name back and compat.py can go.
    p = _py("import ryu.app.wsgi")
    assert p.returncode != 0
    assert "ALREADY_HANDLED" in p.stderr


def test_ryu_wsgi_imports_with_shim():
    p = _py("from vgw_ryu.ryuapp import compat; compat.apply(); import ryu.app.wsgi; "
            "import ryu.cmd.manager; print('ok')")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "ok"


def test_ryu_manager_script_is_ours_and_runs():
    script = (VENV_BIN / "ryu-manager").read_text()
    assert "vgw_ryu.ryuapp.compat" in script
    p = subprocess.run([str(VENV_BIN / "ryu-manager"), "--version"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "ryu-manager 4.34" in (p.stdout + p.stderr)


def test_vgw_options_are_command_line_flags():
    p = subprocess.run([str(VENV_BIN / "ryu-manager"), "--help"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    for flag in ("--vgw-state", "--vgw-db", "--vgw-token", "--vgw-ovsdb"):
        assert flag in p.stdout


def test_dnspython_is_2():
    import dns.version

    assert dns.version.MAJOR >= 2
