"""Headless Chromium as a person's browser: Debian's `chromium`, offline, from file:// URLs."""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
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
    # Debian's chromium here and in .ci/run; GitHub's runner images ship Google Chrome, the same engine.
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not found:
        reason = "Debian's chromium is not installed (`apt-get install chromium`; .ci/run installs it)"
        if os.environ.get("CI"):  # in CI a skip would hide every rendering test: CI must install it
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def _run(url: str, *args: str, budget_ms: int) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="harbor-chromium-", ignore_cleanup_errors=True) as profile:
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


class LivePage:
    """A page in real time over Chromium's DevTools pipe: for views that lay themselves out in a Web Worker
    (Elementary's lineage), which virtual time never lets finish."""

    def __init__(self, url: str) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="harbor-chromium-", ignore_cleanup_errors=True)
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire() -> None:  # the pipe protocol: Chromium reads fd 3 and writes fd 4
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self._proc = subprocess.Popen(
            [chromium(), *FLAGS, f"--user-data-dir={self._profile.name}", "--remote-debugging-pipe", "about:blank"],
            pass_fds=(3, 4),  # subprocess closes other descriptors after `wire` has run
            preexec_fn=wire,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._id = 0
        target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self._call("Page.navigate", {"url": url}, session=True)

    def _call(self, method: str, params: dict | None = None, *, session: bool = False) -> dict:
        self._id += 1
        message: dict = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            while b"\0" not in self._buffer:
                ready, _, _ = select.select([self._from_chrome], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    raise TimeoutError(f"chromium did not answer {method}")
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed its DevTools pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
        raise TimeoutError(f"chromium did not answer {method}")

    def text(self) -> str:
        result = self._call(
            "Runtime.evaluate", {"expression": "document.body.innerText", "returnByValue": True}, session=True
        )
        return result["result"].get("value") or ""

    def wait_for(self, *needles: str, timeout: float = 40) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if all(n in text for n in needles):
                return text
            time.sleep(0.5)
        raise AssertionError(f"{needles} not on the page after {timeout}s; it shows: {text[:500]!r}")

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(
            base64.b64decode(self._call("Page.captureScreenshot", {"format": "png"}, session=True)["data"])
        )
        return path

    def close(self) -> None:
        self._proc.kill()
        self._proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        self._profile.cleanup()

    def __enter__(self) -> LivePage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
