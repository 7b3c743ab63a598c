"""The signature of a delivery: ``X-Igny8-Signature: sha256=<hex HMAC-SHA256 of the raw body>``
under the account's webhook secret (DESIGN.md, "Webhooks"). A receiver computes the same over
the bytes it received and compares in constant time."""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "sha256="


def signature(secret: str, body: bytes) -> str:
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret`` (constant-time compare)."""
    return hmac.compare_digest(signature(secret, body), header or "")
