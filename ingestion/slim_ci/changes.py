"""What a pull request changed, read from git: the base commit it is compared with and the files that differ from
it, with the git calls behind them; and the two project files whose change reaches every node."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ingestion.slim_ci.errors import CiError

PROJECT_FILE = "dbt_project.yml"
PROFILES_FILE = "profiles.yml"


def compared_commit(project_dir: Path, base: str) -> str:
    """The commit of `base` the checkout is compared with: its tip, which the checkout must contain.

    A branch behind `base` would show base's newer changes as undone by the PR. CI's merge commit is the
    exception: its first parent is where the PR merges into `base`, which may have moved on since.
    """
    tip = _commit_of(project_dir, base)
    if not tip:
        raise CiError(f"base ref {base!r} not found; fetch it (CI: fetch-depth 0) or pass --base")
    merge_base = _git(project_dir, "merge-base", tip, "HEAD").strip()
    if merge_base == tip:
        return tip
    parents = _git(project_dir, "rev-list", "--parents", "-n", "1", "HEAD").split()[1:]
    if len(parents) > 1 and _is_ancestor(project_dir, parents[0], tip):
        return parents[0]
    raise CiError(f"your branch is behind {base} ({tip[:12]}): merge or rebase it first")


def _commit_of(project_dir: Path, ref: str) -> str | None:
    return _git(project_dir, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False).strip() or None


def _is_ancestor(project_dir: Path, commit: str, of: str) -> bool:
    completed = subprocess.run(
        ["git", "merge-base", "--is-ancestor", commit, of], cwd=project_dir, capture_output=True, check=False
    )
    return completed.returncode == 0


def changed_files(project_dir: Path, base: str) -> list[str]:
    """Files that differ from the merge base with `base` (deleted ones too): committed, staged, unstaged and
    untracked."""
    if not _commit_of(project_dir, base):
        raise CiError(f"base ref {base!r} not found; fetch it (CI: fetch-depth 0) or pass --base")
    merge_base = _git(project_dir, "merge-base", base, "HEAD").strip()
    # NUL-separated: git quotes a name with non-ASCII characters or quotes in a line ("b\303\244d.py").
    diff = _git(project_dir, "diff", "--name-only", "-z", "--diff-filter=ACDMRT", merge_base, "--")
    untracked = _git(project_dir, "ls-files", "-z", "--others", "--exclude-standard")
    return sorted({name for name in (diff + untracked).split("\0") if name})


def default_base(project_dir: Path) -> str:
    explicit = os.environ.get("HARBOR_BASE_REF")
    if explicit:
        return explicit
    for candidate in ("origin/main", "main"):
        if _git(project_dir, "rev-parse", "--verify", "--quiet", candidate, check=False).strip():
            return candidate
    raise CiError("no base ref: set HARBOR_BASE_REF or pass --base")


def _git(project_dir: Path, *args: str, check: bool = True) -> str:
    completed = subprocess.run(["git", *args], cwd=project_dir, capture_output=True, text=True, check=False)
    if check and completed.returncode != 0:
        raise CiError(f"git {' '.join(args)} failed: {completed.stderr.strip()}")
    return completed.stdout


def _current_branch(project_dir: Path) -> str:
    return _git(project_dir, "rev-parse", "--abbrev-ref", "HEAD", check=False).strip() or "local"
