"""The GitHub workflows and pre-commit hooks are valid and call the same make targets as local use."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ingestion.settings import PROJECT_DIR

BIN = Path(sys.executable).parent
WORKFLOWS = sorted((PROJECT_DIR / ".github" / "workflows").glob("*.yml"))


def test_both_workflows_exist():
    assert {w.name for w in WORKFLOWS} >= {"pr.yml", "main.yml"}


def test_workflows_match_githubs_schema_and_yaml_lint():
    # check-jsonschema ships GitHub's workflow schema: no download needed.
    schema = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", *WORKFLOWS],
        capture_output=True,
        text=True,
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr
    lint = subprocess.run(
        [
            BIN / "yamllint",
            "--strict",
            "-c",
            PROJECT_DIR / ".yamllint.yml",
            *WORKFLOWS,
            PROJECT_DIR / ".pre-commit-config.yaml",
        ],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_schema_check_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: pull_request\njobs:\n  check:\n    steps:\n      - run: make ci-pr\n")  # no runs-on
    result = subprocess.run(
        [BIN / "check-jsonschema", "--builtin-schema", "vendor.github-workflows", broken], capture_output=True
    )
    assert result.returncode != 0


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_steps_only_call_make_targets_that_exist(workflow):
    """Nothing exists only in YAML: the work is done by make targets a contributor can run locally."""
    targets = set(re.findall(r"^([a-z][a-z-]*):", (PROJECT_DIR / "Makefile").read_text(), re.MULTILINE))
    doc = yaml.safe_load(workflow.read_text())
    called = []
    for job in doc["jobs"].values():
        for step in job["steps"]:
            for line in step.get("run", "").splitlines():
                words = shlex.split(line.strip().rstrip("\\"))
                if words[:1] == ["make"]:
                    called += [w for w in words[1:] if "=" not in w]
                else:  # glue only: publishing the summary, never building or testing
                    assert words[:1] in (["test"], ["cat"], ["gh"], ["||"], []), line
    assert called and set(called) <= targets
    assert ("ci-pr" in called) if workflow.name == "pr.yml" else ("prod-state" in called)


def test_pre_commit_hooks_are_local_and_use_the_venv_tools():
    config = PROJECT_DIR / ".pre-commit-config.yaml"
    result = subprocess.run([BIN / "pre-commit", "validate-config", config], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    repos = yaml.safe_load(config.read_text())["repos"]
    assert [r["repo"] for r in repos] == ["local"]  # hooks from GitHub cannot be fetched here
    hooks = {h["id"]: h for h in repos[0]["hooks"]}
    assert {"ruff-check", "ruff-format", "sqlfluff-lint", "yamllint", "github-workflows"} <= hooks.keys()
    for hook in hooks.values():
        tool = next(w for w in shlex.split(hook["entry"]) if w.startswith(".venv/bin/"))
        assert (BIN / Path(tool).name).exists(), f"{hook['id']}: {tool} is not installed by make setup"


@pytest.mark.parametrize(
    ("target", "variable", "option"), [("prod-state", "REF", "--ref"), ("ci-pr", "BASE", "--base")]
)
def test_make_passes_a_ref_with_quotes_and_spaces_as_one_word(target, variable, option):
    """BASE and REF went to the shell unquoted: `make ci-pr BASE="release/it's"` was a shell syntax error."""
    ref = 'release/it\'s a "ref"'
    dry_run = subprocess.run(
        ["make", "-n", "-o", "setup", "-C", PROJECT_DIR, target, f"{variable}={ref}"],
        capture_output=True,
        text=True,
        check=True,
    )
    command = next(line for line in dry_run.stdout.splitlines() if "ingestion.slim_ci" in line)
    words = shlex.split(command)
    assert words[words.index(option) + 1] == ref
