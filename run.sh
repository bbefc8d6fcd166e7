#!/usr/bin/env bash
# The project's two commands (and a few more). Each sets up what it needs:
#   ./run.sh lab     the main job: OVS + controller + lab VMs + policy, verdicts checked
#   ./run.sh test    the test suite (unit, sandbox with real OVS, lab with real traffic)
#   ./run.sh bench   the benchmarks (see README)
set -euo pipefail
cd "$(dirname "$0")"
cmd=${1:-help}
shift || true
setup() {
  ./scripts/setup-host.sh
  ./scripts/setup-venv.sh
}
case "$cmd" in
  lab)
    setup
    ./scripts/ovs-up.sh
    if [ $# -eq 0 ]; then set -- three-tier; fi
    exec .venv/bin/vgw-lab run "$@"
    ;;
  test)
    setup
    ./scripts/ovs-up.sh
    .venv/bin/ruff check --quiet .
    exec .venv/bin/python -m pytest "$@"
    ;;
  bench)
    setup
    ./scripts/ovs-up.sh
    exec .venv/bin/python -m vgw_lab.bench "$@"
    ;;
  *)
    echo "usage: ./run.sh lab|test|bench [args]" >&2
    exit 2
    ;;
esac
