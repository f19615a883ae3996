"""`dbt deps` runs on demand before dbt commands, so a fresh clone builds without a manual step."""

from __future__ import annotations

import errno
import fcntl
import re
import threading
from pathlib import Path

import pytest

from ingestion.settings import PROJECT_DIR, Settings
from ingestion.transform import ensure_packages


def _probe_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """A project of its own whose packages.yml names Harbor's local package, not installed yet."""
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "logs"))
    project = tmp_path / "project"
    project.mkdir()
    (project / "dbt_project.yml").write_text('name: probe\nversion: "1.0"\nconfig-version: 2\nprofile: probe\n')
    package = PROJECT_DIR / "packages" / "harbor_expectations"
    (project / "packages.yml").write_text(f"packages:\n  - local: {package}\n")
    return Settings(project, tmp_path / "w.duckdb", tmp_path, "sqlite:///unused")


def _dbt_deps_recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """The dbt commands `ensure_packages` runs, recorded instead of run (the real install is the first test's)."""
    commands: list[tuple[str, ...]] = []
    monkeypatch.setattr("ingestion.transform.run_dbt", lambda settings, *args: commands.append(args))
    return commands


def test_local_packages_are_installed_when_missing(tmp_path, monkeypatch):
    settings = _probe_project(tmp_path, monkeypatch)
    project = settings.project_dir

    ensure_packages(settings)
    installed = project / "dbt_packages" / "harbor_expectations"
    assert (installed / "macros" / "column_values.sql").exists()

    # Installed: nothing to do, even when dbt could not run.
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr("ingestion.transform.dbt_executable", lambda: "/nonexistent/dbt")
    ensure_packages(settings)


def test_packages_are_installed_by_one_process_at_a_time(tmp_path, monkeypatch):
    """Two dbt commands started at once on a fresh clone (tests in parallel) both ran `dbt deps`: one deleted the
    package folder while the other read it. The check and the install wait for whoever holds packages.yml, and
    find the package installed when it is their turn."""
    settings = _probe_project(tmp_path, monkeypatch)
    installed = settings.project_dir / "dbt_packages" / "harbor_expectations"
    installs = _dbt_deps_recorded(monkeypatch)
    waiting = threading.Thread(target=ensure_packages, args=(settings,))
    with (settings.project_dir / "packages.yml").open() as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        waiting.start()
        waiting.join(timeout=1.0)
        assert waiting.is_alive() and installs == []
        installed.mkdir(parents=True)  # what the process holding the lock installs meanwhile
    waiting.join(timeout=10)
    assert not waiting.is_alive() and installs == []


def test_packages_are_installed_where_the_file_system_cannot_lock(tmp_path, monkeypatch):
    """Some network mounts refuse `flock`: the install goes on without the lock rather than failing every dbt
    command."""
    settings = _probe_project(tmp_path, monkeypatch)
    installs = _dbt_deps_recorded(monkeypatch)

    def cannot_lock(*args: object) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr("ingestion.transform.fcntl.flock", cannot_lock)
    ensure_packages(settings)
    assert installs == [("deps",)]


def test_the_changed_scope_narrows_no_aggregate_expectation():
    """Narrowed to the rows a build wrote, an aggregate (a sum, a count, a mean) would judge the change, not the
    table: the tests `harbor_row_level_tests` lists must be built on rows, none on an aggregate."""
    listed = re.search(
        r"macro harbor_row_level_tests\(\).*?\[(.*?)\]", (PROJECT_DIR / "macros" / "test_scope.sql").read_text(), re.S
    )
    names = re.findall(r"'(\w+)'", listed.group(1))
    macros = "".join(p.read_text() for p in (PROJECT_DIR / "packages" / "harbor_expectations" / "macros").glob("*.sql"))
    bodies = dict(re.findall(r"{% test (\w+)\(.*?%}(.*?){% endtest %}", macros, re.S))
    expectations = [name for name in names if name.startswith("expect_")]
    assert expectations and set(expectations) <= set(bodies)
    assert [name for name in expectations if "expectation_aggregate" in bodies[name]] == []
    # Most table-level expectations use no `expectation_aggregate` (`within_n_stdevs`, the distinct-value sets,
    # `increasing`, the other-table counts): a test adding one of them to the list passed the check above. The
    # list is this one, each judging every row alone (or, unique, a key among the rows it sees), by decision.
    assert sorted(names) == sorted(
        [
            *("not_null", "unique", "accepted_values", "relationships"),
            *("expect_column_values_to_not_be_null", "expect_column_values_to_be_null"),
            *("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"),
            "expect_select_column_values_to_be_unique_within_record",
            *("expect_column_values_to_be_between", "expect_column_values_to_be_in_set"),
            *("expect_column_values_to_not_be_in_set", "expect_column_values_to_match_regex"),
            *("expect_column_values_to_not_match_regex", "expect_column_values_to_match_like_pattern"),
            *("expect_column_values_to_not_match_like_pattern", "expect_column_value_lengths_to_be_between"),
            *("expect_column_value_lengths_to_equal", "expect_column_pair_values_to_be_equal"),
        ]
    )
