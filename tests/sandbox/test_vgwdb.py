"""vgw-db and vgw_ryu.store.server with real ovsdb-server processes.

Each database lives in its own temporary directory; fixtures stop only the servers
of those files (by their pid files), never by process name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from vgw_lab.netlab import VENV_BIN, free_port, wait_until
from vgw_ryu.store.server import DbError, DbFiles, DbServer, kind, wait_ready

pytestmark = pytest.mark.sandbox

FAILOVER = 15.0     # election timer 1 s: a new leader normally takes 1-3 s
POLL = 0.2          # each status() runs three OVS tools: poll gently


@pytest.fixture(scope="module")
def tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root and Open vSwitch (sandbox tier); CI runs it as root")
    if not shutil.which("ovsdb-server") or not shutil.which("ovsdb-tool"):
        pytest.skip("needs the Open vSwitch OVSDB tools (ovsdb-server, ovsdb-tool)")


def vgwdb(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([str(VENV_BIN / "vgw-db"), *args], capture_output=True, text=True,
                       timeout=60)
    if check:
        assert p.returncode == 0, f"vgw-db {' '.join(args)} -> {p.returncode}: {p.stderr}"
    return p


def transact(remote: str, *ops: dict) -> list:
    out = subprocess.run(["ovsdb-client", "--timeout=10", "transact", remote,
                          json.dumps(["VGW", *ops])],
                         capture_output=True, text=True, timeout=20, check=True).stdout
    result = json.loads(out)
    assert not any("error" in r for r in result if r), result
    return result


def global_meta(remote: str) -> dict[str, str]:
    rows = transact(remote, {"op": "select", "table": "Global", "where": [],
                             "columns": ["meta"]})[0]["rows"]
    return dict(rows[0]["meta"][1]) if rows else {}


def set_meta(remote: str, key: str, value: str) -> None:
    """Insert the Global row, or add key=value to its meta (Global has at most one row)."""
    if transact(remote, {"op": "select", "table": "Global", "where": []})[0]["rows"]:
        transact(remote, {"op": "mutate", "table": "Global", "where": [],
                          "mutations": [["meta", "insert", ["map", [[key, value]]]]]})
    else:
        transact(remote, {"op": "insert", "table": "Global",
                          "row": {"settings": "{}", "expectations": "[]",
                                  "meta": ["map", [[key, value]]]}})


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def made(tools):
    """Database files of one test; their servers are stopped afterwards."""
    files: list[DbFiles] = []
    yield files
    for f in files:
        DbServer(f, listen=[]).stop()


# --- one server --------------------------------------------------------------------------
def test_cluster_of_one_create_start_status_stop(tmp_path, made):
    db = tmp_path / "vgw.db"
    made.append(DbFiles(db))
    port = free_port()
    vgwdb("create", "--db", str(db), "--listen", f"ptcp:{port}:127.0.0.1")
    assert kind(DbFiles(db)) == "clustered"
    remotes = f"unix:{db}.sock,tcp:127.0.0.1:{port}"
    assert vgwdb("remote", "--db", str(db)).stdout.strip() == remotes

    p = vgwdb("start", "--db", str(db))
    assert p.stdout.strip() == remotes and "leader" in p.stderr
    wait_ready(remotes, timeout=5)
    st = json.loads(vgwdb("status", "--json", "--db", str(db)).stdout)
    assert (st["kind"], st["role"], st["connected"], st["is_leader"]) == (
        "clustered", "leader", True, True)
    assert st["leader"] == st["address"] == f"unix:{db}.raft.sock"
    assert [s["self"] for s in st["servers"]] == [True]
    assert st["remotes"] == remotes.split(",") and st["db"] == str(db)
    text = vgwdb("status", "--db", str(db)).stdout
    assert "role       leader" in text and "connected  yes" in text

    again = vgwdb("start", "--db", str(db))     # already running: a no-op that says so
    assert "already running" in again.stderr and f"pid {st['pid']}" in again.stderr
    assert DbServer(DbFiles(db)).pid() == st["pid"]
    with pytest.raises(DbError, match="already running"):
        DbServer(DbFiles(db)).start()

    p = vgwdb("stop", "--db", str(db))
    assert "stopped" in p.stdout and not DbServer(DbFiles(db)).running()
    assert "not running" in vgwdb("stop", "--db", str(db)).stdout
    p = vgwdb("status", "--db", str(db), check=False)
    assert p.returncode == 1 and "not running" in p.stderr


def test_create_refuses_an_existing_file_and_leaves_it_unchanged(tmp_path, made):
    data = tmp_path / "data"
    vgwdb("create", "--data-dir", str(data))
    db = data / "vgw.db"
    before = digest(db)
    for args in (["create"], ["create", "--standalone"],
                 ["create-cluster", "--local", f"tcp:127.0.0.1:{free_port()}"]):
        p = vgwdb(*args, "--data-dir", str(data), check=False)
        assert p.returncode == 1 and "already exists" in p.stderr, p.stderr
    assert digest(db) == before and kind(DbFiles(db)) == "clustered"


def test_standalone_in_the_foreground(tmp_path, made):
    files = DbFiles(tmp_path / "vgw.db")
    made.append(files)
    vgwdb("create", "--standalone", "--db", str(files.db))
    assert kind(files) == "standalone"
    srv = DbServer(files)
    srv.start(detach=False)         # a child of this process, as a supervisor runs it
    assert srv.running() and srv.pid() == srv._proc.pid
    set_meta(files.remote, "k", "v")
    st = srv.status()
    assert (st["kind"], st["role"], st["connected"], st["servers"]) == (
        "standalone", "standalone", True, [])
    srv.stop()
    assert not srv.running()
    srv.start()                     # detached this time; the data survived
    assert global_meta(files.remote) == {"k": "v"}


def test_start_fails_clearly_when_a_listen_port_is_taken(tmp_path, made):
    files = DbFiles(tmp_path / "vgw.db")
    made.append(files)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        vgwdb("create", "--db", str(files.db), "--listen", f"ptcp:{port}:127.0.0.1")
        p = vgwdb("start", "--db", str(files.db), check=False)
    assert p.returncode == 1 and f"ptcp:{port}:127.0.0.1" in p.stderr, p.stderr
    assert "Address already in use" in p.stderr and not DbServer(files).running()


def test_bad_usage_names_the_option(tools):
    p = vgwdb("create-cluster", "--db", "/nonexistent/x.db", "--local", "tcp:1.2.3.4",
              check=False)
    assert p.returncode == 2 and "argument --local" in p.stderr
    p = vgwdb("create", "--db", "/nonexistent/x.db", "--listen", "tcp:127.0.0.1:1",
              check=False)
    assert p.returncode == 2 and "argument --listen" in p.stderr
    p = vgwdb("start", "--db", "/nonexistent/x.db", check=False)
    assert p.returncode == 1 and "no such database file" in p.stderr


# --- a 3-member cluster on loopback ------------------------------------------------------
@pytest.fixture(scope="module")
def cluster(tools, tmp_path_factory):
    """Three members made and started through vgw-db; stopped at the end of the module."""
    root = tmp_path_factory.mktemp("vgwdb")
    raft = [f"tcp:127.0.0.1:{free_port()}" for _ in range(3)]
    members = [DbFiles(root / f"m{i}" / "vgw.db") for i in range(3)]
    try:
        vgwdb("create-cluster", "--db", str(members[0].db), "--local", raft[0],
              "--listen", f"ptcp:{free_port()}:127.0.0.1")
        for i in (1, 2):
            vgwdb("join-cluster", "--db", str(members[i].db), "--local", raft[i],
                  *(a for r in raft[:i] for a in ("--remote", r)),
                  "--listen", f"ptcp:{free_port()}:127.0.0.1")
        for f in members:
            vgwdb("start", "--db", str(f.db))
        for f in members:
            wait_ready(f.remote, timeout=10)
        yield members
    finally:
        for f in members:
            DbServer(f, listen=[]).stop()


def leader_of(members: list[DbFiles]) -> DbFiles | None:
    """The one running member that is leader and in contact with a majority, or None."""
    lead = []
    for f in members:
        srv = DbServer(f)
        if srv.running():
            st = srv.status()
            if st["role"] == "leader" and st["connected"]:
                lead.append(f)
    return lead[0] if len(lead) == 1 else None


def test_cluster_has_one_leader_and_three_servers(cluster):
    wait_until(lambda: leader_of(cluster), timeout=FAILOVER, interval=POLL, what="a leader")
    sts = [json.loads(vgwdb("status", "--json", "--db", str(f.db)).stdout) for f in cluster]
    assert [st["role"] for st in sts].count("leader") == 1
    addresses = {st["address"] for st in sts}
    for st in sts:
        assert st["kind"] == "clustered" and st["connected"]
        assert {s["address"] for s in st["servers"]} == addresses and len(addresses) == 3
    assert len({st["leader"] for st in sts}) == 1     # all agree on who leads


def test_a_write_through_one_member_is_read_through_another(cluster):
    tag = uuid.uuid4().hex
    tcp = [vgwdb("remote", "--db", str(f.db)).stdout.strip().split(",")[1] for f in cluster]
    set_meta(tcp[1], "written-via-1", tag)
    for f in (cluster[0], cluster[2]):
        wait_until(lambda f=f: global_meta(f.remote).get("written-via-1") == tag,
                   timeout=10, interval=POLL, what=f"the row through {f.db}")


def test_killed_leader_is_replaced_and_rejoins_when_restarted(cluster):
    old = wait_until(lambda: leader_of(cluster), timeout=FAILOVER, interval=POLL,
                     what="a leader")
    old_addr = DbServer(old).status()["address"]
    DbServer(old).kill()
    assert not DbServer(old).running()
    rest = [f for f in cluster if f != old]
    new = wait_until(lambda: leader_of(rest), timeout=FAILOVER, interval=POLL,
                     what="a new leader")
    assert new != old
    tag = uuid.uuid4().hex
    set_meta(new.remote, "after-failover", tag)      # the two survivors are a majority

    vgwdb("start", "--db", str(old.db))             # stale pid file and sockets are fine
    wait_ready(old.remote, timeout=FAILOVER)

    def rejoined() -> bool:
        # Whoever leads now (the restart may cause another election), it follows them.
        lead = leader_of(cluster)
        st = DbServer(old).status()
        return (lead not in (None, old) and st["role"] == "follower" and st["connected"]
                and st["address"] == old_addr
                and st["leader"] == DbServer(lead).status()["address"])

    wait_until(rejoined, timeout=FAILOVER, interval=POLL,
               what="the old leader back as a follower")
    wait_until(lambda: global_meta(old.remote).get("after-failover") == tag,
               timeout=10, what="the write made while it was down")
    assert len(DbServer(old).status()["servers"]) == 3
