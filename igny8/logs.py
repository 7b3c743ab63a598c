"""Structured log lines: ``event key=value ...`` so account, task and image ids can be grepped."""

from __future__ import annotations

import logging
import sys
from typing import Any

from flask import Flask

log = logging.getLogger("igny8")


def configure_logging(app: Flask) -> None:
    if getattr(configure_logging, "_done", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("igny8")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if app.debug else logging.INFO)
    root.propagate = False
    configure_logging._done = True  # type: ignore[attr-defined]


def _fmt(value: Any) -> str:
    text = str(value)
    return repr(text) if (" " in text or not text) else text


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one state change or provider call. Never pass secrets: there is no filter here."""
    log.log(level, "%s %s", name, " ".join(f"{k}={_fmt(v)}" for k, v in fields.items() if v is not None))
