"""A tiny dbt project of its own for the observability tests: fast on DuckDB and PostgreSQL alike, with a
failing test, a source with freshness, and Harbor's observability macros copied in."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ingestion.settings import PROJECT_DIR
from ingestion.transform import dbt_executable

DBT_PROJECT = """\
name: obs_it
version: "1.0"
config-version: 2
profile: obs_it
flags:
  send_anonymous_usage_stats: false
seeds:
  obs_it:
    +schema: raw
on-run-start: "{{ harbor_schema_changes_ddl() }}"
on-run-end: "{{ harbor_observability_on_run_end(results) }}"
"""

SOURCES = """\
version: 2
sources:
  - name: shop
    schema: raw
    loaded_at_field: updated_at
    freshness:
      warn_after: {count: 100000, period: day}
    tables:
      - name: orders
        description: raw orders
models:
  - name: orders_clean
    description: orders, once
    columns:
      - name: order_id
        description: the key
        data_tests:
          - unique
          - not_null
      - name: amount
        data_tests:
          - not_null:
              config:
                severity: warn
"""

ORDERS_CSV = """\
order_id,amount,updated_at
1,10.5,2024-01-01 10:00:00
2,20.0,2024-01-02 10:00:00
2,20.0,2024-01-02 10:00:00
3,,2024-01-03 10:00:00
"""


@dataclass
class ObsProject:
    path: Path
    target: str
    env: dict[str, str]

    def dbt(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [dbt_executable(), *args, "--target", self.target],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )


def make_project(
    root: Path, *, postgres_url: str | None = None, schema: str = "obs_it", threads: int = 1
) -> ObsProject:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dbt_project.yml").write_text(DBT_PROJECT)
    (root / "models").mkdir(exist_ok=True)
    (root / "seeds").mkdir(exist_ok=True)
    (root / "models" / "orders_clean.sql").write_text("select * from {{ ref('orders') }}\n")
    (root / "models" / "_models.yml").write_text(SOURCES)
    (root / "seeds" / "orders.csv").write_text(ORDERS_CSV)
    shutil.copytree(PROJECT_DIR / "macros", root / "macros", dirs_exist_ok=True)
    profile = {
        "duckdb": f"type: duckdb\n      path: {root / 'warehouse.duckdb'}\n      schema: {schema}\n      threads: {threads}\n"
    }
    if postgres_url:
        url = urlparse(postgres_url)
        profile["postgres"] = (
            f"type: postgres\n      host: {url.hostname}\n      port: {url.port}\n      user: {url.username}\n"
            f"      password: ''\n      dbname: {url.path.lstrip('/')}\n      schema: {schema}\n      threads: {threads}\n"
        )
    outputs = "".join(f"    {name}:\n      {body}" for name, body in profile.items())
    (root / "profiles.yml").write_text(f"obs_it:\n  target: duckdb\n  outputs:\n{outputs}")
    env = {
        **{k: v for k, v in __import__("os").environ.items() if not k.startswith("DBT_")},
        "DBT_PROFILES_DIR": str(root),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_TARGET_PATH": str(root / "target"),
        "DBT_LOG_PATH": str(root / "logs"),
    }
    return ObsProject(root, "postgres" if postgres_url else "duckdb", env)
