"""A PNG of the dashboard, taken by headless Chromium, for places that show images but not HTML (a job summary).

Chromium only ever opens our own generated file (a file:// URL) and is kept off the network: the
page fetches nothing anyway, and names do not resolve and any connection goes to a closed port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from llmci.errors import InputError, LlmciError
from llmci.fsutil import atomic_write_bytes, display_path

#: Looked for on PATH in this order, after the LLMCI_CHROMIUM environment variable.
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class ScreenshotError(LlmciError):
    """No Chromium, or it did not make the screenshot (a check can go on without the picture)."""


def find_chromium(environ: Mapping[str, str] = os.environ) -> str:
    """The Chromium to run: LLMCI_CHROMIUM (a path or a name on PATH), else the first of CANDIDATES on PATH."""
    override = environ.get("LLMCI_CHROMIUM")
    if override:
        found = shutil.which(override)
        if not found:
            raise ScreenshotError(f"LLMCI_CHROMIUM={override}: no such executable", hint="set it to Chromium's path")
        return found
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise ScreenshotError(
        f"no Chromium to screenshot the dashboard with: looked for LLMCI_CHROMIUM and {', '.join(CANDIDATES)} on PATH",
        hint="install one (apt-get install chromium) or set LLMCI_CHROMIUM to its path",
    )


def screenshot(
    html_path: Path,
    png_path: Path,
    width: int = 1280,
    height: int = 1400,
    *,
    timeout: float = 60,
    environ: Mapping[str, str] = os.environ,
) -> Path:
    """Screenshot the top `width` x `height` pixels of the page at `html_path` into `png_path` (written
    atomically); the default size holds the dashboard's headline, findings and charts."""
    binary = find_chromium(environ)
    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        raise InputError(f"{display_path(html_path)}: no such file to screenshot")
    # Chromium's profile and the picture go to a folder of our own; a lingering child may still write
    # to the profile as it exits, so its removal must not fail the screenshot.
    with tempfile.TemporaryDirectory(prefix="llmci-chromium-", ignore_cleanup_errors=True) as tmp:
        shot = Path(tmp) / "dashboard.png"
        args = [
            binary,
            "--headless",
            "--disable-gpu",
            # Chromium's sandbox cannot start as root in a container (GitHub's container jobs); the page is
            # our own file with no script, so the sandbox guards nothing here.
            "--no-sandbox",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--user-data-dir={tmp}/profile",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-sync",
            "--mute-audio",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=127.0.0.1:9",
            f"--window-size={width},{height}",
            f"--screenshot={shot}",
            html_path.as_uri(),
        ]
        # Its own process group, so a timeout ends the browser's helper processes too.
        process = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            process.communicate()
            raise ScreenshotError(
                f"{binary} took longer than {timeout:g}s to screenshot {display_path(html_path)}"
            ) from None
        finally:
            _kill_group(process)
        if process.returncode != 0 or not shot.is_file() or shot.stat().st_size == 0:
            raise ScreenshotError(
                f"{binary} exited {process.returncode} without a screenshot of {display_path(html_path)}: "
                f"{_reason(stderr)}"
            )
        atomic_write_bytes(png_path, shot.read_bytes())
    return Path(png_path)


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _reason(stderr: str) -> str:
    """Chromium's last line that says something: it logs D-Bus complaints on every start in a container."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and "dbus" not in line.lower()]
    return lines[-1] if lines else "no message"
