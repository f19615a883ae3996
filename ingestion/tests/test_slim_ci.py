"""The pull-request check in a scratch copy of the project: it builds what a change touches and nothing else."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from ingestion import slim_ci
from ingestion.demo import shop
from ingestion.pipeline import ingest_shop
from ingestion.settings import PROJECT_DIR, Settings

PAYMENTS_MODEL = "models/staging/shop/stg_shop__payments.sql"
# stg_shop__payments feeds int_orders__amounts -> fct_orders -> dim_customers, and nothing else.
PAYMENTS_NODE = "model.harbor.stg_shop__payments"


def model_and_descendants(manifest_path: Path, unique_id: str) -> list[str]:
    """Model names downstream of `unique_id` (itself included), walked from production's manifest."""
    child_map = json.loads(manifest_path.read_text())["child_map"]
    seen, stack = {unique_id}, [unique_id]
    while stack:
        for child in child_map.get(stack.pop(), []):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return sorted(node.split(".")[-1] for node in seen if node.startswith("model."))


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, slim_ci.CiPaths]]:
    """A git repository copied from this project (branch main), a tiny production warehouse and its state."""
    root = tmp_path_factory.mktemp("slim_ci")
    repo = root / "repo"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=PROJECT_DIR, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        if (PROJECT_DIR / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_DIR / name, repo / name)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "production")
    _git(repo, "checkout", "-q", "-b", "feature")

    data_dir = root / "data"
    data_dir.mkdir()
    settings = Settings(repo, root / "warehouse" / "harbor.duckdb", data_dir, f"sqlite:///{data_dir / 'shop.sqlite'}")
    shop.create_shop(settings.shop_url, seed=5, scale=0.2)
    ingest_shop(settings)
    paths = slim_ci.CiPaths(
        state_dir=root / "state" / "prod",
        work_dir=repo / "target" / "ci-pr",
        pr_warehouse=root / "warehouse" / "pr" / "pr_test" / "harbor.duckdb",
        summary=root / "summary.md",
    )
    slim_ci.save_prod_state(settings, paths.state_dir)
    assert {p.name for p in paths.state_dir.iterdir()} >= {"manifest.json", "run_results.json"}
    yield settings, paths


@pytest.fixture
def pr(scratch: tuple[Settings, slim_ci.CiPaths]) -> Iterator[tuple[Settings, slim_ci.CiPaths]]:
    settings, _ = scratch
    yield scratch
    _git(settings.project_dir, "checkout", "-q", "--", ".")
    _git(settings.project_dir, "clean", "-q", "-f", "--", "ingestion", "models")


def test_a_changed_staging_model_builds_exactly_it_and_its_descendants(pr):
    settings, paths = pr
    model = settings.project_dir / PAYMENTS_MODEL
    _edit(
        model,
        "        lower(status) as payment_status,\n",
        "        lower(status) as payment_status,\n        amount > 0 as is_positive,\n",
    )
    report = slim_ci.run_pr_check(settings, paths, base="main", pytest_args=None)

    assert report.ok, slim_ci.render_summary(report)
    assert report.changed_files == [PAYMENTS_MODEL]
    expected = model_and_descendants(paths.state_dir / "manifest.json", PAYMENTS_NODE)
    assert {"stg_shop__payments", "int_orders__amounts", "fct_orders", "dim_customers"} <= set(expected)
    assert "stg_shop__orders" not in expected
    assert report.built_models == expected
    assert report.selected_models == expected  # nothing upstream or unrelated, not even skipped
    tests = [n for n in report.nodes if n.resource_type == "test"]
    assert tests and all(n.status == "pass" for n in tests)
    assert [s.name for s in report.steps if s.skipped] == [
        "ruff (changed Python)",
        "yamllint (changed YAML)",
        "Python tests (pytest)",
    ]
    assert report.freshness and set(report.freshness.values()) == {"pass"}

    with duckdb.connect(str(paths.pr_warehouse), read_only=True) as conn:
        kinds = dict(conn.execute("select table_name, table_type from information_schema.tables").fetchall())
        (positive,) = conn.execute("select count(*) from staging.stg_shop__payments where is_positive").fetchone()
    # The PR built its own tables; the unchanged parents stayed views over production.
    assert kinds["stg_shop__payments"] == kinds["fct_orders"] == "BASE TABLE"
    assert kinds["stg_shop__orders"] == kinds["stg_shop__customers"] == "VIEW"
    assert positive > 0  # rebuilt in full: the changed logic ran on every row
    # Deployed, the model runs incrementally on production's table, whose rows get the new column null.
    rehearsal = next(s for s in report.steps if s.name.startswith("deploy rehearsal"))
    assert rehearsal.ok and rehearsal.detail.startswith(f"{len(expected)} model(s) run")
    assert "`stg_shop__payments` gains `is_positive` on deploy, null in the rows it holds" in rehearsal.detail
    summary = paths.summary.read_text()
    assert "passed" in summary and "`stg_shop__payments` (model): success" in summary
    assert "stg_shop__orders" not in summary


def test_an_incremental_branch_the_deploy_would_fail_on_fails_the_check(pr):
    """The PR rebuilt a changed incremental model in full, never running its `is_incremental()` branch: a change
    breaking only that branch passed, and the deploy, which runs it on production's table, failed."""
    settings, paths = pr
    model = settings.project_dir / PAYMENTS_MODEL
    _edit(
        model, "where {{ loaded_since_last_run() }}", "where {{ loaded_since_last_run() }} and no_such_column is null"
    )
    report = slim_ci.run_pr_check(settings, paths, base="main", lint=False, freshness=False, pytest_args=None)

    assert not report.ok
    steps = {s.name: s for s in report.steps}
    rehearsal = steps["deploy rehearsal (no full refresh)"]
    assert not rehearsal.ok
    assert "failed: stg_shop__payments" in rehearsal.detail and "no_such_column" in rehearsal.detail
    assert steps["dbt build (state:modified+)"].ok  # built in full, the model never reads the broken branch
    assert "| deploy rehearsal (no full refresh) | **fail** |" in paths.summary.read_text()


def test_a_change_that_breaks_a_data_test_fails_the_check(pr, monkeypatch):
    settings, paths = pr
    model = settings.project_dir / PAYMENTS_MODEL
    # Payments twice: the model builds, its unique test on payment_id fails. Only those above the unit test's ids
    # (1 to 3): there the model's unit test would fail first and skip the model and its data tests.
    _edit(model, "select * from final", "select * from final\nunion all\nselect * from final where payment_id > 3")
    monkeypatch.setenv("HARBOR_PROJECT_DIR", str(settings.project_dir))
    monkeypatch.setenv("HARBOR_WAREHOUSE", str(settings.warehouse))
    monkeypatch.setenv("HARBOR_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("HARBOR_PROD_STATE", str(paths.state_dir))
    monkeypatch.setenv("HARBOR_PR_ID", "broken")

    code = slim_ci.main(["pr", "--base", "main", "--no-pytest", "--no-freshness"])

    assert code == 1
    run_paths = slim_ci.CiPaths.for_settings(Settings.from_env())
    summary = run_paths.summary.read_text()
    assert "FAILED" in summary
    assert "`unique_stg_shop__payments_payment_id" in summary
    assert run_paths.pr_warehouse.parent.name == "pr_broken"


def test_a_changed_seed_and_snapshot_build_onto_copies_of_production(pr):
    """Both were views over production in the PR file: dbt cannot seed over a view, nor merge a snapshot into one,
    so every such PR failed."""
    settings, paths = pr
    seed = settings.project_dir / "seeds" / "order_statuses.csv"
    _edit(seed, "returned,closed,false,true,6", "returned,closed,false,true,7")
    snapshot = settings.project_dir / "snapshots" / "snp_shop__products.sql"
    _edit(snapshot, "{% endsnapshot %}", "-- reviewed\n{% endsnapshot %}")
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        (history,) = conn.execute("select count(*) from snapshots.snp_shop__products").fetchone()

    report = slim_ci.run_pr_check(settings, paths, base="main", lint=False, freshness=False, pytest_args=None)

    assert report.ok, slim_ci.render_summary(report)
    built = {n.name: n.status for n in report.nodes if n.resource_type in ("seed", "snapshot")}
    assert built == {"order_statuses": "success", "snp_shop__products": "success"}
    with duckdb.connect(str(paths.pr_warehouse), read_only=True) as conn:
        kinds = dict(conn.execute("select table_name, table_type from information_schema.tables").fetchall())
        (pr_history,) = conn.execute("select count(*) from snapshots.snp_shop__products").fetchone()
    assert kinds["snp_shop__products"] == kinds["order_statuses"] == "BASE TABLE"
    assert pr_history == history  # production's history, merged into, not a new one


def test_a_seed_that_gains_a_column_fails_the_rehearsal_as_it_fails_the_deploy(pr):
    """The rehearsal was `dbt run`, which loads no seed, and the build seeds with `--full-refresh`, which
    recreates the table: a seed that gained a column passed, and the deploy's `dbt seed` into production's table
    failed ("ERROR loading seed file")."""
    settings, paths = pr
    seed = settings.project_dir / "seeds" / "countries.csv"
    lines = seed.read_text().splitlines()
    seed.write_text("\n".join([lines[0] + ",vat_zone", *(f"{line},standard" for line in lines[1:] if line)]) + "\n")
    properties = settings.project_dir / "seeds" / "_seeds.yml"
    _edit(
        properties,
        "        currency_code: varchar(3)\n",
        "        currency_code: varchar(3)\n        vat_zone: varchar(16)\n",
        1,
    )
    _edit(
        properties,
        "                field: currency_code\n",
        "                field: currency_code\n      - name: vat_zone\n        description: The VAT rate band.\n",
        1,  # countries' last column
    )

    report = slim_ci.run_pr_check(settings, paths, base="main", lint=False, freshness=False, pytest_args=None)

    assert not report.ok
    rehearsal = next(s for s in report.steps if s.name == "deploy rehearsal (no full refresh)")
    assert not rehearsal.ok and "failed: countries (" in rehearsal.detail
    assert _dbt_build_step(report).ok  # recreated by the full refresh, the seed loads


def test_a_changed_macro_no_node_names_builds_the_whole_project(pr):
    """A materialization (here the test one) is no node's dependency: state:modified selected nothing and the
    check passed with the change never run."""
    settings, paths = pr
    macro = settings.project_dir / "macros" / "test_materialization.sql"
    _edit(macro, "{%- endmaterialization -%}", "{#- reviewed -#}\n{%- endmaterialization -%}")

    report = slim_ci.run_pr_check(settings, paths, base="main", lint=False, freshness=False, pytest_args=None)

    assert report.ok, slim_ci.render_summary(report)
    whole = next(s for s in report.steps if s.name == "whole project built")
    assert "materialization_test_default" in whole.detail
    assert "dbt build (whole project)" in [s.name for s in report.steps]  # not "state:modified+": it was not
    production = json.loads((paths.state_dir / "manifest.json").read_text())["nodes"]
    assert report.built_models == sorted(n["name"] for n in production.values() if n["resource_type"] == "model")


def test_a_macro_called_only_in_incremental_branches_rehearses_its_callers(pr):
    """dbt records a model's macros while parsing it, outside `is_incremental()`: a macro called only there was
    no model's dependency, so the check ran no model and passed, and the deploy failed in every staging model."""
    settings, paths = pr
    macro = settings.project_dir / "macros" / "staging.sql"
    _edit(
        macro,
        "    {{ loaded_at_column }} >= {{ window_start }}\n",
        "    {{ loaded_at_column }} >= {{ window_start }} and and\n",
    )

    report = slim_ci.run_pr_check(settings, paths, base="main", lint=False, freshness=False, pytest_args=None)

    assert not report.ok
    steps = {s.name: s for s in report.steps}
    assert "whole project built" not in steps  # the callers are known: no need for everything
    callers = steps["changed macros' callers built"].detail
    staging = [
        "stg_events__events",
        "stg_fx__exchange_rates",
        *(f"stg_shop__{t}" for t in ("customers", "order_items", "orders", "payments", "products")),
    ]
    assert all(model in callers for model in staging) and "`loaded_since_last_run`" in callers
    rehearsal = steps["deploy rehearsal (no full refresh)"]
    assert not rehearsal.ok and all(f"{model} (" in rehearsal.detail for model in staging)
    assert "stg_shop__payments" in report.built_models  # in full: the incremental branch is not read
    assert "fct_payments" in report.selected_models  # downstream of the callers
    # stg_shop__orders' unit test of an incremental run fails too, and skips it in the build.
    failed = {n.name for n in report.nodes if n.status in slim_ci.FAILED_STATUSES}
    assert "stg_shop__orders.stg_shop__orders_late_rows_land_later_loads_replace" in failed
    assert _dbt_build_step(report).name == "dbt build (state:modified+ and the changed macros' callers+)"


def test_a_changed_generic_test_builds_its_tests_not_the_whole_project(pr):
    """Every macro of a changed file counted as changed: one generic test changed in column_values.sql built the
    whole project and listed its 17 untouched neighbours as "changed macros no model depends on"."""
    settings, paths = pr
    macros = settings.project_dir / "packages" / "harbor_expectations" / "macros" / "column_values.sql"
    _edit(
        macros,
        "        mostly=none) %}\n    {{ harbor_expectations.expectation_rows(model,\n"
        "        harbor_expectations.expectation_regex_match(",
        "        mostly=none) %}\n    {#- reviewed -#}\n    {{ harbor_expectations.expectation_rows(model,\n"
        "        harbor_expectations.expectation_regex_match(",
    )

    report = slim_ci.run_pr_check(settings, paths, base="main", lint=False, freshness=False, pytest_args=None)

    assert report.ok, slim_ci.render_summary(report)
    assert "whole project built" not in {s.name for s in report.steps}
    assert report.built_models == []
    tests = {n.name: n.status for n in report.tests}
    assert tests and all(name.startswith("harbor_expectations_expect_column_values_to_match_regex") for name in tests)
    assert set(tests.values()) == {"pass"}


def test_changed_macros_are_those_whose_code_differs_from_production_s_or_every_one_of_a_changed_file():
    def macro(name: str, sql: str) -> dict:
        return {"name": name, "package_name": "harbor", "original_file_path": "macros/m.sql", "macro_sql": sql}

    manifest = {
        "metadata": {"project_name": "harbor"},
        "macros": {"macro.harbor.a": macro("a", "new"), "macro.harbor.b": macro("b", "same")},
    }
    production = {"macro.harbor.b": macro("b", "same")}
    assert slim_ci.changed_macros(manifest, {"macros/m.sql"}, production) == {"macro.harbor.a"}
    assert slim_ci.changed_macros(manifest, {"macros/m.sql"}, None) == {"macro.harbor.a", "macro.harbor.b"}
    assert slim_ci.changed_macros(manifest, {"macros/other.sql"}, production) == set()


def test_a_broken_on_run_start_hook_macro_fails_the_check(pr):
    """A macro only the on-run-start hook calls counted as reached (the hooks are `operation` nodes): nothing was
    built, the check passed, and every production build then stopped at the hook."""
    settings, paths = pr
    macro = settings.project_dir / "macros" / "stamps.sql"
    _edit(macro, "{%- if zone[1] != 0 or zone[2] != 0 -%}", "{%- if zone[1] != 0 or zone[2] != 0 or true -%}")

    report = slim_ci.run_pr_check(settings, paths, base="main", lint=False, freshness=False, pytest_args=None)

    assert not report.ok
    steps = {s.name: s for s in report.steps}
    assert "harbor_check_session_zone" in steps["whole project built"].detail
    assert not _dbt_build_step(report).ok


def test_a_broken_on_run_end_hook_macro_fails_the_build_and_the_freshness_check(pr):
    """The on-run-end hook fails after every node passed: dbt exits 1, and freshness, having results, passed."""
    settings, paths = pr
    macro = settings.project_dir / "macros" / "observability" / "history.sql"
    _edit(
        macro,
        "{%- do statements.append(harbor_observability_replace_nodes(schema, now)) -%}",
        "{%- do statements.append(harbor_observability_replace_nodes(schema, now)) -%}\n"
        "    {%- do statements.append('select * from no_such_history_table') -%}",
    )

    report = slim_ci.run_pr_check(settings, paths, base="main", lint=False, pytest_args=None)

    assert not report.ok
    steps = {s.name: s for s in report.steps}
    assert "harbor_observability_on_run_end" in steps["whole project built"].detail
    assert not _dbt_build_step(report).ok
    freshness = steps["dbt source freshness"]
    assert not freshness.ok and "no_such_history_table" in freshness.detail


def test_a_changed_var_in_dbt_project_yml_builds_the_whole_project(pr):
    """dbt's state:modified does not compare vars: a var no model could use passed with nothing built, and
    production's fct_sessions then failed."""
    settings, paths = pr
    project = settings.project_dir / "dbt_project.yml"
    _edit(
        project, "  staging_lookback_hours: 1\n", "  staging_lookback_hours: 1\n  session_inactivity_minutes: thirty\n"
    )

    report = slim_ci.run_pr_check(settings, paths, base="main", lint=False, freshness=False, pytest_args=None)

    assert not report.ok
    steps = {s.name: s for s in report.steps}
    assert steps["whole project built"].detail.startswith("dbt_project.yml changed")
    assert "fct_sessions" in _dbt_build_step(report).detail
    assert any(n.name.startswith("fct_sessions") and n.status in slim_ci.FAILED_STATUSES for n in report.nodes)
    assert "| whole project built | pass | dbt_project.yml changed" in paths.summary.read_text()


def test_a_changed_production_target_in_profiles_yml_builds_the_whole_project_with_it(pr):
    """The check ran the `pr` target, whose settings were its own, and only dbt_project.yml built everything: a
    session TimeZone production's target could not open passed, and every production build then failed."""
    settings, paths = pr
    profiles = settings.project_dir / "profiles.yml"
    _edit(profiles, "settings: {TimeZone: UTC}", "settings: {TimeZone: Mars/Olympus}", 1)  # dev's, the first

    report = slim_ci.run_pr_check(settings, paths, base="main", lint=False, freshness=False, pytest_args=None)

    assert not report.ok
    steps = {s.name: s for s in report.steps}
    assert steps["whole project built"].detail.startswith("profiles.yml changed")
    build = _dbt_build_step(report)
    assert build.name == "dbt build (whole project)" and not build.ok and "Mars/Olympus" in build.detail


def test_a_mart_s_new_column_fires_its_schema_changes_test_against_production_s_baseline(pr):
    """The PR file had no `observability` schema: the column-drift test found no baseline and never fired."""
    settings, paths = pr
    model = settings.project_dir / "models" / "marts" / "fct_orders.sql"
    _edit(
        model,
        "        {{ run_timestamp() }} as _loaded_at\n\n    from scoped_orders",
        "        1 as review_flag,\n        {{ run_timestamp() }} as _loaded_at\n\n    from scoped_orders",
    )
    properties = settings.project_dir / "models" / "marts" / "_marts__models.yml"
    _edit(
        properties,
        "        data_tests: [unique, not_null]\n",
        "        data_tests: [unique, not_null]\n      - name: review_flag\n        data_type: integer\n",
        1,  # fct_orders' first column
    )
    baseline = "select count(*) from observability.schema_columns_snapshot"
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        (production_rows,) = conn.execute(baseline).fetchone()

    report = slim_ci.run_pr_check(settings, paths, base="main", lint=False, freshness=False, pytest_args=None)

    drift = {n.name: n.status for n in report.nodes if n.name.startswith("schema_changes_fct_orders")}
    assert list(drift.values()) == ["warn"], slim_ci.render_summary(report)
    assert f"- `{next(iter(drift))}`: **warn**" in paths.summary.read_text()
    with duckdb.connect(str(settings.warehouse), read_only=True) as conn:
        assert conn.execute(baseline).fetchone() == (production_rows,)  # the PR wrote into its copy only


def test_renaming_a_contracted_mart_column_fails_the_check(pr):
    """Consumers of a mart break when a column is renamed: dbt only warned, and the summary said passed."""
    settings, paths = pr
    model = settings.project_dir / "models" / "marts" / "fct_payments.sql"
    _edit(model, "as payment_method,", "as pay_method,")
    properties = settings.project_dir / "models" / "marts" / "_marts__models.yml"
    _edit(properties, "      - name: payment_method\n", "      - name: pay_method\n")

    report = slim_ci.run_pr_check(settings, paths, base="main", lint=False, freshness=False, pytest_args=None)

    assert not report.ok
    assert "Breaking change to contracted, unversioned model fct_payments" in (report.dbt_error or "")


def test_a_python_or_docs_change_builds_no_model(pr):
    settings, paths = pr
    (settings.project_dir / "README.md").write_text("# Harbor\n\nA docs-only change.\n")
    module = settings.project_dir / "ingestion" / "settings.py"
    _edit(module, "Where Harbor keeps things.", "Where Harbor keeps its things.")

    report = slim_ci.run_pr_check(settings, paths, base="main", freshness=False, pytest_args=None)

    assert report.ok, slim_ci.render_summary(report)
    assert report.changed_files == ["README.md", "ingestion/settings.py"]
    assert report.nodes == []
    ruff = next(s for s in report.steps if s.name.startswith("ruff"))
    assert not ruff.skipped and ruff.detail == "ingestion/settings.py"
    assert "nothing was built" in paths.summary.read_text()


def test_a_failing_lint_names_the_first_violations_with_their_rule_codes(pr):
    """A failing lint step listed the file names only: what was wrong was in the job's log alone."""
    settings, paths = pr
    analysis = settings.project_dir / "analyses" / "order_status_funnel.sql"
    _edit(analysis, "orders as (", "orders  as (", 1)
    (settings.project_dir / "ingestion" / "lint_probe.py").write_text("import os\n")
    hooks = settings.project_dir / ".pre-commit-config.yaml"
    hooks.write_text(hooks.read_text() + "extra:  1\n")

    report = slim_ci.run_pr_check(settings, paths, base="main", freshness=False, pytest_args=None)

    steps = {s.name: s for s in report.steps}
    sql, python, yaml = (
        steps[f"{n} (changed {k})"] for n, k in (("sqlfluff lint", "SQL"), ("ruff", "Python"), ("yamllint", "YAML"))
    )
    assert not (sql.ok or python.ok or yaml.ok)
    assert "analyses/order_status_funnel.sql:4:7 LT01 Expected only single space" in sql.detail
    assert "ingestion/lint_probe.py:1:8 F401 `os` imported but unused" in python.detail
    assert ".pre-commit-config.yaml:" in yaml.detail and " colons too many spaces after colon" in yaml.detail
    summary = paths.summary.read_text()
    assert "LT01" in summary and "F401" in summary and "colons" in summary


def test_a_project_that_does_not_compile_says_why_in_the_summary(pr):
    """dbt stops at parse time and writes no run results: the summary said "No dbt node changed: nothing was
    built", and the error was only in the console log."""
    settings, paths = pr
    (settings.project_dir / "models" / "marts" / "broken_mart.sql").write_text(
        "select * from {{ ref('no_such_model') }}\n"
    )
    report = slim_ci.run_pr_check(settings, paths, base="main", lint=False, pytest_args=None)

    assert not report.ok
    summary = paths.summary.read_text()
    assert "No dbt node changed" not in summary
    assert "dbt stopped before building anything:" in summary and "no_such_model" in summary
    build, freshness = (next(s for s in report.steps if s.name.startswith(n)) for n in ("dbt build", "dbt source"))
    assert not build.ok and "no_such_model" in build.detail
    assert not freshness.ok and freshness.detail.startswith("could not run:") and "no_such_model" in freshness.detail


def test_dbt_s_first_error_is_read_from_a_text_or_a_json_log(tmp_path):
    message = "Compilation Error\n  Model 'model.harbor.x' depends on a node named 'y' which was not found"
    text_log = tmp_path / "text.log"
    text_log.write_text(
        "\x1b[0m14:00:00.000001 [info ] [MainThread]: Running with dbt=1.11.16\n"
        "\x1b[0m14:00:01.000001 [error] [MainThread]: Encountered an error:\n"
        + message
        + "\n\x1b[0m14:00:01.000002 [debug] [MainThread]: Command end result\n"
    )
    json_log = tmp_path / "json.log"
    event = {"info": {"level": "error", "msg": f"Encountered an error:\n{message}"}}
    json_log.write_text(json.dumps({"info": {"level": "info", "msg": "Running"}}) + "\n" + json.dumps(event) + "\n")
    expected = "Compilation Error Model 'model.harbor.x' depends on a node named 'y' which was not found"
    assert slim_ci.first_dbt_error(text_log) == expected
    assert slim_ci.first_dbt_error(json_log) == expected
    assert slim_ci.first_dbt_error(text_log, offset=text_log.stat().st_size) is None


def test_changed_files_are_routed_to_the_right_linters():
    files = ["models/marts/fct_orders.sql", "macros/staging.sql", "ingestion/cli.py", "README.md", "tests/t.sql"]
    assert slim_ci.sql_to_lint(files) == ["models/marts/fct_orders.sql", "tests/t.sql"]
    assert slim_ci.python_to_lint(files) == ["ingestion/cli.py"]
    assert slim_ci.pr_slug("Feature/Add-Refunds #12") == "pr_feature_add_refunds_12"
    assert slim_ci.pr_slug("") == "pr_local"


def test_changed_files_with_non_ascii_or_quoted_names_are_seen_as_they_are_named(tmp_path):
    """git quoted such names ("ingestion/b\\303\\244d.py"): they were neither linted nor seen as changed."""
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "README.md").write_text("# Harbor\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "production")
    _git(tmp_path, "checkout", "-q", "-b", "feature")
    (tmp_path / "ingestion").mkdir()
    (tmp_path / "ingestion" / "bäd.py").write_text("import os\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "committed")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / 'it\'s "new".sql').write_text("select 1 as id\n")  # untracked

    files = slim_ci.changed_files(tmp_path, "main")

    assert files == ["ingestion/bäd.py", 'models/it\'s "new".sql']
    assert slim_ci.python_to_lint(files) == ["ingestion/bäd.py"]
    assert slim_ci.sql_to_lint(files) == ['models/it\'s "new".sql']


def test_missing_production_state_is_an_error_not_a_failed_check(scratch, tmp_path):
    settings, paths = scratch
    missing = slim_ci.CiPaths(tmp_path / "none", paths.work_dir, paths.pr_warehouse, paths.summary)
    with pytest.raises(slim_ci.CiError, match="make prod-state"):
        slim_ci.run_pr_check(settings, missing, base="main", lint=False, pytest_args=None)


def test_production_state_of_another_commit_than_the_base_is_refused(scratch, tmp_path):
    """prod.json's commit was never read: state older than the base made main's own later changes the PR's."""
    settings, paths = scratch
    state = tmp_path / "state"
    shutil.copytree(paths.state_dir, state)
    saved = json.loads((state / "prod.json").read_text())
    (state / "prod.json").write_text(json.dumps({**saved, "commit": "f" * 40}))
    base_commit = _git_output(settings.project_dir, "rev-parse", "main")
    elsewhere = slim_ci.CiPaths(state, paths.work_dir, paths.pr_warehouse, paths.summary)

    with pytest.raises(slim_ci.CiError) as refused:
        slim_ci.run_pr_check(settings, elsewhere, base="main", lint=False, freshness=False, pytest_args=None)

    message = str(refused.value)
    assert f"commit {'f' * 12}" in message and f"main ({base_commit[:12]})" in message
    assert "run `make prod-state` on main (or `make prod-state REF=main`)" in message


def test_prod_state_refuses_uncommitted_changes_to_the_dbt_project(pr, tmp_path):
    """`make prod-state` on a dirty tree saved the uncommitted code as production's."""
    settings, _ = pr
    model = settings.project_dir / PAYMENTS_MODEL
    model.write_text(model.read_text() + "\n-- not committed\n")
    (settings.project_dir / "models" / "marts" / "new_mart.sql").write_text("select 1 as id\n")
    elsewhere = Settings(settings.project_dir, tmp_path / "none.duckdb", settings.data_dir, settings.shop_url)

    with pytest.raises(slim_ci.CiError, match="uncommitted changes to the dbt project") as refused:
        slim_ci.save_prod_state(elsewhere, tmp_path / "state")

    assert PAYMENTS_MODEL in str(refused.value) and "models/marts/new_mart.sql" in str(refused.value)
    assert not (tmp_path / "state").exists()


def test_uncommitted_changes_are_named_as_they_are_even_non_ascii_quoted_or_renamed(tmp_path):
    """git quoted such names ("models/b\\303\\244d.sql") and showed a rename as `old -> new`: the refusal named
    files that are not there."""
    _git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "old.sql").write_text("select 1 as id\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "production")
    _git(tmp_path, "mv", "models/old.sql", "models/renamed.sql")
    (tmp_path / "models" / "bäd.sql").write_text("select 2 as id\n")
    (tmp_path / "models" / 'it\'s "new".sql').write_text("select 3 as id\n")

    with pytest.raises(slim_ci.CiError, match="uncommitted changes to the dbt project") as refused:
        slim_ci.refuse_uncommitted_project_changes(tmp_path)

    shown = str(refused.value).split(" (", 1)[1].split("): ", 1)[0]
    assert sorted(shown.split(", ")) == ["models/bäd.sql", 'models/it\'s "new".sql', "models/renamed.sql"]


@pytest.fixture
def branches(scratch: tuple[Settings, slim_ci.CiPaths]) -> Iterator[Path]:
    """Branches made in the scratch repository for one test, deleted after it, `feature` checked out again."""
    repo = scratch[0].project_dir
    before = set(_git_output(repo, "branch", "--format=%(refname:short)").split())
    yield repo
    _git(repo, "checkout", "-q", "-f", "feature")
    for branch in set(_git_output(repo, "branch", "--format=%(refname:short)").split()) - before:
        _git(repo, "branch", "-q", "-D", branch)


def _commit_on_new_branch(repo: Path, branch: str, start: str, path: str, text: str) -> None:
    _git(repo, "checkout", "-q", "-b", branch, start)
    (repo / path).write_text(text)
    _git(repo, "commit", "-q", "-am", f"{branch}: {path}")


def test_a_branch_behind_its_base_is_refused(scratch, branches):
    """Behind the base, the base's newer changes were built and failed as if the PR had made them."""
    settings, paths = scratch
    _commit_on_new_branch(branches, "main-ahead", "main", "README.md", "# Harbor\n\nmain moved on.\n")
    _git(branches, "checkout", "-q", "feature")

    with pytest.raises(slim_ci.CiError, match=r"your branch is behind main-ahead \(\w{12}\): merge or rebase it first"):
        slim_ci.run_pr_check(settings, paths, base="main-ahead", lint=False, freshness=False, pytest_args=None)


def test_ci_s_merge_commit_is_compared_with_the_base_it_merges_into(scratch, branches):
    """CI checks out a merge of the PR into the base; the base may have moved on since: not "behind"."""
    settings, paths = scratch
    _commit_on_new_branch(branches, "pr-head", "main", "README.md", "# Harbor\n\nThe PR's change.\n")
    _commit_on_new_branch(branches, "main-ahead", "main", "README.md", "# Harbor\n\nmain moved on.\n")
    _git(branches, "checkout", "-q", "--detach", "main")
    _git(branches, "merge", "-q", "--no-ff", "-m", "Merge pr-head into main", "pr-head")

    report = slim_ci.run_pr_check(settings, paths, base="main-ahead", lint=False, freshness=False, pytest_args=None)

    assert report.ok, slim_ci.render_summary(report)
    assert report.changed_files == ["README.md"]


def test_a_check_that_cannot_run_rewrites_an_earlier_summary(scratch, tmp_path, monkeypatch):
    """A refused run left the last run's "passed" summary, which CI then posted as this run's verdict."""
    settings, _ = scratch
    monkeypatch.setenv("HARBOR_PROJECT_DIR", str(settings.project_dir))
    monkeypatch.setenv("HARBOR_WAREHOUSE", str(settings.warehouse))
    monkeypatch.setenv("HARBOR_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("HARBOR_PROD_STATE", str(tmp_path / "no-state"))
    summary = slim_ci.CiPaths.for_settings(Settings.from_env()).summary
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text("## Harbor PR check: passed\n")

    code = slim_ci.main(["pr", "--base", "main", "--no-pytest", "--no-freshness"])

    assert code == 2
    lines = summary.read_text().splitlines()
    assert lines[0] == "## Harbor PR check: could not run"
    assert "no production state in" in lines[2] and "run `make prod-state` first" in lines[2]


def test_prod_state_without_a_duckdb_warehouse_says_the_check_compares_with_duckdb(tmp_path, monkeypatch):
    """With HARBOR_DESTINATION=postgres the error sent users to `make demo`, which loads PostgreSQL, in a loop."""
    settings = Settings(PROJECT_DIR, tmp_path / "none.duckdb", tmp_path / "data", "sqlite:///unused")
    monkeypatch.setenv("HARBOR_DESTINATION", "postgres")
    with pytest.raises(slim_ci.CiError, match="compares with a DuckDB production warehouse"):
        slim_ci.save_prod_state(settings, tmp_path / "state")


def _git(repo: Path, *args: str) -> None:
    _git_output(repo, *args)


def _git_output(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=ci@harbor.test", "-c", "user.name=harbor-ci", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_a_production_warehouse_being_written_is_a_clear_error_not_a_traceback(tmp_path):
    """The PR check's exit 1 means "a check failed": a locked or missing production file is a usage error (2)."""
    import sys

    prod = tmp_path / "prod.duckdb"
    with pytest.raises(slim_ci.CiError, match="cannot read the production warehouse"):
        slim_ci.prepare_pr_warehouse(tmp_path / "pr.duckdb", prod)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(prod)!r}); print('open', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "open"
        with pytest.raises(slim_ci.CiError, match="cannot read the production warehouse"):
            slim_ci.prepare_pr_warehouse(tmp_path / "pr.duckdb", prod)
    finally:
        writer.kill()
        writer.wait()


def test_the_summary_lists_built_nodes_without_hooks_and_skipped_tests_apart_from_failed_ones():
    node = slim_ci.NodeResult
    report = slim_ci.PrReport(base="main", changed_files=["models/marts/fct_orders.sql"])
    report.nodes = [
        node("operation.harbor.harbor-on-run-start-0", "operation", "harbor-on-run-start-0", "success"),
        node("model.harbor.fct_orders", "model", "fct_orders", "error", "Binder Error: no column x"),
        node("exposure.harbor.sales_dashboard", "exposure", "sales_dashboard", "no-op"),
        node("test.harbor.unique_fct_orders_order_id", "test", "unique_fct_orders_order_id", "skipped"),
        node("test.harbor.not_null_stg", "test", "not_null_stg", "pass"),
    ]
    summary = slim_ci.render_summary(report)
    assert "1 node(s)" in summary and "- `fct_orders` (model): error (Binder Error: no column x)\n" in summary
    assert "on-run-start" not in summary and "sales_dashboard" not in summary
    assert "Tests: 1 of 2 passed, 1 skipped (upstream of them failed)." in summary
    assert "**skipped**" not in summary


def test_the_summary_counts_unit_tests_as_tests_not_as_built_nodes():
    """A unit test was listed as a built node, and a failed one was missing from the test count."""
    node = slim_ci.NodeResult
    report = slim_ci.PrReport(base="main", changed_files=["models/marts/fct_sessions.sql"])
    report.nodes = [
        node("unit_test.harbor.fct_sessions.splits", "unit_test", "fct_sessions.splits", "fail", "got 2 rows"),
        node("model.harbor.fct_sessions", "model", "fct_sessions", "skipped"),
        node("test.harbor.unique_fct_sessions_session_id", "test", "unique_fct_sessions_session_id", "pass"),
    ]
    summary = slim_ci.render_summary(report)
    assert "1 node(s)" in summary and "(unit_test)" not in summary
    assert "Tests: 1 of 2 passed." in summary and "- `fct_sessions.splits`: **fail** (got 2 rows)" in summary


def test_the_pr_file_copies_production_s_rows_where_asked_and_views_the_rest(tmp_path):
    """What the rehearsal and the snapshots build on must be production's rows: a copy that came out empty
    passed every other check of this file (an incremental model then rehearsed on nothing)."""
    prod, pr_file = tmp_path / "prod" / "harbor.duckdb", tmp_path / "pr" / "harbor.duckdb"
    prod.parent.mkdir()
    with duckdb.connect(str(prod)) as conn:
        conn.execute("create schema staging; create schema snapshots; create schema observability")
        conn.execute("create table staging.stg_a as select range as id from range(3)")
        conn.execute("create table snapshots.snp_a as select range as id from range(5)")
        conn.execute("create table observability.dbt_invocations as select 1 as id")
        conn.execute("create table observability.schema_columns_snapshot as select 'harbor.marts.a' as t")
    copied = frozenset({("staging", "stg_a")})

    # Production's history is not mirrored, but for the schema_changes tests' baseline.
    assert slim_ci.prepare_pr_warehouse(pr_file, prod, copied=copied) == 3
    with duckdb.connect(str(pr_file)) as conn:
        kinds = dict(conn.execute("select table_name, table_type from information_schema.tables").fetchall())
        copy = conn.execute("select id from staging.stg_a order by id").fetchall()
    assert kinds == {"stg_a": "BASE TABLE", "snp_a": "VIEW", "schema_columns_snapshot": "BASE TABLE"}
    assert copy == [(0,), (1,), (2,)]
    with duckdb.connect(str(pr_file)) as conn:  # the view reads production, attached as the pr target does
        conn.execute(f"attach '{prod}' as {slim_ci.PROD_ALIAS} (read_only)")
        assert conn.execute("select count(*) from snapshots.snp_a").fetchone() == (5,)


def test_prod_state_unless_saved_keeps_a_state_of_that_commit_and_builds_nothing(tmp_path, capsys, monkeypatch):
    """The PR workflow restores state from a cache, whose key prefix also matches an older main's: it asks for the
    base's state, which is rebuilt only when the restored one is of another commit."""
    monkeypatch.setenv("HARBOR_WAREHOUSE", str(tmp_path / "no-warehouse.duckdb"))  # a build would stop on it
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
    ).stdout.strip()
    (tmp_path / "prod.json").write_text(json.dumps({"commit": head}))
    args = ["prod-state", "--state-dir", str(tmp_path), "--ref", "HEAD", "--unless-saved"]
    assert slim_ci.main(args) == 0
    assert "is already of HEAD: kept" in capsys.readouterr().out
    (tmp_path / "prod.json").write_text(json.dumps({"commit": "0" * 40}))
    assert slim_ci.main(args) == 2  # built, and refused: there is no production warehouse


def _edit(path: Path, old: str, new: str, count: int = -1) -> None:
    """`old` replaced by `new` in the file, which must hold it: a replace that finds nothing would leave the
    test checking an unchanged project."""
    text = path.read_text()
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, count))


def _dbt_build_step(report: slim_ci.PrReport) -> slim_ci.StepResult:
    """The check's `dbt build` step, whatever it says it built."""
    return next(step for step in report.steps if step.name.startswith("dbt build"))
