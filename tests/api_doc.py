"""The state document the REST tests (unit and sandbox tiers) start from."""

DOC = {
    "settings": {"default_ingress": "deny", "default_egress": "allow"},
    "vms": {
        "web1": {"mac": "02:00:00:00:01:01", "ips": ["10.0.0.11"], "labels": {"tier": "web"}},
        "jump1": {"mac": "02:00:00:00:09:01", "ips": ["10.0.0.91"]},
    },
    "groups": {"web": {"match_labels": {"tier": "web"}},
               "admins": {"members": ["jump1"], "cidrs": ["192.0.2.0/24"]}},
    "policies": {"web-in": {"applied_to": ["group:web"], "rules": [
        {"id": "http", "direction": "ingress", "action": "allow", "protocol": "tcp",
         "ports": "80,443"},
        {"id": "ssh", "direction": "ingress", "action": "allow", "protocol": "tcp",
         "ports": "22", "peer": "group:admins", "log": True}]}},
}
BIG = b'{"vms": {"a": {"labels": {"k": "' + b"x" * (1024 * 1024) + b'"}}}}'


RULE = {"id": "x", "direction": "ingress", "action": "allow", "protocol": "tcp", "ports": "80"}

SSH_FROM_ADMINS = {"vm": "web1", "direction": "ingress", "peer_ip": "192.0.2.7",
                   "protocol": "tcp", "port": 22}


def assert_error(resp, status: int, code: str, field: str | None = None) -> None:
    """The documented error shape: {"error": {"code", "message", "field"}} (``resp`` has
    ``status`` and ``body``)."""
    body = resp.body
    assert resp.status == status, body
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["code"] == code and body["error"]["message"]
    if field is not None:
        assert body["error"]["field"] == field, body
