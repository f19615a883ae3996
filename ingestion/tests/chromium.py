"""Headless Chromium as a person's browser: Debian's `chromium`, offline, from file:// URLs."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--hide-scrollbars",
    "--window-size=1400,1000",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("Debian's chromium is not installed (`apt-get install chromium`; .ci/run installs it)")
    return found


def _run(url: str, *args: str, budget_ms: int) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="harbor-chromium-") as profile:
        return subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *args, url],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )


def page_text(url: str, *, budget_ms: int = 15000) -> str:
    """The rendered page's visible text (scripts and styles dropped), after `budget_ms` of virtual time."""
    dom = _run(url, "--dump-dom", budget_ms=budget_ms).stdout
    dom = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", dom)
    return re.sub(r"\s+", " ", re.sub(r"(?s)<[^>]+>", " ", dom))


def screenshot(url: str, path: Path, *, budget_ms: int = 15000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _run(url, f"--screenshot={path}", budget_ms=budget_ms)
    assert path.exists() and path.stat().st_size > 10_000, f"no screenshot of {url}"
    return path
