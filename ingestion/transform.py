"""Runs dbt against the warehouse that ingestion wrote, as a subprocess of this virtual environment."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ingestion.settings import ConfigError, Settings


class DbtFailed(RuntimeError):
    def __init__(self, args: list[str], returncode: int) -> None:
        super().__init__(f"dbt {' '.join(args)} failed with exit code {returncode}")
        self.returncode = returncode


class DbtInterrupted(DbtFailed):
    """Ctrl-C (or SIGINT) while dbt ran: dbt was let finish cancelling its queries."""

    def __init__(self, args: list[str]) -> None:
        RuntimeError.__init__(self, f"dbt {' '.join(args)} was interrupted; run it again to finish")
        self.returncode = EXIT_INTERRUPTED


EXIT_INTERRUPTED = 130  # the shell's code for a command ended by SIGINT
# How long dbt may take to cancel its queries and write its results after Ctrl-C, before it is told again, then
# killed.
CANCEL_SECONDS = (10.0, 20.0)
_PR_SET_PDEATHSIG = 1


def _dying_with_this_process() -> Callable[[], None] | None:
    """A `preexec_fn` that has Linux send SIGTERM to the child when this process dies, however it dies: a
    `harbor build` killed (a CI job cancelled, `kill`) left dbt building on its own, after its build lock was
    released, and the next build ran beside it. Looked up before the fork: the child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the setting took
            os.kill(os.getpid(), signal.SIGTERM)

    return die_with_parent


def dbt_executable() -> str:
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def default_target(env: Mapping[str, str] = os.environ) -> str:
    """The dbt target when no --target is given: HARBOR_TARGET; without it `pg` when ingestion loads into
    PostgreSQL (HARBOR_DESTINATION=postgres), so that ingestion and dbt meet in one warehouse; else `dev`."""
    destination = env.get("HARBOR_DESTINATION", "").lower()
    if destination not in ("", "duckdb", "postgres"):  # a typo built the DuckDB warehouse without a word
        raise ConfigError(f"HARBOR_DESTINATION must be duckdb or postgres, not {env['HARBOR_DESTINATION']!r}")
    if env.get("HARBOR_TARGET"):
        return env["HARBOR_TARGET"]
    return "pg" if destination == "postgres" else "dev"


def _profile_outputs(settings: Settings) -> tuple[Path, dict[str, Any] | None]:
    """The `harbor` profile's outputs by target name, and the file they come from; None when that file cannot be
    read here (dbt says what is wrong with it when it starts)."""
    profiles = Path(os.environ.get("DBT_PROFILES_DIR") or settings.project_dir) / "profiles.yml"
    try:
        outputs = (yaml.safe_load(profiles.read_text()) or {})["harbor"]["outputs"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return profiles, None
    return profiles, outputs if isinstance(outputs, dict) else None


def check_target_exists(settings: Settings, target: str) -> None:
    """Refuses a target the `harbor` profile does not define, naming the ones it does: dbt says so only when it
    starts, after `demo run` has moved the sources a day forward and ingested them."""
    profiles, outputs = _profile_outputs(settings)
    if outputs is not None and target not in outputs:
        raise ConfigError(f"dbt target {target!r} (HARBOR_TARGET) is not in {profiles}: it has {', '.join(outputs)}")


def target_engine(settings: Settings, target: str) -> str | None:
    """The adapter `profiles.yml` gives the target (`duckdb`, `postgres`); None when it cannot tell."""
    _, outputs = _profile_outputs(settings)
    output = (outputs or {}).get(target)
    engine = output.get("type") if isinstance(output, dict) else None
    return engine if isinstance(engine, str) else None


def dbt_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    env.setdefault("DBT_PROFILES_DIR", str(settings.project_dir))
    env["HARBOR_TARGET"] = default_target(env)
    # PostgreSQL sessions in UTC, as the DuckDB targets set in profiles.yml (dbt-postgres has no such setting):
    # staging casts zoned timestamps to plain ones in the session's zone. A PGTZ of the caller's own would shift
    # every date in the marts, so it is overridden (the on-run-start hook stops a session in another zone).
    env["PGTZ"] = "UTC"
    env["HARBOR_WAREHOUSE"] = str(settings.warehouse)
    if not sys.stdout.isatty():  # a log file or CI's log: colour codes would be noise in it
        env.setdefault("DBT_USE_COLORS", "false")
    return env


def ensure_packages(settings: Settings) -> None:
    """Run `dbt deps` when a package in packages.yml is not installed (all of them are `local:`: no network)."""
    packages_yml = settings.project_dir / "packages.yml"
    if not packages_yml.exists():
        return
    installed = settings.project_dir / "dbt_packages"
    # Two dbt commands started at once on a fresh clone (parallel tests, `harbor build` beside `harbor docs`)
    # would both run `dbt deps`, and one would delete the package folder while the other reads it.
    with packages_yml.open() as lock:
        with contextlib.suppress(OSError):  # a file system without locks (some network mounts): unguarded, as before
            fcntl.flock(lock, fcntl.LOCK_EX)
        for local in re.findall(r"^\s*-?\s*local:\s*[\"']?([^\"'#\s]+)", packages_yml.read_text(), re.MULTILINE):
            # dbt installs a local package under the name its own dbt_project.yml declares.
            project = (settings.project_dir / local / "dbt_project.yml").read_text()
            name = re.search(r"^name:\s*[\"']?(\w+)", project, re.MULTILINE)
            if name is None or not (installed / name.group(1)).exists():
                run_dbt(settings, "deps")
                return


def run_dbt(settings: Settings, *args: str, check: bool = True) -> int:
    """Run `dbt <args>` in the project directory; raise DbtFailed on a non-zero exit when `check`."""
    if args and args[0] not in ("deps", "clean", "debug"):
        ensure_packages(settings)
    command = [dbt_executable(), *args]
    process = subprocess.Popen(
        command, cwd=settings.project_dir, env=dbt_env(settings), preexec_fn=_dying_with_this_process()
    )
    try:
        returncode = process.wait()
    except KeyboardInterrupt:
        # Ctrl-C reached dbt too (one process group): it cancels its queries and writes its results. Killed a
        # quarter second later, as subprocess.run does, it printed the nodes it ran as errors and a traceback.
        _let_finish_cancelling(process)
        raise DbtInterrupted(list(args)) from None
    if check and returncode != 0:
        raise DbtFailed(list(args), returncode)
    return returncode


def _let_finish_cancelling(process: subprocess.Popen) -> None:
    for wait, then in zip(CANCEL_SECONDS, (signal.SIGINT, signal.SIGKILL), strict=True):
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            process.send_signal(then)
        except KeyboardInterrupt:  # Ctrl-C again: stop waiting
            process.kill()
            process.wait()
            return
    process.wait()
