"""`python -m bench.detection`: the detection benchmark (see runner.py)."""

from __future__ import annotations

import sys

from bench.detection.runner import main

if __name__ == "__main__":
    sys.exit(main())
