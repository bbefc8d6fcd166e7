"""vgw_ryu's Ryu/oslo.config options (group ``vgw``: ``--vgw-state`` etc. on the command line).

Ryu parses the command line before it imports apps, so the options must be
registered as CLI options first: our ``ryu-manager`` entry point calls
``register_cli()``; when the app is imported by another manager the options are still
registered (config-file only) so ``CONF.vgw`` always exists.
"""

from __future__ import annotations

import os
import socket

from oslo_config import cfg as oslo_cfg
from ryu import cfg  # Ryu's own ConfigOpts instance, not oslo's global one

from vgw_ryu.policy.ids import parse_zone_range
from vgw_ryu.store.local import is_remote

GROUP = "vgw"
WSAPI_HOST = "127.0.0.1"
DATA_DIR = "/var/lib/vgw_ryu"
DEFAULT_DB = f"{DATA_DIR}/state.db"
LOG_NAME = "firewall.jsonl"


def _opt(kind, name: str, default, help: str, shown: str | None = None, **kw):
    """An option whose help ends with its default, as ``--help`` should show it."""
    shown = shown if shown is not None else ("none" if default is None else str(default))
    return kind(name, default=default, help=f"{help} (default: {shown})", **kw)


OPTS = [
    _opt(cfg.StrOpt, "state", None,
         "YAML/JSON desired-state file that is the source of truth: applied at start, "
         "re-applied when it changes or on SIGHUP (restoring any drift); REST writes "
         "are refused (409)"),
    _opt(cfg.StrOpt, "seed", None,
         "YAML/JSON desired-state file applied once, only to an empty store "
         "(revision 0); afterwards the REST API owns the state"),
    _opt(cfg.StrOpt, "db", DEFAULT_DB,
         "the policy database: a file this controller runs (a one-member OVSDB "
         "cluster; an older SQLite file there is imported), or the OVSDB remotes of a "
         "shared database, e.g. tcp:10.0.0.1:6641,tcp:10.0.0.2:6641 (this controller "
         "is then one agent of a fleet)"),
    _opt(cfg.FloatOpt, "db-timeout", 5.0,
         "seconds a write waits for the policy database to commit before answering "
         "503"),
    _opt(cfg.StrOpt, "chassis", None, "this hypervisor's name in the policy database's "
         "Chassis table (GET /v1/switches)", shown="the host name"),
    _opt(cfg.StrOpt, "zones-file", None, "this hypervisor's conntrack zone numbers",
         shown="zones.json beside --vgw-db (for remotes: in /var/lib/vgw_ryu)"),
    _opt(cfg.StrOpt, "zone-range", "1-65535",
         "the conntrack zones this controller gives its VMs, LO-HI: leave the others "
         "to other users of this host's connection table (OVN, Neutron, another "
         "agent on the same ovs-vswitchd); a VM whose zone is outside is given a new "
         "one and the old zone is flushed"),
    _opt(cfg.FloatOpt, "zone-release-after", 300.0,
         "a fleet agent gives back the zone of a VM that has been on none of its "
         "switches this many seconds (moved away), flushed before reuse (0: never)"),
    _opt(cfg.StrOpt, "token", None,
         "bearer token for the REST API (required off loopback)", secret=True),
    _opt(cfg.StrOpt, "ovsdb", "unix:/var/run/openvswitch/db.sock",
         "OVSDB address used to read Interface external_ids"),
    _opt(cfg.FloatOpt, "audit-interval", 30.0,
         "seconds between flow audits (0 disables)"),
    _opt(cfg.StrOpt, "log-file", None, "JSON-lines firewall log (rotated)",
         shown=f"{LOG_NAME} next to --vgw-db, i.e. /var/lib/vgw_ryu/{LOG_NAME}"),
    _opt(cfg.IntOpt, "log-max-bytes", 10 * 1024 * 1024,
         "rotate the firewall log at this size", shown="10485760 (10 MiB)"),
    _opt(cfg.StrOpt, "syslog", None, "also send every firewall log record as RFC 5424 "
         "syslog to udp:HOST:PORT, tcp:HOST:PORT or unix:PATH (e.g. unix:/dev/log)"),
    _opt(cfg.IntOpt, "meter-log-pps", 100,
         "rate limit of log punts, per protected VM (packets/s; burst a quarter of it)"),
    _opt(cfg.IntOpt, "meter-reject-pps", 100, "rate limit of reject punts (packets/s)"),
    _opt(cfg.IntOpt, "ct-flush-read-above", 20_000,
         "a connection-table flush (addresses that left a VM, in every zone) of more "
         "messages than this reads the table first and flushes only the zones that "
         "hold those addresses, and again once the flows changed (-1: never read it, "
         "0: always)"),
    _opt(cfg.IntOpt, "stream-chunk", 1000,
         "while a compile runs, its new flows are sent into the switch's open bundle "
         "this many at a time, so the switch takes them meanwhile (0: send after the "
         "compile)"),
    _opt(cfg.IntOpt, "meter-unknown-pps", 100,
         "rate limit of unknown-port punts (packets/s)"),
]

_registered = False


def data_dir(conf) -> str:
    """Where local files go: beside a --vgw-db file, else /var/lib/vgw_ryu."""
    if is_remote(conf.db):
        return DATA_DIR
    return os.path.dirname(os.path.abspath(conf.db))


def log_file(conf) -> str:
    """The firewall log path: ``--vgw-log-file``, else firewall.jsonl beside the db."""
    if conf.log_file:
        return conf.log_file
    return os.path.join(data_dir(conf), LOG_NAME)


def zones_file(conf) -> str:
    """The zone file: ``--vgw-zones-file``, else beside the db (``<db>.zones.json``)."""
    if conf.zones_file:
        return conf.zones_file
    if is_remote(conf.db):
        return os.path.join(DATA_DIR, f"zones-{chassis(conf)}.json")
    return os.path.abspath(conf.db) + ".zones.json"


def zone_range(conf) -> tuple[int, int]:
    """``--vgw-zone-range`` as (first, last); SystemExit naming the option if bad."""
    try:
        return parse_zone_range(conf.zone_range)
    except ValueError as e:
        raise SystemExit(f"vgw_ryu: --vgw-zone-range: {e}") from None


def policy_cache_file(conf) -> str:
    """A fleet agent's copy of the last policy it enforced: beside its zone file."""
    return os.path.join(os.path.dirname(os.path.abspath(zones_file(conf))),
                        f"policy-{chassis(conf)}.json")


def chassis(conf) -> str:
    """This hypervisor's name: ``--vgw-chassis``, else the host name."""
    return conf.chassis or socket.gethostname()


def state_mode(conf) -> tuple[str, str] | None:
    """("state" | "seed", path) from the options; SystemExit when both are given."""
    if conf.state and conf.seed:
        raise SystemExit("vgw_ryu: --vgw-state and --vgw-seed exclude each other: "
                         "--vgw-state makes the file the source of truth, --vgw-seed "
                         "only fills an empty store")
    if conf.state:
        return "state", conf.state
    if conf.seed:
        return "seed", conf.seed
    return None


def _fix_wsapi_help() -> None:
    """Ryu's help says 0.0.0.0; the default we set is loopback."""
    try:
        opt = cfg.CONF._get_opt_info("wsapi_host")["opt"]
    except (oslo_cfg.NoSuchOptError, KeyError):
        return
    opt.help = (f"REST API listen host (default: {WSAPI_HOST}; off loopback needs "
                "--vgw-token)")
    opt.default = WSAPI_HOST
    port = cfg.CONF._get_opt_info("wsapi_port")["opt"]
    port.help = f"REST API listen port (default: {port.default})"


def register_cli() -> None:
    """Register the options as command-line options (before Ryu parses argv).

    Also moves Ryu's REST bind default from 0.0.0.0 to loopback.
    """
    global _registered
    import ryu.app.wsgi  # noqa: F401 - registers wsapi-host/-port

    cfg.CONF.set_default("wsapi_host", WSAPI_HOST)
    _fix_wsapi_help()
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
