#!/usr/bin/env bash
# Installs the Debian packages vgw_ryu needs, once; idempotent and quiet when all is there.
set -euo pipefail
pkgs=(openvswitch-switch openvswitch-common mininet iperf3 ethtool iproute2 procps
      python3 python3-venv python3-dev make socat iputils-ping tcpdump)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup-host: missing Debian packages (${missing[*]}); run as root" >&2
    exit 1
  fi
  echo "setup-host: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
