"""Create the dropoff folder tree, the data folder and LOG_FILE's folder where missing (safe to run again).

    python setup_directories.py

Reads the same settings as the daemon (``DROPOFF_BASE_PATH``, ``DATA_DIR`` or the SQLite file of
``DATABASE_URL``, ``LOG_FILE``, .env, <CONFIG_DIR>/settings.yaml) and prints each folder it
created. ``refdata-monitor init-db`` does the same and then creates the tables.
"""

from __future__ import annotations

import sys

from backend.config import load_settings
from backend.errors import ConfigError
from backend.ops.setup import create_folders


def main() -> int:
    try:
        settings = load_settings()
        created = create_folders(settings)
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
