"""Time `backend.detection.detect` on one file inside the process (interpreter start excluded).

Prints ``{"seconds": ..., "encoding": ..., "delimiter": ...}``; the runner also times the whole
process around it, so both numbers are reported. Usage: ``python -m bench.detect_speed FILE``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.detect_speed FILE", file=sys.stderr)
        return 2
    from backend.config import load_settings
    from backend.detection import detect

    settings = load_settings({}, env_file=None)
    started = time.perf_counter()
    detection = detect(Path(args[0]), settings)
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {"seconds": round(seconds, 4), "encoding": detection.encoding, "delimiter": detection.delimiter}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
