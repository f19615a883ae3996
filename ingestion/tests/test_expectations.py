"""Tests of the tests: the harbor_expectations integration project, one `dbt build` per engine.

Every expectation runs on good data, where it must pass, and on bad data, where it must fail (those tests carry the
tag `expect_fail` and severity warn, so the build itself succeeds). A test that passes on bad data, or warns on good
data, fails here.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from ingestion.quality import load_outcomes, summarize
from ingestion.settings import PROJECT_DIR, Settings
from ingestion.transform import dbt_executable, ensure_packages

INTEGRATION_DIR = PROJECT_DIR / "integration_tests" / "expectations"
PACKAGE_MACROS = PROJECT_DIR / "packages" / "harbor_expectations" / "macros"


def declared_expectations() -> set[str]:
    names = set()
    for path in PACKAGE_MACROS.glob("*.sql"):
        names.update(re.findall(r"{%\s*test\s+(\w+)\s*\(", path.read_text()))
    return names


def run_integration_dbt(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_PROFILES_DIR": str(INTEGRATION_DIR),
        "DBT_TARGET_PATH": str(tmp_path / "target"),
        "DBT_LOG_PATH": str(tmp_path / "logs"),
        **env,
    }
    ensure_packages(Settings(INTEGRATION_DIR, tmp_path / "unused.duckdb", tmp_path, "sqlite:///unused"))
    return subprocess.run(
        [dbt_executable(), *args], cwd=INTEGRATION_DIR, env=env, capture_output=True, text=True, check=False
    )


def build_integration_project(tmp_path: Path, env: dict[str, str]) -> Path:
    completed = run_integration_dbt(tmp_path, env, "build")
    assert completed.returncode == 0, completed.stdout[-4000:]
    return tmp_path / "target"


@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_every_expectation_passes_on_good_data_and_fails_on_bad_data(tmp_path, engine, request):
    if engine == "postgres":
        database = request.getfixturevalue("postgres_url").rsplit("/", 1)[1]
        env = {"EXPECTATIONS_TARGET": "postgres", "EXPECTATIONS_PG_DBNAME": database}
    else:
        env = {"EXPECTATIONS_TARGET": "duckdb", "EXPECTATIONS_DUCKDB": str(tmp_path / "expectations.duckdb")}
    outcomes = load_outcomes(build_integration_project(tmp_path, env))

    wrong = [(o.unique_id, o.status) for o in outcomes if o.status != ("warn" if "expect_fail" in o.tags else "pass")]
    assert wrong == []
    # The quality score over real artifacts: every expected failure is a warn, nothing else is lost.
    summary = summarize(outcomes)
    expected_failures = sum("expect_fail" in o.tags for o in outcomes)
    assert (summary.warned, summary.failed, summary.errored) == (expected_failures, 0, 0)
    assert summary.passed == len(outcomes) - expected_failures

    seen: dict[str, set[str]] = defaultdict(set)
    for outcome in outcomes:
        seen[outcome.test_name].add(outcome.status)
    expectations = declared_expectations()
    assert len(expectations) >= 46
    # Each expectation is shown both ways: at least one passing test and one expected failure.
    assert {name for name in expectations if seen[name] != {"pass", "warn"}} == set()


@pytest.mark.parametrize(
    ("tag", "said"),
    [
        # Ordered by the value itself (upstream's fallback), increasing/decreasing would check nothing.
        ("expect_compile_error", "expect_column_values_to_be_increasing on tied_up needs sort_column"),
        # A column count between no bounds checked nothing (upstream errors too).
        ("expect_compile_error_without_bounds", "give min_value, max_value or both"),
    ],
)
def test_an_expectation_that_would_check_nothing_is_a_compile_error(tmp_path, tag, said):
    """The test errors and says what it needs. The cases sit in the integration project, enabled only by a var as
    they stop a build; each is compiled on its own, as dbt stops at the first error."""
    env = {"EXPECTATIONS_TARGET": "duckdb", "EXPECTATIONS_DUCKDB": str(tmp_path / "expectations.duckdb")}
    completed = run_integration_dbt(
        tmp_path, env, "compile", "--select", f"tag:{tag}", "--vars", "{expect_compile_errors: true}"
    )
    assert completed.returncode != 0
    assert said in completed.stdout, completed.stdout[-3000:]
