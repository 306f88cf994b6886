"""Headless Chromium for the tests that look at a report as a person would."""

import shutil
import subprocess
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(page: Path, folder: Path) -> tuple[Path, list[str]]:
    """A 1280 x 2000 screenshot of ``page`` and the page's console messages (errors)."""
    shot = folder / "shot.png"
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={folder / 'profile'}", "--enable-logging=stderr", "--v=0",
                           f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    return shot, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
