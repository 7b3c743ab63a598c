"""The ``flask --app igny8 …`` command line, run as another terminal runs it."""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import ROOT


def run_cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "igny8", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
