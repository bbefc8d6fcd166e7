"""``python -m vgw_lab.bench``: run the benchmarks (see vgw_lab/bench/__init__.py)."""

import sys

from vgw_lab.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
