"""Run Ryu 4.34 (the last release, 2019) on Python 3.11 with a current eventlet.

Ryu's ``ryu.app.wsgi`` does ``from eventlet.wsgi import ALREADY_HANDLED`` while its
class body is built. eventlet removed that name in 0.30.3 (it signals a handled
response through ``WSGI_LOCAL.already_handled`` instead), and older eventlets do not
run on Python 3.11. Ryu only returns the sentinel from websocket responses, which
vgw_ryu does not use, so giving the name back is enough.

``ryu.cmd.manager`` imports ``ryu.app.wsgi`` at module import, before any app is
loaded, so the shim has to run before Ryu's manager is imported. That is why this
package installs its own ``ryu-manager`` console script (the same ``main()``, shim
first) in place of Ryu's, and why ``vgw-ryu`` exists. The build side (setuptools<58
for Ryu's setup.py, dnspython>=2) is handled by scripts/setup-venv.sh and the pins.

tests/unit/test_compat.py fails if the shim stops being needed or stops working.

``quiet()`` removes eventlet's noise from every start: its deprecation banner (a
warning), the "RLock(s) were not greened" line Ryu's late ``monkey_patch()`` provokes
(logged to an unattached logger, so it reaches ``logging.lastResort``) and the access
log line per REST request (sent to DEBUG: ``--verbose`` shows it again).
"""

from __future__ import annotations

import logging
import sys
import warnings

HUB_LOGGER = "ryu.lib.hub"   # eventlet.wsgi's messages arrive here through Ryu's wrapper


class _AlreadyHandled(list):
    """Empty iterable sentinel: if eventlet ever iterates it, it writes nothing."""


class _WsgiToDebug(logging.Filter):
    """eventlet.wsgi's access and start-up lines (via Ryu's LoggingWrapper) -> DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.funcName != "write" or record.levelno > logging.INFO:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


class _NotGreened(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "were not greened" not in record.getMessage()


def quiet() -> None:
    """Silence eventlet's banner, the RLock message and the per-request access log."""
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    hub_log = logging.getLogger(HUB_LOGGER)
    if not any(isinstance(f, _WsgiToDebug) for f in hub_log.filters):
        hub_log.addFilter(_WsgiToDebug())
    if "ryu.lib.hub" in sys.modules:
        return
    last = logging.lastResort
    if last is not None and not any(isinstance(f, _NotGreened) for f in last.filters):
        last.addFilter(_NotGreened())
    import ryu.lib.hub  # noqa: F401 - monkey-patches now, with the filters in place


def apply() -> None:
    """Provide ``eventlet.wsgi.ALREADY_HANDLED`` if this eventlet lacks it (quietly)."""
    quiet()
    import eventlet.wsgi

    if not hasattr(eventlet.wsgi, "ALREADY_HANDLED"):
        eventlet.wsgi.ALREADY_HANDLED = _AlreadyHandled()


def ryu_manager() -> None:
    """Entry point of ``ryu-manager``: Ryu's own main() with the shim applied."""
    apply()
    from vgw_ryu.ryuapp import options

    options.register_cli()
    from ryu.cmd import manager

    manager.main()


def vgw_ryu_main() -> None:
    """Entry point of ``vgw-ryu``: ``ryu-manager vgw_ryu.app`` with OpenFlow 1.3/1.4."""
    args = sys.argv[1:]
    if not any(a == "vgw_ryu.app" for a in args):
        args = [*args, "vgw_ryu.app"]
    sys.argv = [sys.argv[0], *args]
    ryu_manager()


def vgw_agent_main() -> None:
    """Entry point of ``vgw-agent``: the controller of one hypervisor in a fleet.

    The same application as ``vgw-ryu``; ``--vgw-db`` must name the shared policy
    database's remotes (``tcp:IP:PORT,...``), since an agent runs no database itself.
    """
    args = sys.argv[1:]
    if not any(a in ("-h", "--help") for a in args):
        db = next((a.split("=", 1)[1] if "=" in a else args[i + 1]
                   for i, a in enumerate(args)
                   if a.startswith("--vgw-db") and not a.startswith("--vgw-db-")
                   and ("=" in a or i + 1 < len(args))), None)
        if db is None or not all(p.split(":", 1)[0] in ("tcp", "ssl", "unix")
                                 for p in db.split(",")):
            raise SystemExit("vgw-agent: --vgw-db must name the policy database's "
                             "remotes, e.g. --vgw-db tcp:10.0.0.1:6641,tcp:10.0.0.2:6641 "
                             "(for a single machine, run vgw-ryu instead)")
    vgw_ryu_main()
