"""The HTML report opens in headless Chromium with no network request and no console message.

Chromium records every request in a net log (``--log-net-log``); the requests a page makes
carry its ``file://`` origin in their network isolation key, the browser's own background
requests do not.  Console messages (errors included) are logged as ``CONSOLE`` lines with
``--enable-logging=stderr``.  A control page with an external image and a console error
shows that both checks see what they look for.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from medpose.report import write_report

from .conftest import PATIENT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
    "--hide-scrollbars",
)
LOCAL = ("file:", "data:", "blob:", "about:", "chrome:", "chrome-error:")


def open_page(page: Path, tmp: Path, screenshot: Path | None = None) -> tuple[list[str], list[str]]:
    """Load ``page``; return the URLs it requested from the network and its console lines."""
    profile = tmp / "profile"
    profile.mkdir()
    netlog = tmp / "netlog.json"
    shot = screenshot or tmp / "shot.png"
    cmd = [
        str(CHROMIUM),
        *FLAGS,
        f"--user-data-dir={profile}",
        f"--log-net-log={netlog}",
        "--window-size=1100,3200",
        f"--screenshot={shot}",
        page.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000, proc.stderr[-2000:]
    log = json.loads(netlog.read_text(encoding="utf-8"))
    kinds = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    requests = [
        e["params"]["url"]
        for e in log["events"]
        if kinds.get(e["type"]) == "URL_REQUEST_START_JOB"
        and "file://" in str(e.get("params", {}).get("network_isolation_key", ""))
        and not str(e["params"].get("url", "")).startswith(LOCAL)
    ]
    console = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln]
    return requests, console


def test_the_checks_see_a_network_request_and_a_console_error(tmp_path):
    page = tmp_path / "control.html"
    page.write_text(
        '<html><body><img src="http://example.invalid/x.png">'
        '<script>console.error("broken")</script><p>control</p></body></html>',
        encoding="utf-8",
    )
    requests, console = open_page(page, tmp_path)
    assert requests == ["http://example.invalid/x.png"]
    assert any('"broken"' in ln for ln in console)


def test_report_opens_without_network_or_console_messages(assessed, squat_fit, tmp_path):
    files = write_report(assessed, tmp_path / "report", pdf=False, angles=squat_fit,
                         patient=PATIENT, date="2026-03-01")  # fmt: skip
    requests, console = open_page(files.html, tmp_path, tmp_path / "report.png")
    assert requests == []
    assert console == []
