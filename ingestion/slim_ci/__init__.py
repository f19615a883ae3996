"""Slim CI for pull requests: build and test only what a change touches, deferring the rest to production.

Two commands, each a `make` target and a step of the GitHub workflows:

- `prod-state` (`make prod-state`) builds the production target and keeps dbt's `manifest.json` and
  `run_results.json` in the production state folder (`state/prod/`, ignored by git), with `prod.json` naming the
  commit built; it refuses uncommitted changes to the dbt project.
- `pr` (`make ci-pr`) runs the checks of a pull request against that state: ruff, sqlfluff and yamllint on the
  changed files only, a rehearsal of the deploy (`dbt build --select state:modified+ --resource-type model
  --resource-type seed`, without a full refresh: the changed incremental models running incrementally and the
  changed seeds loading into copies of production's tables, as the deploy will), then
  `dbt build --select state:modified+ --full-refresh --defer --state state/prod` (the changed logic on every row,
  and its tests, plus the nodes whose code calls a changed macro where dbt does not record it, such as in an
  `is_incremental()` branch, and their descendants) into a DuckDB file of the PR's own (the whole project when
  `dbt_project.yml` or `profiles.yml` changed or a changed macro is no model's, seed's, snapshot's or test's
  dependency), `dbt source freshness`, the Python tests, and a markdown summary for the PR comment. It refuses to
  run (exit 2, the summary saying why) on a branch behind its base or against production state of another commit
  than the base's.

The PR file carries production's file name, so its catalog name and every relation name match production's:
dbt compares sources by their rendered database, and a PR file named otherwise would mark every source (and
so the whole project) modified. It starts as a view over each production table and view (production attached
read-only as `harbor_prod`), which is what a deferred `ref` to an unchanged parent and a `source` read; the
PR's build replaces the views of the models it changes with tables of its own. The snapshots and seeds the
build writes and the incremental models it runs are copied as tables (`planned_tables`).

The modules: `check` is the pull-request check (`run_pr_check`) and `state` production's state
(`save_prod_state`); `changes` reads from git what a branch changed, `macros` what of it dbt's state:modified cannot
see, `pr_warehouse` makes the PR file and rehearses the deploy, `lint` runs the linters on the changed files,
`processes` runs dbt and the tools, `dbt_log` reads dbt's errors from its log, `report` holds the results and the
summary, `paths` where a run keeps things, `errors` the `CiError`, and `cli` is the command line (`__main__`).
"""

from ingestion.slim_ci.changes import changed_files, compared_commit, default_base
from ingestion.slim_ci.check import run_pr_check, selection_label
from ingestion.slim_ci.cli import main
from ingestion.slim_ci.dbt_log import dbt_errors, failed_hooks, first_dbt_error
from ingestion.slim_ci.errors import CiError
from ingestion.slim_ci.lint import (
    python_to_lint,
    ruff_violations,
    sql_to_lint,
    sqlfluff_violations,
    violations_detail,
    yaml_to_lint,
    yamllint_violations,
)
from ingestion.slim_ci.macros import (
    MacroCaller,
    MacroChanges,
    changed_macros,
    macro_callers,
    macro_changes,
    untraceable_macros,
    whole_project_reasons,
)
from ingestion.slim_ci.paths import CiPaths, pr_slug
from ingestion.slim_ci.pr_warehouse import (
    PROD_ALIAS,
    PlannedCopies,
    column_drift,
    planned_tables,
    prepare_pr_warehouse,
    rehearse_deploy,
    table_columns,
)
from ingestion.slim_ci.report import (
    FAILED_STATUSES,
    NodeResult,
    PrReport,
    StepResult,
    render_summary,
    write_refusal,
    write_summary,
)
from ingestion.slim_ci.state import (
    refuse_state_of_another_commit,
    refuse_uncommitted_project_changes,
    save_prod_state,
    saved_state_commit,
)

__all__ = [
    "FAILED_STATUSES",
    "PROD_ALIAS",
    "CiError",
    "CiPaths",
    "MacroCaller",
    "MacroChanges",
    "NodeResult",
    "PlannedCopies",
    "PrReport",
    "StepResult",
    "changed_files",
    "changed_macros",
    "column_drift",
    "compared_commit",
    "dbt_errors",
    "default_base",
    "failed_hooks",
    "first_dbt_error",
    "macro_callers",
    "macro_changes",
    "main",
    "planned_tables",
    "pr_slug",
    "prepare_pr_warehouse",
    "python_to_lint",
    "refuse_state_of_another_commit",
    "refuse_uncommitted_project_changes",
    "rehearse_deploy",
    "render_summary",
    "ruff_violations",
    "run_pr_check",
    "save_prod_state",
    "saved_state_commit",
    "selection_label",
    "sql_to_lint",
    "sqlfluff_violations",
    "table_columns",
    "untraceable_macros",
    "violations_detail",
    "whole_project_reasons",
    "write_refusal",
    "write_summary",
    "yaml_to_lint",
    "yamllint_violations",
]
