"""The environment the firewall needs: TCP through conntrack on a userspace bridge."""

import subprocess

from vgw_lab.netlab import sh, wait_until

CT_FLOWS = """\
table=0,priority=10,ip actions=ct(zone=7,table=1)
table=0,priority=5,arp actions=NORMAL
table=1,priority=10,ct_state=+new+trk,ip actions=ct(commit,zone=7),NORMAL
table=1,priority=10,ct_state=+est+trk,ip actions=NORMAL
"""


def test_tcp_through_conntrack(bridges, vms, tmp_path):
    br = bridges()
    a = vms("a", "02:00:00:00:aa:01", ["10.231.0.1"])
    b = vms("b", "02:00:00:00:aa:02", ["10.231.0.2"])
    a.attach(br)
    b.attach(br)
    flows = tmp_path / "flows.txt"
    flows.write_text(CT_FLOWS)
    sh("ovs-ofctl", "-O", "OpenFlow13", "add-flows", br.name, str(flows))

    assert a.ping(b.ip4(), count=1, timeout=2) or a.ping(b.ip4(), count=3, timeout=2)
    server = b.popen("python3", "-c", SERVER, stdout=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: "11111" in b.exec("ss", "-ltnH"), what="server listening")
        out = a.exec("python3", "-c", CLIENT % b.ip4(), timeout=30)
        assert out.strip() == str(1 << 20)
        assert server.wait(timeout=10) == 0
        assert server.stdout.read().strip() == str(1 << 20)
    finally:
        server.kill()
    # The packets really went through conntrack: zone 7 has the connection.
    ct = sh("ovs-appctl", "dpctl/dump-conntrack", "zone=7")
    assert "dport=11111" in ct
    n = [f for f in br.dump_flows("table=1") if "+new" in f]
    assert n, "commit flow missing"


SERVER = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 11111)); s.listen(1)
c, _ = s.accept(); n = 0
while True:
    d = c.recv(65536)
    if not d: break
    n += len(d)
c.sendall(str(n).encode()); c.close(); print(n)
"""

CLIENT = """
import socket
c = socket.create_connection(("%s", 11111), timeout=10)
c.sendall(b"x" * (1 << 20)); c.shutdown(socket.SHUT_WR)
print(c.recv(100).decode())
"""
