"""vgw_ryu's Ryu/oslo.config options (group ``vgw``: ``--vgw-state`` etc. on the command line).

Ryu parses the command line before it imports apps, so the options must be
registered as CLI options first: our ``ryu-manager`` entry point calls
``register_cli()``; when the app is imported by another manager the options are still
registered (config-file only) so ``CONF.vgw`` always exists.
"""

from __future__ import annotations

from oslo_config import cfg as oslo_cfg
from ryu import cfg  # Ryu's own ConfigOpts instance, not oslo's global one

GROUP = "vgw"

OPTS = [
    cfg.StrOpt("state", default=None,
               help="YAML/JSON desired-state file used to seed the policy; "
                    "re-read on change or SIGHUP"),
    cfg.StrOpt("db", default="/var/lib/vgw_ryu/state.db",
               help="SQLite database holding the desired state and zone map"),
    cfg.StrOpt("token", default=None, secret=True,
               help="bearer token for the REST API (required off loopback)"),
    cfg.StrOpt("ovsdb", default="unix:/var/run/openvswitch/db.sock",
               help="OVSDB address used to read Interface external_ids"),
    cfg.FloatOpt("audit-interval", default=30.0,
                 help="seconds between flow audits (0 disables)"),
    cfg.StrOpt("log-file", default="/var/log/vgw_ryu/firewall.jsonl",
               help="JSON-lines firewall log (rotated)"),
    cfg.IntOpt("log-max-bytes", default=10 * 1024 * 1024,
               help="rotate the firewall log at this size"),
    cfg.IntOpt("meter-log-pps", default=1000, help="rate limit of log punts"),
    cfg.IntOpt("meter-reject-pps", default=100, help="rate limit of reject punts"),
    cfg.IntOpt("meter-unknown-pps", default=100,
               help="rate limit of unknown-port punts"),
]

_registered = False


def register_cli() -> None:
    """Register the options as command-line options (before Ryu parses argv).

    Also moves Ryu's REST bind default from 0.0.0.0 to loopback.
    """
    global _registered
    import ryu.app.wsgi  # noqa: F401 - registers wsapi-host/-port

    cfg.CONF.set_default("wsapi_host", "127.0.0.1")
    if not _registered:
        cfg.CONF.register_cli_opts(OPTS, group=GROUP)
        _registered = True


def register() -> None:
    """Register the options if no one has; config-file only once argv is parsed."""
    global _registered
    if _registered:
        return
    try:
        cfg.CONF.register_cli_opts(OPTS, group=GROUP)
    except oslo_cfg.ArgsAlreadyParsedError:
        cfg.CONF.register_opts(OPTS, group=GROUP)
    _registered = True
