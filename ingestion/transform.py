"""Runs dbt against the warehouse that ingestion wrote, as a subprocess of this virtual environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ingestion.settings import Settings


class DbtFailed(RuntimeError):
    def __init__(self, args: list[str], returncode: int) -> None:
        super().__init__(f"dbt {' '.join(args)} failed with exit code {returncode}")
        self.returncode = returncode


def dbt_executable() -> str:
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def dbt_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    env.setdefault("DBT_PROFILES_DIR", str(settings.project_dir))
    env["HARBOR_WAREHOUSE"] = str(settings.warehouse)
    return env


def run_dbt(settings: Settings, *args: str, check: bool = True) -> int:
    """Run `dbt <args>` in the project directory; raise DbtFailed on a non-zero exit when `check`."""
    command = [dbt_executable(), *args]
    completed = subprocess.run(command, cwd=settings.project_dir, env=dbt_env(settings), check=False)
    if check and completed.returncode != 0:
        raise DbtFailed(list(args), completed.returncode)
    return completed.returncode
