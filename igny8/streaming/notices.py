"""The change notices, in order and without a gap, for a process's stream hub.

Every progress write appends a notice to the notices stream (``NOTICES_KEY``) and, in the same
atomic script, publishes it on ``NOTICES_CHANNEL`` together with its id in that stream and the id
of the notice before it. The feed is a subscriber of that channel: a wake-up only reads what Redis
pushed, it sends nothing (a blocking XREAD per wake-up was the listener's largest cost). The
stream stays the record: a published notice whose previous id is not the feed's cursor shows that
notices were missed (published before the subscription, lost with a dropped connection, or
written by an older writer that does not publish, during a deploy), and the feed reads them from
the stream. A quiet feed also compares the stream's last id with its cursor every ``block_ms``,
so the notice of an older writer that no published one follows arrives within that time.
"""

from __future__ import annotations

from redis import Redis
from redis.client import PubSub
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..progress.events import event_id_tuple
from ..progress.keys import NOTICES_CHANNEL, NOTICES_KEY

NOTICE_BATCH = 2000  # notices handed on at once; a full batch read from the stream means "read everything"
SUBSCRIBE_TIMEOUT = 5.0  # seconds to wait for Redis to confirm the subscription
PUBLISH_GRACE = 0.05  # seconds a notice found in the stream gets for its publication to arrive

Notice = tuple[str, dict[str, str]]  # (its id in the notices stream, its fields)


def parse(message: str) -> tuple[str, str, dict[str, str]] | None:
    """(notice id, previous notice id, fields) of a published notice; None when it is not one."""
    parts = message.split("\n")
    if len(parts) < 2 or len(parts) % 2:
        return None
    return parts[0], parts[1], dict(zip(parts[2::2], parts[3::2], strict=True))


class NoticeFeed:
    """The notices after a cursor the hub keeps. Not thread-safe: the hub's listener alone uses it."""

    def __init__(self, redis: Redis, block_ms: int) -> None:
        self.redis = redis
        self.block_ms = block_ms
        self.pubsub: PubSub | None = None

    def next(self, cursor: str) -> tuple[list[Notice], bool]:
        """The notices after ``cursor``, waiting up to ``block_ms`` for one, and whether they are
        all of them (False: a full batch read from the stream, where some may have been trimmed
        away). Raises RedisError when Redis does not answer."""
        if self.pubsub is None:
            self._open()
            return self._read(cursor)
        message = self._receive(self.block_ms / 1000)
        if message is None:  # quiet: is there a notice nobody published?
            last = self.redis.xrevrange(NOTICES_KEY, "+", "-", count=1)
            if not last or not _lt(cursor, last[0][0]):
                return [], True
            message = self._receive(PUBLISH_GRACE)  # or was it written just now?
            if message is None:  # an older writer's, or the subscription is dead: subscribe again
                self.close()
                return self._read(cursor)
        notices: list[Notice] = []
        while message is not None and len(notices) < NOTICE_BATCH:
            if message[0] == "message":
                parsed = parse(message[2])
                if parsed is None or (parsed[1] != cursor and _lt(cursor, parsed[0])):
                    more, complete = self._read(cursor)  # notices before this one were missed
                    return notices + more, complete
                notice_id, _previous, fields = parsed
                if _lt(cursor, notice_id):  # else read from the stream already
                    notices.append((notice_id, fields))
                    cursor = notice_id
            message = self._receive(0)
        return notices, True

    def close(self) -> None:
        if self.pubsub is not None:
            pubsub, self.pubsub = self.pubsub, None
            pubsub.close()

    def _open(self) -> None:
        """Subscribe, and wait until Redis confirms it: every notice published from then on arrives."""
        self.pubsub = self.redis.pubsub()
        try:
            self.pubsub.subscribe(NOTICES_CHANNEL)
            message = self._receive(SUBSCRIBE_TIMEOUT)
            while message is not None and message[0] != "subscribe":
                message = self._receive(SUBSCRIBE_TIMEOUT)
        except Exception:
            self.close()
            raise

    def _receive(self, timeout: float) -> list | None:
        """The next message Redis pushed, or None after ``timeout`` seconds (0: none is here yet).
        Read straight from the connection: ``PubSub.get_message`` polls the socket and peeks at it
        before each read, which cost more than the read at a few thousand notices a second."""
        connection = self.pubsub.connection
        try:
            return connection.read_response(timeout=timeout, disconnect_on_error=False, push_request=True)
        except (RedisTimeoutError, TimeoutError):
            return None

    def _read(self, cursor: str) -> tuple[list[Notice], bool]:
        entries = self.redis.xrange(NOTICES_KEY, "(" + cursor, "+", count=NOTICE_BATCH)
        return entries, len(entries) < NOTICE_BATCH


def _lt(a: str, b: str) -> bool:
    return event_id_tuple(a) < event_id_tuple(b)
