"""Production's state: `prod-state` builds the production target and keeps dbt's artifacts for the PR check to
compare with, refusing uncommitted project changes; the check refuses state of another commit than its base's."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from ingestion.settings import Settings
from ingestion.slim_ci.changes import PROFILES_FILE, PROJECT_FILE, _git
from ingestion.slim_ci.errors import CiError
from ingestion.slim_ci.processes import _dbt

ARTIFACTS = ("manifest.json", "run_results.json")
# What a production build reads from the checkout: uncommitted changes there are not production's code.
DBT_PROJECT_PATHS = (
    *("models", "macros", "seeds", "snapshots", "tests", "analyses", "packages"),
    *(PROJECT_FILE, PROFILES_FILE, "packages.yml"),
)
PROD_TARGET = "dev"


def save_prod_state(settings: Settings, state_dir: Path, *, target: str = PROD_TARGET, ref: str | None = None) -> Path:
    """`dbt build` the production target and keep its manifest and run results in `state_dir`.

    With `ref`, the project is built as of that git commit (a temporary worktree), e.g. the PR's base when
    no saved production state is at hand.
    """
    if ref is not None:
        with tempfile.TemporaryDirectory(prefix="harbor-prod-ref-") as tmp:
            checkout = Path(tmp) / "src"
            _git(settings.project_dir, "worktree", "add", "--detach", str(checkout), ref)
            try:
                at_ref = Settings(checkout, settings.warehouse, settings.data_dir, settings.shop_url)
                return save_prod_state(at_ref, state_dir, target=target)
            finally:
                _git(settings.project_dir, "worktree", "remove", "--force", str(checkout), check=False)
    refuse_uncommitted_project_changes(settings.project_dir)
    if target == PROD_TARGET and not settings.warehouse.exists():
        # With HARBOR_DESTINATION=postgres, `make demo` loads PostgreSQL and never makes this file.
        elsewhere = (
            " (the PR check compares with a DuckDB production warehouse: run those with HARBOR_DESTINATION unset)"
            if os.environ.get("HARBOR_DESTINATION", "").lower() == "postgres"
            else ""
        )
        raise CiError(
            f"no production warehouse at {settings.warehouse}: load it first (`make demo`, or `make ingest` for the "
            f"sources alone), then `make prod-state`{elsewhere}"
        )
    with tempfile.TemporaryDirectory(prefix="harbor-prod-state-") as tmp:
        code = _dbt(settings, ["build", "--target", target, "--target-path", tmp], log_dir=Path(tmp) / "logs")
        # A failed production build still leaves a manifest the PR check can compare with; keep it, but fail.
        state_dir.mkdir(parents=True, exist_ok=True)
        for name in ARTIFACTS:
            source = Path(tmp) / name
            if source.exists():
                shutil.copy2(source, state_dir / name)
    (state_dir / "prod.json").write_text(
        json.dumps(
            {
                "target": target,
                "warehouse": str(settings.warehouse),
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "commit": _git(settings.project_dir, "rev-parse", "HEAD", check=False).strip(),
                "dbt_exit_code": code,
            },
            indent=2,
        )
        + "\n"
    )
    if code != 0:
        raise CiError(f"the production build failed (dbt exit code {code}); state saved in {state_dir} anyway")
    return state_dir


def refuse_uncommitted_project_changes(project_dir: Path) -> None:
    """Production is a commit: built with uncommitted dbt changes, its state would hold code main never had."""
    # NUL-separated: in a line, git quotes a name with non-ASCII characters or quotes ("models/b\303\244d.sql") and
    # shows a rename as `old -> new`; with -z, a rename or copy is `R  new` and its original name the next field.
    status = _git(
        project_dir, "status", "--porcelain", "-z", "--untracked-files=all", "--", *DBT_PROJECT_PATHS, check=False
    )
    fields = iter(status.split("\0"))
    dirty = []
    for entry in fields:
        if entry:
            dirty.append(entry[3:])
            if {"R", "C"} & set(entry[:2]):
                next(fields, None)  # the original name, no change of its own
    if dirty:
        shown = ", ".join(dirty[:3]) + (f" and {len(dirty) - 3} more" if len(dirty) > 3 else "")
        raise CiError(
            f"uncommitted changes to the dbt project ({shown}): production is built from a commit; commit or stash "
            "them, or run `make prod-state REF=<base>`"
        )


def saved_state_commit(state_dir: Path) -> str | None:
    """The commit production's state was built from (prod.json, written by `save_prod_state`)."""
    try:
        return json.loads((state_dir / "prod.json").read_text()).get("commit") or None
    except (OSError, json.JSONDecodeError):
        return None


def refuse_state_of_another_commit(state_dir: Path, base: str, base_commit: str) -> None:
    """State built from another commit than the base makes main's own later changes look like the PR's."""
    saved = saved_state_commit(state_dir)
    if saved != base_commit:
        built = f"commit {saved[:12]}" if saved else "an unknown commit"
        raise CiError(
            f"the production state in {state_dir} is of {built}, not of {base} ({base_commit[:12]}): run "
            f"`make prod-state` on {base} (or `make prod-state REF={base}`)"
        )
