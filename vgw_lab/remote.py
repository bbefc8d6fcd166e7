"""The lab's policy on a controller it did not start (``vgw-lab run --api URL``).

The lab never overwrites a state it did not create. It writes only its own objects, one
PUT each, named with a per-run prefix (``lab-v1234-web``); label keys get the same prefix
(``lab-v1234/tier``) so the lab's groups select only the lab's VMs and the user's groups
none of them. Teardown deletes exactly those objects. The lab's settings must equal the
controller's; an empty controller (no VMs, groups or policies) gets the lab's settings
for the run and its own back at teardown. Everything is checked before Mininet is
built: the API answers, the token is accepted (an authorised no-op), settings agree, and
no address or MAC of the lab is already some VM's.
"""

from __future__ import annotations

from typing import Any

from vgw_ryu.api.client import ApiError, Client
from vgw_ryu.policy import model

KINDS = ("vms", "groups", "policies")  # creation order; deletion is the reverse


class TargetError(RuntimeError):
    """The controller cannot take the lab; the message says why and what to do."""


def _ref(ref: str, prefix: str) -> str:
    kind, _, name = ref.partition(":")
    return f"{kind}:{prefix}{name}" if kind in ("vm", "group") else ref


def prefixed(doc: dict[str, Any], prefix: str) -> dict[str, dict[str, Any]]:
    """The lab's VMs, groups and policies renamed with ``prefix`` (references, members
    and label keys too); settings are not objects and stay out."""
    lp = prefix.rstrip("-") + "/"
    vms = {prefix + n: {**v, "labels": {lp + k: x for k, x in (v.get("labels") or {}).items()}}
           for n, v in (doc.get("vms") or {}).items()}
    groups = {}
    for n, g in (doc.get("groups") or {}).items():
        g = dict(g)
        if g.get("match_labels"):
            g["match_labels"] = {lp + k: x for k, x in g["match_labels"].items()}
        if g.get("members"):
            g["members"] = [prefix + m for m in g["members"]]
        groups[prefix + n] = g
    policies = {}
    for n, p in (doc.get("policies") or {}).items():
        rules = [{**r, "peer": _ref(r["peer"], prefix)} if "peer" in r else dict(r)
                 for r in p.get("rules") or []]
        policies[prefix + n] = {**p, "applied_to": [_ref(a, prefix) for a in p["applied_to"]],
                                "rules": rules}
    return {"vms": vms, "groups": groups, "policies": policies}


def settings_of(doc: dict[str, Any]) -> dict[str, Any]:
    """A document's settings with every default filled in."""
    return model.settings_doc(model.parse_state({"settings": doc.get("settings") or {}})
                              .settings)


def settings_diff(lab: dict[str, Any], target: dict[str, Any]) -> list[str]:
    """``key: lab X, controller Y`` for each setting that differs."""
    a, b = settings_of(lab), settings_of(target)
    return [f"{k}: lab {a[k]!r}, controller {b.get(k)!r}" for k in a if a[k] != b.get(k)]


def clashes(objects: dict[str, dict[str, Any]], target: dict[str, Any]) -> list[str]:
    """Names, IPs and MACs of the lab's VMs already used by the target's objects."""
    out = []
    taken_ip = {ip: n for n, v in (target.get("vms") or {}).items() for ip in v.get("ips", [])}
    taken_mac = {v.get("mac"): n for n, v in (target.get("vms") or {}).items() if v.get("mac")}
    for kind in KINDS:
        out += [f"{kind}/{n} exists" for n in objects[kind] if n in (target.get(kind) or {})]
    for n, v in objects["vms"].items():
        out += [f"{n}: IP {ip} is already VM {taken_ip[ip]}'s" for ip in v["ips"]
                if ip in taken_ip]
        if v.get("mac") in taken_mac:
            out.append(f"{n}: MAC {v['mac']} is already VM {taken_mac[v['mac']]}'s")
    return out


def check_access(client: Client) -> None:
    """Health, then an authorised no-op write; a clear TargetError otherwise."""
    url = client.url
    try:
        client.call("GET", "/v1/health", timeout=10)
    except ApiError as e:
        if e.status == 401:
            raise TargetError(f"{url} refused a read: it needs the token (--token TOKEN or "
                              "VGW_TOKEN)") from None
        raise TargetError(f"no vgw_ryu API at {url}: {e} (is the controller running? "
                          "--api takes its REST URL)") from None
    # Deleting an object that cannot exist changes nothing, but needs write access:
    # 404 means authorised.
    status, body = client.request("DELETE", "/v1/policies/vgw-lab-access-check")
    if status == 401:
        how = ("the token given is not accepted" if client.token else
               "it needs a token: pass --token TOKEN or set VGW_TOKEN")
        raise TargetError(f"{url} refuses writes ({how}); nothing was built")
    if status != 404:
        raise TargetError(f"{url}: unexpected answer {status} to an access check: {body}")


class RemoteTarget:
    """Writes the lab's own objects to a controller and deletes them at teardown."""

    def __init__(self, client: Client, prefix: str, record=None):
        self.client = client
        self.prefix = prefix
        self.record = record or (lambda created: None)  # called after each write
        self.created: list[tuple[str, str]] = []
        self.restore_settings: dict[str, Any] | None = None
        self.objects: dict[str, dict[str, Any]] = {}

    def name(self, vm: str) -> str:
        return self.prefix + vm

    def prepare(self, doc: dict[str, Any]) -> None:
        """All checks, before anything is built or written."""
        check_access(self.client)
        target = self.client.call("GET", "/v1/state")
        self.objects = prefixed(doc, self.prefix)
        problems = clashes(self.objects, target)
        if problems:
            raise TargetError(f"{self.client.url} already has what the lab needs: "
                              + "; ".join(problems[:8]))
        diff = settings_diff(doc, target)
        if diff:
            if any(target.get(k) for k in KINDS):
                raise TargetError(
                    f"the lab's settings differ from the controller's at {self.client.url} "
                    f"({'; '.join(diff)}); the lab does not change the settings of a state "
                    "it did not create: run it against an empty controller, or without "
                    "--api (the lab then starts its own)")
            self.restore_settings = target.get("settings") or {}
            self._settings_doc = {"settings": doc.get("settings") or {}}
            self._settings_rev = target.get("revision")

    def apply(self) -> int:
        """Write the settings (empty target only) and the lab's objects; the revision."""
        rev = None
        if self.restore_settings is not None:
            hdr = ({"If-Match": str(self._settings_rev)} if self._settings_rev is not None
                   else None)
            rev = self.client.call("PUT", "/v1/state", self._settings_doc,
                                   headers=hdr)["revision"]
        for kind in KINDS:
            for n, body in self.objects[kind].items():
                rev = self.client.call("PUT", f"/v1/{kind}/{n}", body)["revision"]
                self.created.append((kind, n))
                self.record(self.created)
        return rev

    def remove(self) -> list[str]:
        """Delete what this run wrote, newest first; put back the settings it changed."""
        problems = []
        while self.created:
            kind, n = self.created[-1]
            try:
                status, body = self.client.request("DELETE", f"/v1/{kind}/{n}")
            except ApiError as e:
                status, body = None, str(e)
            if status not in (200, 404):
                problems.append(f"could not delete {kind}/{n}: {status} {body}")
                break
            self.created.pop()
            self.record(self.created)
        if self.restore_settings is not None and not problems:
            now = self.client.call("GET", "/v1/state")
            if not any(now.get(k) for k in KINDS):
                self.client.call("PUT", "/v1/state", {"settings": self.restore_settings},
                                 headers={"If-Match": str(now["revision"])})
        return problems
