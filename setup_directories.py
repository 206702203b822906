"""Create the dropoff folder tree and the data folder where missing (safe to run again).

    python setup_directories.py

Reads the same settings as the daemon (``DROPOFF_BASE_PATH``, ``DATA_DIR``, .env,
config/settings.yaml) and prints each folder it created.
"""

from __future__ import annotations

import sys

from backend.config import load_settings
from backend.daemon.folders import ensure_directories, ensure_directory
from backend.errors import ConfigError


def main() -> int:
    try:
        settings = load_settings()
        created = ensure_directories(settings.dropoff_base_path) + ensure_directory(settings.data_dir)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in created:
        print(f"created {path}")
    if not created:
        print(f"all folders exist under {settings.dropoff_base_path} and {settings.data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
