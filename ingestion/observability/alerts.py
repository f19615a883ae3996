"""Alerts: after a run, one Slack-compatible message (incoming-webhook JSON) saying what failed, how badly,
in which run, and where the report is. No webhook configured: nothing is sent, and that is fine."""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from ingestion.observability.warehouse import LATEST_INGESTION_PER_SOURCE, SCHEMA, Warehouse

log = logging.getLogger("harbor.alerts")

# dlt's config convention: env ALERTS__SLACK_WEBHOOK, or `[alerts] slack_webhook` in .dlt/secrets.toml.
WEBHOOK_ENV = "ALERTS__SLACK_WEBHOOK"
SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}
COLORS = {"info": "#2eb67d", "warning": "#ecb22e", "critical": "#e01e5a"}


@dataclass(frozen=True)
class Problem:
    kind: str  # test | unit_test | model | seed | snapshot | ingestion | dbt (a build that recorded nothing)
    name: str
    status: str
    message: str | None = None


@dataclass
class Alert:
    severity: str  # critical | warning | info
    run_id: str | None
    invocation_id: str | None
    problems: list[Problem] = field(default_factory=list)
    report_url: str | None = None
    tests_ran: bool = True  # False for a run of `dbt seed` or `dbt run`: "all tests passed" would say too much
    models_built: bool = True  # False for a run of `dbt test`: "all models built" would say what did not happen

    @property
    def title(self) -> str:
        if not self.problems:
            if not self.tests_ran:
                return "Harbor run succeeded: nothing failed, and no data tests ran"
            if not self.models_built:
                return "Harbor run succeeded: all tests passed"
            return "Harbor run succeeded: all models built, all tests passed"
        skipped = sum(p.status == "skipped" for p in self.problems)
        failed = sum(p.status in FAILED for p in self.problems) - skipped
        warned = len(self.problems) - failed - skipped
        return f"Harbor run: {failed} failed, " + (f"{skipped} not built, " if skipped else "") + f"{warned} warning(s)"


# A model or snapshot skipped because something before it failed holds yesterday's data: as bad as a failure.
FAILED = ("error", "fail", "runtime error", "skipped")
NOT_BUILT = "not built: a node it depends on failed, so it keeps the data of its last build"


def _severity(problems: list[Problem]) -> str:
    if any(p.status in FAILED for p in problems):
        return "critical"
    return "warning" if problems else "info"


# The commands whose results say whether the warehouse was built right; `dbt source freshness` runs the project's
# hooks too, and as the newest invocation it hid a failed build that came before it.
BUILD_COMMANDS = ("build", "run", "test", "seed", "snapshot")


@dataclass(frozen=True)
class FailedBuild:
    """A dbt build of this run that exited non-zero: if it stopped before its on-run-end hook (a project that does
    not parse or compile), the history holds nothing of it, and only this says it failed."""

    run_id: str
    exit_code: int


def alert_for_latest_run(
    warehouse: Warehouse, *, report_url: str | None = None, failed_build: FailedBuild | None = None
) -> Alert | None:
    """The alert for the newest dbt build (with every invocation of its run id: freshness checks of the same run),
    and for every source whose latest ingestion run failed, whichever run that was: a source that failed in one
    command and a build in the next (two run ids) is still news. None when there is neither. A `failed_build` that
    recorded nothing is the run's news in place of the builds before it."""
    invocations = (
        warehouse.query(
            f"select invocation_id, job_run_id from {SCHEMA}.dbt_invocations "
            f"where command in ({', '.join(repr(c) for c in BUILD_COMMANDS)}) order by run_started_at desc limit 1"
        )
        if _has_table(warehouse, "dbt_invocations")
        else []
    )
    if failed_build is not None and not (invocations and invocations[0]["job_run_id"] == failed_build.run_id):
        problems = [Problem("dbt", "build", "error", unrecorded_build_message(failed_build.exit_code))]
        problems += _ingestion_problems(warehouse)
        return Alert("critical", failed_build.run_id, None, problems, report_url)
    invocation_id = invocations[0]["invocation_id"] if invocations else None
    run_id = invocations[0]["job_run_id"] if invocations else None
    # Each node's newest result in the run: an orchestrator retrying under one HARBOR_RUN_ID fixed what the first
    # attempt failed, and the alert is about what holds now. Both conditions on `invocations`: with one on each
    # side of the join, DuckDB 1.5.5 fails this query with an internal error ("index 3 within vector of size 3").
    results = (
        warehouse.query(
            "select resource_type, name, status, message from ("
            "select results.resource_type, results.name, results.status, results.message, row_number() over ("
            "partition by results.unique_id order by invocations.run_started_at desc) as newest "
            f"from {SCHEMA}.dbt_run_results as results inner join {SCHEMA}.dbt_invocations as invocations "
            "on results.invocation_id = invocations.invocation_id "
            "where invocations.invocation_id = :invocation or invocations.job_run_id = :run) as of_the_run "
            "where newest = 1 order by name",
            invocation=invocation_id,
            run=run_id,
        )
        if invocation_id
        else []
    )
    problems = [
        Problem(r["resource_type"], r["name"], r["status"], r["message"])
        for r in results
        if r["status"] in ("error", "fail", "warn", "runtime error")
    ]
    problems += [
        Problem(r["resource_type"], r["name"], "skipped", NOT_BUILT)
        for r in results
        if r["status"] == "skipped" and r["resource_type"] in ("model", "snapshot", "seed")
    ]
    problems += _ingestion_problems(warehouse)
    if invocation_id is None and not problems:
        return None
    tests_ran = any(r["resource_type"] == "test" and r["status"] != "skipped" for r in results)
    models_built = any(r["resource_type"] == "model" and r["status"] == "success" for r in results)
    return Alert(_severity(problems), run_id, invocation_id, problems, report_url, tests_ran, models_built)


def unrecorded_build_message(exit_code: int) -> str:
    return (
        f"dbt build exited with {exit_code} before recording any result (the project did not parse or compile: "
        "dbt's output says why); the history shows the builds before it"
    )


def _ingestion_problems(warehouse: Warehouse) -> list[Problem]:
    return [
        # Its own run id: the alert's is the newest build's, which may be another run's.
        Problem("ingestion", f"{r['source_name']}.{r['table_name']}", "error", f"{r['error']} (run {r['run_id']})")
        for r in _failed_sources(warehouse)
    ]


def _failed_sources(warehouse: Warehouse) -> list[dict[str, Any]]:
    """The rows of each source's latest ingestion run, where that run failed (none when the table is missing)."""
    if not _has_table(warehouse, "ingestion_runs"):
        return []
    return warehouse.query(
        f"select source_name, table_name, error, run_id from {SCHEMA}.ingestion_runs "
        f"where (source_name, created_at) in {LATEST_INGESTION_PER_SOURCE} and status = 'error' order by source_name"
    )


def _has_table(warehouse: Warehouse, name: str) -> bool:
    found = warehouse.query(
        "select count(*) as n from information_schema.tables where table_schema = :schema and table_name = :name",
        schema=SCHEMA,
        name=name,
    )
    return bool(found[0]["n"])


def slack_payload(alert: Alert) -> dict[str, Any]:
    """Slack incoming-webhook JSON: `text` for notifications and plain receivers, an attachment for detail."""
    lines = [f"*{p.kind}* `{p.name}`: {p.status}" + (f" ({p.message})" if p.message else "") for p in alert.problems]
    fields = [
        {"title": "severity", "value": alert.severity, "short": True},
        {"title": "run id", "value": alert.run_id or "-", "short": True},
    ]
    if alert.report_url:
        fields.append({"title": "report", "value": alert.report_url, "short": False})
    return {
        "text": f"[{alert.severity.upper()}] {alert.title}",
        "attachments": [
            {
                "color": COLORS[alert.severity],
                "title": alert.title,
                "text": "\n".join(lines[:30]) or "Nothing failed.",
                "fields": fields,
            }
        ],
        "severity": alert.severity,
        "run_id": alert.run_id,
        "invocation_id": alert.invocation_id,
        "report_url": alert.report_url,
        "failures": [p.__dict__ for p in alert.problems],
    }


def configured_webhook() -> str | None:
    url = os.environ.get(WEBHOOK_ENV)
    if url:
        return url
    try:
        import dlt

        return dlt.secrets.get("alerts.slack_webhook") or None
    except Exception:  # no secrets file, no such key: no webhook
        return None


def send_alert(alert: Alert, *, webhook_url: str | None = None, min_severity: str = "warning") -> bool:
    """Posts the alert when a webhook is configured and the severity is high enough; True when sent."""
    url = webhook_url or configured_webhook()
    if not url or SEVERITY_ORDER[alert.severity] < SEVERITY_ORDER[min_severity]:
        log.info("alert not sent", extra={"severity": alert.severity, "webhook": bool(url)})
        return False
    try:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):  # file:// would "send" by reading a file
            raise ValueError("its scheme is not http or https")
        request = urllib.request.Request(
            url,
            data=json.dumps(slack_payload(alert)).encode("utf-8"),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            ok = 200 <= response.status < 300
    except OSError as error:  # unreachable, refused, or an HTTP error status (a revoked hook answers 403/404)
        log.warning(f"alert not sent: the webhook failed: {error}", extra={"severity": alert.severity})
        return False
    except ValueError as error:  # not a URL at all: a wrong setting, which must not fail the report either
        log.warning(
            f"alert not sent: the webhook setting ({WEBHOOK_ENV} or alerts.slack_webhook) is not an http(s) URL: {error}",
            extra={"severity": alert.severity},
        )
        return False
    log.info("alert sent", extra={"severity": alert.severity, "status": ok})
    return ok
