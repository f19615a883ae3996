"""Alerts: after a run, one Slack-compatible message (incoming-webhook JSON) saying what failed, how badly,
in which run, and where the report is. No webhook configured: nothing is sent, and that is fine."""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from ingestion.observability.warehouse import SCHEMA, Warehouse

log = logging.getLogger("harbor.alerts")

# dlt's config convention: env ALERTS__SLACK_WEBHOOK, or `[alerts] slack_webhook` in .dlt/secrets.toml.
WEBHOOK_ENV = "ALERTS__SLACK_WEBHOOK"
SEVERITY_ORDER = {"info": 0, "warning": 1, "critical": 2}
COLORS = {"info": "#2eb67d", "warning": "#ecb22e", "critical": "#e01e5a"}


@dataclass(frozen=True)
class Problem:
    kind: str  # test | model | seed | snapshot | source_freshness | ingestion
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

    @property
    def title(self) -> str:
        if not self.problems:
            return "Harbor run succeeded: all models built, all tests passed"
        failed = sum(p.status in ("error", "fail", "runtime error") for p in self.problems)
        warned = len(self.problems) - failed
        return f"Harbor run: {failed} failed, {warned} warning(s)"


def _severity(problems: list[Problem]) -> str:
    if any(p.status in ("error", "fail", "runtime error") for p in problems):
        return "critical"
    return "warning" if problems else "info"


def alert_for_latest_run(warehouse: Warehouse, *, report_url: str | None = None) -> Alert | None:
    """The alert for the newest dbt invocation (with the ingestion runs of the same run id), or None."""
    invocations = warehouse.query(
        f"select invocation_id, job_run_id from {SCHEMA}.dbt_invocations order by run_started_at desc limit 1"
    )
    if not invocations:
        return None
    invocation_id, run_id = invocations[0]["invocation_id"], invocations[0]["job_run_id"]
    problems = [
        Problem(r["resource_type"], r["name"], r["status"], r["message"])
        for r in warehouse.query(
            f"select resource_type, name, status, message from {SCHEMA}.dbt_run_results "
            "where invocation_id = :invocation and status in ('error', 'fail', 'warn', 'runtime error') "
            "order by name",
            invocation=invocation_id,
        )
    ]
    problems += [
        Problem("ingestion", f"{r['source_name']}.{r['table_name']}", "error", r["error"])
        for r in warehouse.query(
            f"select source_name, table_name, error from {SCHEMA}.ingestion_runs "
            "where run_id = :run and status = 'error'",
            run=run_id,
        )
    ]
    return Alert(_severity(problems), run_id, invocation_id, problems, report_url)


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
    request = urllib.request.Request(
        url,
        data=json.dumps(slack_payload(alert)).encode("utf-8"),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        ok = 200 <= response.status < 300
    log.info("alert sent", extra={"severity": alert.severity, "status": ok})
    return ok
