"""Run ids and structured logs shared by `harbor ingest`, dbt and the report.

Every line of a run carries the same run id: HARBOR_RUN_ID when the caller set it (an orchestrator, or
`harbor demo run` for all its steps), otherwise a fresh one that is then exported, so child processes (dbt)
see it too.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import uuid
from datetime import UTC, datetime
from typing import TextIO

from ingestion.settings import masked_passwords

RUN_ID_ENV = "HARBOR_RUN_ID"
LOG_FORMAT_ENV = "HARBOR_LOG_FORMAT"
LOGGER = "harbor"


def run_id() -> str:
    """The current run id, created and exported on first use."""
    value = os.environ.get(RUN_ID_ENV)
    if not value:
        value = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        os.environ[RUN_ID_ENV] = value
    return value


def json_logs_requested() -> bool:
    """`HARBOR_LOG_FORMAT=json` asks every harbor command for JSON-lines logs, as `--json-logs` does."""
    return os.environ.get(LOG_FORMAT_ENV, "").lower() == "json"


def log_format_problem() -> str | None:
    """What is wrong with HARBOR_LOG_FORMAT, if anything: a typo would otherwise silently give text logs."""
    value = os.environ.get(LOG_FORMAT_ENV, "")
    if value.lower() in ("", "json", "text"):
        return None
    return f"{LOG_FORMAT_ENV}={value!r} is neither 'json' nor 'text': logging text"


def json_logs_on() -> bool:
    """Whether harbor's logger writes JSON lines (`configure(json_logs=True)` ran)."""
    return any(isinstance(handler.formatter, JsonFormatter) for handler in logging.getLogger(LOGGER).handlers)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, run_id, message, plus any `extra=` fields; a URL's password in
    any of them masked."""

    _standard = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "run_id": run_id(),
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in record.__dict__.items() if k not in self._standard})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps({k: masked_passwords(v) if isinstance(v, str) else v for k, v in line.items()}, default=str)


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message`, a URL's password in it masked (a retried request, a source's error quote it)."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return masked_passwords(super().format(record))


class SlowStepsOnly(logging.Filter):
    """Lets a dlt progress line through only once its step has run `min_seconds`: short loads stay quiet."""

    _elapsed = re.compile(r"Time: ([0-9.]+)s")

    def __init__(self, min_seconds: float) -> None:
        super().__init__()
        self.min_seconds = min_seconds

    def filter(self, record: logging.LogRecord) -> bool:
        found = self._elapsed.search(record.getMessage())
        return found is None or float(found.group(1)) >= self.min_seconds


class KeepsJsonFormat(logging.StreamHandler):
    """The `dlt` logger's handler in JSON mode. Whenever a pipeline starts, dlt puts its own text formatter on its
    logger's first handler; this one keeps Harbor's, so dlt's warnings stay JSON lines carrying the run id.
    (dlt's own JSON mode would not do: it reformats every logger in the process, Harbor's included.)"""

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        if isinstance(fmt, JsonFormatter):
            super().setFormatter(fmt)


def configure(*, json_logs: bool, progress_after: float = 5.0, stream: TextIO | None = None) -> logging.Logger:
    """Harbor's log lines to stderr: JSON when asked (dlt's own lines too), short text otherwise."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logs else TextFormatter())
    dlt_logger = logging.getLogger("dlt")
    dlt_logger.handlers[:] = [h for h in dlt_logger.handlers if not isinstance(h, KeepsJsonFormat)]
    if json_logs:
        dlt_handler = KeepsJsonFormat(stream or sys.stderr)
        dlt_handler.setFormatter(JsonFormatter())
        dlt_logger.handlers.insert(0, dlt_handler)
    logger = logging.getLogger(LOGGER)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO if json_logs else logging.WARNING)
    progress = logging.getLogger(f"{LOGGER}.progress")
    progress.setLevel(logging.INFO)
    progress.filters[:] = [SlowStepsOnly(progress_after)]
    return logger
