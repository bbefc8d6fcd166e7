#!/usr/bin/env bash
# Creates or reuses .venv with the pinned Python dependencies and vgw_ryu installed
# (editable). Re-runs only pip when the pins or the package metadata changed.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
stamp=$venv/.vgw-setup-stamp
want=$(cat requirements/constraints.txt requirements/build-constraints.txt setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -x $venv/bin/python ] && [ -f $stamp ] && [ "$(cat $stamp)" = "$want" ]; then
  exit 0
fi
py=${VGW_PYTHON:-$(command -v python3.11 || command -v python3)}
echo "setup-venv: creating $venv with $($py --version)"
[ -x $venv/bin/python ] || $py -m venv $venv
pip=($venv/bin/python -m pip --disable-pip-version-check -q)
"${pip[@]}" install -c requirements/constraints.txt pip
# Ryu 4.34 builds only with setuptools<58; the build constraint scopes that pin to
# Ryu's own build so the rest of the venv keeps a current setuptools.
"${pip[@]}" install --build-constraint requirements/build-constraints.txt \
  -c requirements/constraints.txt ryu
"${pip[@]}" install -c requirements/constraints.txt -e '.[test]'
echo "$want" > $stamp
echo "setup-venv: ready ($($venv/bin/python -c 'import ryu, eventlet; print("ryu", ryu.version, "eventlet", eventlet.__version__)' 2>/dev/null || echo '?'))"
