"""The errors dbt wrote to its log file (text or JSON lines), each on one line: the summary quotes them, as dbt's
console output is in the job's log alone."""

from __future__ import annotations

import json
import re
from pathlib import Path


def first_dbt_error(log: Path, offset: int = 0) -> str | None:
    """The first error dbt logged (after `offset` bytes of its log file, in text or JSON lines), on one line, e.g.
    "Compilation Error Model 'model.harbor.x' depends on a node named 'y' which was not found"."""
    return next(iter(dbt_errors(log, offset)), None)


# How dbt reports a failed on-run-start / on-run-end hook, e.g. "harbor.on-run-end.0 failed, error: Catalog Error...".
HOOK_FAILURE = re.compile(r"^\S+\.on-run-(start|end)\.\d+ failed, error:")


def failed_hooks(log: Path, offset: int = 0) -> list[str]:
    """The errors of the project hooks that failed, as dbt logged them after `offset` bytes of its log."""
    return [error for error in dbt_errors(log, offset) if HOOK_FAILURE.match(error)]


def dbt_errors(log: Path, offset: int = 0) -> list[str]:
    """Every error dbt logged after `offset` bytes of its log file (text or JSON lines), each on one line."""
    if not log.exists():
        return []
    with log.open(errors="replace") as file:
        file.seek(offset)
        lines = file.read().splitlines()
    errors = []
    for i, line in enumerate(lines):
        if line.startswith("{"):  # DBT_LOG_FORMAT=json: one event per line, the message whole
            try:
                info = json.loads(line).get("info") or {}
            except json.JSONDecodeError:
                continue
            if info.get("level") != "error" or not info.get("msg"):
                continue
            message = str(info["msg"]).splitlines()
        elif "[error]" in line:  # text: the `[error]` line and the untimestamped lines under it
            message = [line.split("]: ", 1)[-1]]
            for following in lines[i + 1 : i + 6]:
                if re.match(r"^(\x1b\[0m)?\d{2}:\d{2}:\d{2}", following):
                    break
                message.append(following)
        else:
            continue
        text = " ".join(part.strip() for part in message if part.strip() not in ("", "Encountered an error:"))
        if text := re.sub(r"\x1b\[[0-9;]*m", "", text)[:500]:
            errors.append(text)
    return errors
