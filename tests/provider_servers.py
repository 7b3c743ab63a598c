"""Moved to ``tests/support/provider_servers.py``; this name stays for ``bench/batch_walltime.py``,
which imports ``FakeOpenAI`` from here."""

from tests.support.provider_servers import FakeOpenAI, FakeRunware

__all__ = ["FakeOpenAI", "FakeRunware"]
