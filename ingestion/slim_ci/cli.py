"""The command line, `python -m ingestion.slim_ci prod-state|pr` (the Makefile's `prod-state` and `ci-pr` targets,
steps of the GitHub workflows): exit 0 when the check passed, 1 when it failed, 2 when it could not run."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ingestion.settings import Settings
from ingestion.slim_ci.changes import _commit_of, default_base
from ingestion.slim_ci.check import run_pr_check
from ingestion.slim_ci.errors import CiError
from ingestion.slim_ci.paths import CiPaths
from ingestion.slim_ci.report import render_summary, write_refusal
from ingestion.slim_ci.state import save_prod_state, saved_state_commit


def main(argv: Sequence[str] | None = None) -> int:
    # The package's docstring (importing the package here would be a cycle): its first line says what this does.
    parser = argparse.ArgumentParser(
        prog="python -m ingestion.slim_ci", description=sys.modules[__package__].__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    prod = commands.add_parser("prod-state", help="build production and keep its dbt artifacts")
    prod.add_argument("--state-dir", type=Path, help="default: state/prod (or HARBOR_PROD_STATE)")
    prod.add_argument("--ref", help="build the project as of this git ref (e.g. the PR's base) instead of HEAD")
    prod.add_argument(
        "--unless-saved",
        action="store_true",
        help="do nothing when the saved state is already of that commit (CI restores state from a cache)",
    )
    pr = commands.add_parser("pr", help="the pull-request check against the saved production state")
    pr.add_argument("--base", help="git ref the PR is compared with (default: HARBOR_BASE_REF, origin/main, main)")
    pr.add_argument("--pr-id", help="names the PR's DuckDB file (default: HARBOR_PR_ID or the branch)")
    pr.add_argument("--no-pytest", action="store_true", help="skip the Python tests")
    pr.add_argument("--no-freshness", action="store_true", help="skip dbt source freshness")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    if args.command == "prod-state":
        return _prod_state_command(settings, args)
    return _pr_command(settings, args)


def _prod_state_command(settings: Settings, args: argparse.Namespace) -> int:
    state_dir = args.state_dir.resolve() if args.state_dir else CiPaths.for_settings(settings).state_dir
    try:
        if args.unless_saved and saved_state_commit(state_dir) == _commit_of(settings.project_dir, args.ref or "HEAD"):
            print(f"production state in {state_dir} is already of {args.ref or 'HEAD'}: kept")
            return 0
        save_prod_state(settings, state_dir, ref=args.ref)
    except CiError as error:
        print(f"ci: error: {error}", file=sys.stderr)
        return 2
    print(f"production state saved in {state_dir}")
    return 0


def _pr_command(settings: Settings, args: argparse.Namespace) -> int:
    paths = CiPaths.for_settings(settings, args.pr_id)
    # A summary left by an earlier run must not stand for this one, even if this one crashes.
    paths.summary.unlink(missing_ok=True)
    try:
        report = run_pr_check(
            settings,
            paths,
            base=args.base or default_base(settings.project_dir),
            freshness=not args.no_freshness,
            pytest_args=None if args.no_pytest else (),
        )
    except CiError as error:
        print(f"ci: error: {error}", file=sys.stderr)
        write_refusal(paths.summary, str(error))
        return 2
    print(render_summary(report))
    print(f"summary written to {paths.summary}")
    return 0 if report.ok else 1
