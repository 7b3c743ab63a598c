"""What every model shares: the clock and the limits of an id."""

from __future__ import annotations

from datetime import UTC, datetime

# Ids are INTEGER columns: PostgreSQL refuses a larger number in a query ("integer out of range"),
# so a bigger id can only be a caller's mistake, answered 400 or 404 before any query.
MAX_DB_ID = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
