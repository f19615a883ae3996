"""Where a run keeps things: production's state, the PR's dbt output and logs, its DuckDB file (in a folder named
after the PR, never production's) and the summary."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ingestion.settings import Settings
from ingestion.slim_ci.changes import _current_branch


@dataclass(frozen=True)
class CiPaths:
    state_dir: Path  # production artifacts: manifest.json, run_results.json, prod.json
    work_dir: Path  # the PR run's dbt target folder and logs
    pr_warehouse: Path  # the DuckDB file the PR builds into
    summary: Path  # markdown for the PR comment

    @classmethod
    def for_settings(cls, settings: Settings, pr_id: str | None = None) -> CiPaths:
        state = os.environ.get("HARBOR_PROD_STATE")
        pr = pr_slug(pr_id or os.environ.get("HARBOR_PR_ID") or _current_branch(settings.project_dir))
        return cls(
            state_dir=Path(state).resolve() if state else settings.project_dir / "state" / "prod",
            work_dir=settings.project_dir / "target" / "ci-pr",
            pr_warehouse=settings.warehouse.parent / "pr" / pr / settings.warehouse.name,
            summary=settings.project_dir / "reports" / "ci-pr" / "summary.md",
        )


def pr_slug(name: str) -> str:
    """A DuckDB catalog name of the PR's own: it must never equal production's."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "local"
    return f"pr_{slug}"[:60]
