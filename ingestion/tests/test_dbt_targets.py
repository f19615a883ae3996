"""Which warehouse and session `harbor` runs dbt against: the target follows ingestion's destination, PostgreSQL
sessions are in UTC whatever the caller's PGTZ, and a session in another zone stops before building anything."""

from __future__ import annotations

import subprocess

import duckdb
import pytest

from ingestion import cli
from ingestion.transform import dbt_env, dbt_executable, default_target


@pytest.mark.parametrize(
    ("environment", "target"),
    [
        ({}, "dev"),
        ({"HARBOR_DESTINATION": "postgres"}, "pg"),
        ({"HARBOR_DESTINATION": "POSTGRES"}, "pg"),
        ({"HARBOR_DESTINATION": "postgres", "HARBOR_TARGET": "ci"}, "ci"),
        ({"HARBOR_DESTINATION": "duckdb", "HARBOR_TARGET": "pg"}, "pg"),
    ],
)
def test_the_dbt_target_follows_the_ingestion_destination_unless_one_is_set(environment, target, settings, monkeypatch):
    for name in ("HARBOR_DESTINATION", "HARBOR_TARGET"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert default_target() == target
    assert dbt_env(settings)["HARBOR_TARGET"] == target


def test_dbt_sessions_are_in_utc_and_one_in_another_zone_stops_before_building(settings, pg_env, monkeypatch):
    monkeypatch.setenv("PGTZ", "America/New_York")
    monkeypatch.setenv("HARBOR_TARGET", "pg")
    env = dbt_env(settings)
    assert env["PGTZ"] == "UTC"  # the caller's zone would shift every timestamp staging casts

    command = [dbt_executable(), "run", "--select", "stg_fx__exchange_rates"]
    by_hand = subprocess.run(
        command, cwd=settings.project_dir, env={**env, "PGTZ": "America/New_York"}, capture_output=True, text=True
    )
    assert by_hand.returncode != 0
    assert "time zone is America/New_York, not UTC" in by_hand.stdout
    assert "START sql" not in by_hand.stdout  # stopped before the model

    # UTC by another name is UTC: the hook reads the zone's offsets, not its name
    in_utc = subprocess.run(
        command, cwd=settings.project_dir, env={**env, "PGTZ": "Etc/Universal"}, capture_output=True, text=True
    )
    assert in_utc.returncode == 0, in_utc.stdout[-3000:]


@pytest.mark.usefixtures("harbor_cli_env")
def test_build_scores_the_artifacts_of_the_target_path_it_was_given(settings, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARBOR_TARGET", "ci")
    settings.warehouse.parent.mkdir(parents=True)
    duckdb.connect(str(settings.warehouse)).close()  # no raw tables: staging reads empty stand-ins
    elsewhere = tmp_path / "elsewhere"

    assert cli.main(["build", "--select", "stg_fx__exchange_rates", "--target-path", str(elsewhere)]) == 0
    printed = capsys.readouterr().out
    assert "no score" not in printed
    assert "quality: 100.0% of tests passed" in printed
