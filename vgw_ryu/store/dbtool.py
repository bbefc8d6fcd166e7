"""Making and inspecting database files with ``ovsdb-tool``, and running OVS tools.

``create`` makes a Raft "cluster of one" (durable, grows later with ``join``) or, with
``standalone``, the plain single-file format; ``join`` makes a member that joins an
existing cluster when it first starts. Each writes a JSON config next to the file
remembering the listen remotes and cluster addresses, which ``DbServer`` starts with.

Every OVS tool runs as an argument list (never through a shell) with a timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterable, Sequence
from typing import Any

from vgw_ryu.store.dblocation import (
    DB_NAME,
    SCHEMA_PATH,
    DbError,
    DbFiles,
    check_active,
    check_passive,
)

__all__ = ["TOOL_TIMEOUT", "create", "join", "kind", "read_config", "run_checked",
           "run_tool"]

TOOL_TIMEOUT = 30.0        # ovsdb-tool create/join only write a small file


# --- running tools -----------------------------------------------------------------------
def run_tool(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run one OVS tool; a missing tool or a hang becomes a DbError naming the command."""
    try:
        return subprocess.run(list(argv), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=max(timeout, 0.1))
    except FileNotFoundError:
        raise DbError(f"{argv[0]} not found: install Open vSwitch "
                      "(the openvswitch-switch package)") from None
    except subprocess.TimeoutExpired:
        raise DbError(f"{' '.join(argv)} did not finish within {timeout:.1f}s") from None


def run_checked(argv: Sequence[str], timeout: float = TOOL_TIMEOUT) -> str:
    """The output of one OVS tool; a non-zero exit becomes a DbError with its message."""
    p = run_tool(argv, timeout)
    if p.returncode != 0:
        raise DbError(f"{' '.join(argv)} failed (exit {p.returncode}): "
                      f"{(p.stderr or p.stdout).strip()}")
    return p.stdout


# --- config (listen remotes and cluster addresses, for `start`) ---------------------------
def read_config(files: DbFiles) -> dict[str, Any]:
    """The remembered settings of ``files`` (empty when there is no config file)."""
    try:
        text = files.config.read_text()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise DbError(f"cannot read {files.config}: {e.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise DbError(f"{files.config} is not valid JSON: {e}") from None
    listen = data.get("listen", []) if isinstance(data, dict) else None
    if not isinstance(listen, list) or not all(isinstance(r, str) for r in listen):
        raise DbError(f"{files.config}: expected an object with a 'listen' list of strings")
    return data


def _write_config(files: DbFiles, data: dict[str, Any]) -> None:
    tmp = files.config.with_name(files.config.name + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, files.config)    # a crash never leaves a half-written config
    except OSError as e:
        raise DbError(f"cannot write {files.config}: {e.strerror}") from None


def _prepare_new(files: DbFiles, listen: Iterable[str]) -> list[str]:
    if files.db.exists() or files.db.is_symlink():
        raise DbError(f"{files.db} already exists; not overwriting it (remove it to start "
                      "over, or start the existing database)")
    listen = [check_passive(r, "--listen") for r in listen]
    if not SCHEMA_PATH.is_file():
        raise DbError(f"schema {SCHEMA_PATH} is missing (broken installation)")
    try:
        files.db.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError as e:
        raise DbError(f"cannot create directory {files.db.parent}: {e.strerror}") from None
    return listen


def create(files: DbFiles, *, standalone: bool = False, local: str | None = None,
           listen: Iterable[str] = ()) -> None:
    """Create a new database: a one-member Raft cluster, or a standalone file.

    ``local`` is the Raft address of this member (default ``unix:<raft_sock>``, which
    suits a single machine; use ``tcp:IP:PORT`` if others will join).
    """
    listen = _prepare_new(files, listen)
    if standalone:
        if local is not None:
            raise DbError("a standalone database has no Raft address (--local)")
        run_checked(["ovsdb-tool", "create", str(files.db), str(SCHEMA_PATH)])
        _write_config(files, {"kind": "standalone", "listen": listen})
        return
    local = check_active(local, "--local") if local else f"unix:{files.raft_sock}"
    run_checked(["ovsdb-tool", "create-cluster", str(files.db), str(SCHEMA_PATH), local])
    _write_config(files, {"kind": "clustered", "local": local, "remotes": [],
                          "listen": listen})


def join(files: DbFiles, *, local: str, remotes: Iterable[str],
         listen: Iterable[str] = ()) -> None:
    """Create a database that joins the cluster of ``remotes`` when it first starts."""
    listen = _prepare_new(files, listen)
    local = check_active(local, "--local")
    remotes = [check_active(r, "--remote") for r in remotes]
    if not remotes:
        raise DbError("joining a cluster needs the address of at least one member (--remote)")
    if local in remotes:
        raise DbError(f"--local {local} is also given as --remote; a member cannot join itself")
    run_checked(["ovsdb-tool", "join-cluster", str(files.db), DB_NAME, local, *remotes])
    _write_config(files, {"kind": "clustered", "local": local, "remotes": remotes,
                          "listen": listen})


def kind(files: DbFiles) -> str:
    """``"clustered"`` or ``"standalone"``; DbError if the file is missing or not OVSDB."""
    if not files.db.exists():
        raise DbError(f"{files.db}: no such database file")
    for name, test in (("clustered", "db-is-clustered"), ("standalone", "db-is-standalone")):
        p = run_tool(["ovsdb-tool", test, str(files.db)], TOOL_TIMEOUT)
        if p.returncode == 0:
            return name
        if p.returncode != 2:    # 2 is "no"; anything else is an error reading the file
            raise DbError(f"cannot read {files.db} as an OVSDB database: "
                          f"{p.stderr.strip()}")
    raise DbError(f"{files.db} is neither a clustered nor a standalone OVSDB database")

