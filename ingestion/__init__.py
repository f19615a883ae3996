"""Harbor's Python side: dlt sources and pipelines, the demo source generator and the `harbor` command line."""

import os
from pathlib import Path

# dlt reads `.dlt/` (config.toml, secrets.toml) from the current directory: run from anywhere else, `harbor` ignored
# its configuration and credentials without a word. Harbor's is the project's (HARBOR_PROJECT_DIR, else this one).
os.environ.setdefault(
    "DLT_PROJECT_DIR", os.environ.get("HARBOR_PROJECT_DIR") or str(Path(__file__).resolve().parent.parent)
)
