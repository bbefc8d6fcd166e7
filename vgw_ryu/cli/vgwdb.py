"""vgw-db: create, start, stop and inspect the policy database (an OVSDB, ``VGW``).

    vgw-db create [--standalone] [--listen ptcp:6641:127.0.0.1 ...]
    vgw-db create-cluster --local tcp:IP:PORT [--listen ...]
    vgw-db join-cluster --local tcp:IP:PORT --remote tcp:IP:PORT [--remote ...] [--listen ...]
    vgw-db start | stop | status [--json] | remote

The database is DIR/vgw.db (--data-dir DIR, default /var/lib/vgw_ryu) or --db FILE;
its sockets, pid file, log and config (.json) sit next to it. `create` makes a Raft
cluster of one (durable; other hosts can join it later if its --local is tcp:), or a
standalone file with --standalone. Clients always reach the server on unix:FILE.sock,
and on each --listen remote too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from vgw_ryu.store import server
from vgw_ryu.store.server import DbError, DbFiles, DbServer

__all__ = ["build_parser", "main"]

EXIT_HELP = "Exit status: 0 done, 1 failed (the reason on stderr), 2 bad usage."
LISTEN_HELP = ("also serve clients on this remote: ptcp:PORT[:IP] (IP default: all) or "
               "punix:PATH; repeatable; remembered for `start`")


def _address(check: Callable[[str, str], str]) -> Callable[[str], str]:
    """An argparse type validating an OVSDB address (argparse names the option)."""
    def convert(text: str) -> str:
        try:
            return check(text, "address")
        except DbError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return convert


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"must be seconds between 0 and 3600, not {text!r}")
    return value


def _progress(text: str) -> None:
    print(f"vgw-db: {text}", file=sys.stderr, flush=True)


def _files(a: argparse.Namespace) -> DbFiles:
    return DbFiles(a.db) if a.db else DbFiles.in_dir(a.data_dir)


def _start_hint(a: argparse.Namespace) -> str:
    where = f" --db {a.db}" if a.db else (
        f" --data-dir {a.data_dir}" if str(a.data_dir) != str(server.DEFAULT_DATA_DIR) else "")
    return f"vgw-db start{where}"


# --- commands ----------------------------------------------------------------------------
def cmd_create(a: argparse.Namespace) -> int:
    files = _files(a)
    server.create(files, standalone=a.standalone, listen=a.listen)
    print(f"created {files.db} ({server.kind(files)}); start it with: {_start_hint(a)}")
    return 0


def cmd_create_cluster(a: argparse.Namespace) -> int:
    files = _files(a)
    server.create(files, local=a.local, listen=a.listen)
    print(f"created {files.db} (first member, Raft address {a.local}); start it with: "
          f"{_start_hint(a)}; others join with: vgw-db join-cluster --remote {a.local} ...")
    return 0


def cmd_join_cluster(a: argparse.Namespace) -> int:
    files = _files(a)
    server.join(files, local=a.local, remotes=a.remote, listen=a.listen)
    print(f"created {files.db}; it joins the cluster when started: {_start_hint(a)}")
    return 0


def cmd_start(a: argparse.Namespace) -> int:
    files = _files(a)
    srv = DbServer(files)
    if not files.db.exists():
        raise DbError(f"{files.db}: no such database file (vgw-db create)")
    pid = srv.pid()
    if pid is not None:
        # Starting what already runs leaves it as asked: say so, change nothing.
        _progress(f"ovsdb-server for {files.db} is already running (pid {pid}); "
                  "nothing to do")
        print(",".join(srv.remotes))
        return 0
    _progress(f"starting ovsdb-server for {files.db} ({server.kind(files)})")
    srv.start(timeout=a.timeout)
    st = _status_soon(srv, a.timeout)
    if st["connected"]:
        _progress(f"running (pid {st['pid']}, {st['role']}); log {files.log}")
    elif st["status"] == "joining cluster":
        _progress(f"running (pid {st['pid']}), joining the cluster: it connects once a "
                  "member it was given answers (see vgw-db status)")
    else:
        _progress(f"running (pid {st['pid']}) but not yet connected to its cluster "
                  f"({st['status']}): it connects once a majority of the members run "
                  "(see vgw-db status)")
    print(",".join(srv.remotes))
    return 0


def _status_soon(srv: DbServer, timeout: float) -> dict:
    """The new server's status; a member that just reached its cluster drops its
    clients once, so a failed ask is tried again within the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return srv.status(timeout=max(1.0, deadline - time.monotonic()))
        except DbError:
            if time.monotonic() >= deadline or not srv.running():
                raise
            time.sleep(0.2)


def cmd_stop(a: argparse.Namespace) -> int:
    files = _files(a)
    srv = DbServer(files, listen=[])
    pid = srv.pid()
    if pid is None:
        print(f"ovsdb-server for {files.db} is not running")
        return 0
    _progress(f"stopping ovsdb-server for {files.db} (pid {pid})")
    srv.stop(timeout=a.timeout)
    print(f"stopped ovsdb-server for {files.db} (pid {pid})")
    return 0


def _status_text(st: dict[str, Any]) -> str:
    rows = [("database", f"{st['db']} ({st['kind']})"), ("pid", str(st["pid"]))]
    if st["kind"] == "clustered":
        rows += [("role", f"{st['role']} (term {st['term']})"),
                 ("address", st["address"] or "-"),
                 ("leader", st["leader"] or "unknown"),
                 ("cluster", st["status"] or "-")]
    rows.append(("connected", "yes" if st["connected"] else "no"))
    if st["kind"] == "clustered":
        rows.append(("servers", str(len(st["servers"]))))
        rows += [("", f"{s['id']} {s['address']}{' (self)' if s['self'] else ''}"
                  f"{' (leader)' if s['address'] == st['leader'] else ''}")
                 for s in st["servers"]]
    rows.append(("remotes", ",".join(st["remotes"])))
    return "\n".join(f"{k:<10} {v}".rstrip() for k, v in rows)


def cmd_status(a: argparse.Namespace) -> int:
    files = _files(a)
    if not files.db.exists():
        raise DbError(f"{files.db}: no such database file (vgw-db create)")
    st = DbServer(files, listen=[]).status(timeout=a.timeout)
    print(json.dumps(st, indent=2) if a.json else _status_text(st))
    return 0


def cmd_remote(a: argparse.Namespace) -> int:
    files = _files(a)
    if not files.db.exists():
        raise DbError(f"{files.db}: no such database file (vgw-db create)")
    print(",".join(DbServer(files).remotes))
    return 0


# --- parser ------------------------------------------------------------------------------
def _common(top: bool) -> argparse.ArgumentParser:
    """--data-dir and --db: defaults on the top parser; none on the commands, so they
    work after the command without undoing the ones given before it."""
    p = argparse.ArgumentParser(add_help=False)
    d = (lambda v: v) if top else (lambda v: argparse.SUPPRESS)
    p.add_argument("--data-dir", metavar="DIR", default=d(str(server.DEFAULT_DATA_DIR)),
                   help=f"directory of vgw.db (default {server.DEFAULT_DATA_DIR})")
    p.add_argument("--db", metavar="FILE", default=d(None),
                   help="the database file itself (overrides --data-dir)")
    return p


def _command(sub: Any, name: str, summary: str, fn: Callable[[argparse.Namespace], int],
             epilog: str = "") -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=summary, description=summary, parents=[_common(False)],
                       epilog=f"{epilog}\n\n{EXIT_HELP}".strip(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(fn=fn)
    return p


def _listen_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", action="append", default=[], metavar="REMOTE",
                   type=_address(server.check_passive), help=LISTEN_HELP)


def _timeout_option(p: argparse.ArgumentParser, default: float) -> None:
    p.add_argument("--timeout", type=_timeout, default=default, metavar="SECS",
                   help=f"give up after SECS seconds (default {default:g})")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vgw-db", description=__doc__, epilog=EXIT_HELP,
                                 parents=[_common(True)],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    local = _address(server.check_active)

    p = _command(sub, "create", "create a new database (refuses to overwrite one)", cmd_create,
                 "Default: a Raft cluster of one on this host (commits are durable), with a\n"
                 "unix: Raft address; to let other hosts join later use create-cluster.")
    p.add_argument("--standalone", action="store_true",
                   help="a standalone database file instead of a cluster of one")
    _listen_option(p)

    p = _command(sub, "create-cluster", "create the first member of a Raft cluster",
                 cmd_create_cluster,
                 "Example: vgw-db create-cluster --local tcp:10.0.0.1:6643 "
                 "--listen ptcp:6641:10.0.0.1")
    p.add_argument("--local", required=True, type=local, metavar="ADDR",
                   help="this member's Raft address: tcp:IP:PORT (or unix:PATH)")
    _listen_option(p)

    p = _command(sub, "join-cluster", "create a member that joins an existing cluster",
                 cmd_join_cluster,
                 "The database is created empty; it joins (and copies the data) when it\n"
                 "is started and one of the --remote members answers.\n"
                 "Example: vgw-db join-cluster --local tcp:10.0.0.2:6643 "
                 "--remote tcp:10.0.0.1:6643")
    p.add_argument("--local", required=True, type=local, metavar="ADDR",
                   help="this member's Raft address: tcp:IP:PORT (or unix:PATH)")
    p.add_argument("--remote", required=True, action="append",
                   type=_address(server.check_active), metavar="ADDR",
                   help="Raft address of a current member; repeatable")
    _listen_option(p)

    p = _command(sub, "start", "start ovsdb-server in the background; prints the client "
                 "remotes", cmd_start,
                 "Returns once the server answers on its unix socket. Already running:\n"
                 "a no-op (exit 0, said on stderr). A cluster member that cannot reach a\n"
                 "majority yet still starts; `status` shows when it is connected.")
    _timeout_option(p, 10.0)

    p = _command(sub, "stop", "stop ovsdb-server (exit, then SIGTERM); no-op if stopped",
                 cmd_stop)
    _timeout_option(p, 10.0)

    p = _command(sub, "status", "kind, Raft role/term/leader/servers, connected", cmd_status,
                 "Exit 1 if the server is not running.")
    p.add_argument("--json", action="store_true", help="machine-readable output (JSON)")
    _timeout_option(p, 5.0)

    _command(sub, "remote", "print the client remotes, comma-joined (an OVSDB remote list)",
             cmd_remote,
             "unix:FILE.sock and one tcp: or unix: remote per --listen (a wildcard listen\n"
             "address is given as loopback). Needs no running server.")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vgw-db`` console script."""
    a = build_parser().parse_args(argv)
    try:
        return a.fn(a)
    except DbError as e:
        print(f"vgw-db: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
