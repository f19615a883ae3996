"""dbt, the linters and pytest as the check runs them: child processes in the project's folder with dbt's
environment, each command echoed to the job's log; and the target and options of the PR's dbt builds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ingestion.settings import Settings
from ingestion.transform import dbt_env, dbt_executable, ensure_packages

PR_TARGET = "pr"
# A contracted mart's column renamed or removed, or the mart deleted, breaks its consumers: an error.
WARN_ERROR_OPTIONS = ("--warn-error-options", json.dumps({"error": ["UnversionedBreakingChange"]}))


def _dbt(settings: Settings, args: list[str], *, env: dict[str, str] | None = None, log_dir: Path) -> int:
    ensure_packages(settings)
    return _run([dbt_executable(), *args, "--log-path", str(log_dir)], settings, env=env)


def _run(command: list[str], settings: Settings, *, env: dict[str, str] | None = None) -> int:
    print(f"+ {' '.join(command)}", flush=True)
    return subprocess.run(command, cwd=settings.project_dir, env=_command_env(settings, env), check=False).returncode


def _run_captured(command: list[str], settings: Settings, *, env: dict[str, str] | None = None) -> tuple[int, str]:
    """`_run`, keeping the standard output (echoed, so the job's log still has it) for the summary to quote."""
    print(f"+ {' '.join(command)}", flush=True)
    completed = subprocess.run(
        command, cwd=settings.project_dir, env=_command_env(settings, env), capture_output=True, text=True, check=False
    )
    print(completed.stdout, end="", flush=True)
    print(completed.stderr, end="", file=sys.stderr, flush=True)
    return completed.returncode, completed.stdout


def _command_env(settings: Settings, env: dict[str, str] | None = None) -> dict[str, str]:
    return {**dbt_env(settings), "DBT_PROFILES_DIR": str(settings.project_dir), **(env or {})}


def _tool(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name
