#!/usr/bin/env bash
# Starts ovsdb-server and ovs-vswitchd if they are not running (userspace datapath:
# no kernel module is needed or loaded) and reports their state. Idempotent.
set -euo pipefail
ctl=/usr/share/openvswitch/scripts/ovs-ctl
if ! ovs-vsctl --timeout=2 show >/dev/null 2>&1 || ! ovs-appctl -t ovs-vswitchd version >/dev/null 2>&1; then
  echo "ovs-up: starting Open vSwitch"
  # ovs-ctl tries to raise ulimits and load the kernel module; both may fail
  # harmlessly in a container, so judge success by the daemons answering.
  "$ctl" start --system-id=random >/tmp/vgw-ovs-ctl.log 2>&1 || true
fi
for _ in $(seq 1 50); do
  if ovs-vsctl --timeout=2 show >/dev/null 2>&1 && ovs-appctl -t ovs-vswitchd version >/dev/null 2>&1; then
    echo "ovs-up: ovsdb-server and ovs-vswitchd running ($(ovs-vswitchd --version | head -1))"
    exit 0
  fi
  sleep 0.2
done
echo "ovs-up: Open vSwitch did not start; see /tmp/vgw-ovs-ctl.log" >&2
cat /tmp/vgw-ovs-ctl.log >&2 || true
exit 1
