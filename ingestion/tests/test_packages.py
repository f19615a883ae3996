"""`dbt deps` runs on demand before dbt commands, so a fresh clone builds without a manual step."""

from __future__ import annotations

from ingestion.settings import PROJECT_DIR, Settings
from ingestion.transform import ensure_packages


def test_local_packages_are_installed_when_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    monkeypatch.setenv("DBT_LOG_PATH", str(tmp_path / "logs"))
    project = tmp_path / "project"
    project.mkdir()
    (project / "dbt_project.yml").write_text('name: probe\nversion: "1.0"\nconfig-version: 2\nprofile: probe\n')
    package = PROJECT_DIR / "packages" / "harbor_expectations"
    (project / "packages.yml").write_text(f"packages:\n  - local: {package}\n")
    settings = Settings(project, tmp_path / "w.duckdb", tmp_path, "sqlite:///unused")

    ensure_packages(settings)
    installed = project / "dbt_packages" / "harbor_expectations"
    assert (installed / "macros" / "column_values.sql").exists()

    # Installed: nothing to do, even when dbt could not run.
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr("ingestion.transform.dbt_executable", lambda: "/nonexistent/dbt")
    ensure_packages(settings)
