"""The migrations build exactly the schema of the models (what `make run` relies on)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def flask(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "igny8", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_upgrade_from_empty_matches_the_models(tmp_path, redis_server):
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.db'}", REDIS_URL=redis_server.url)
    upgrade = flask(env, "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    check = flask(env, "db", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr
    seeded = flask(env, "seed-demo")
    assert seeded.returncode == 0 and "demo@igny8.test" in seeded.stdout
