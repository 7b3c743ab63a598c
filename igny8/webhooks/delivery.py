"""Sending one delivery: the RQ job ``deliver_webhook`` on the ``webhooks`` RQ queue.

Each run is one attempt, recorded on the delivery row (attempts, status code, a short error).
A 2xx answer delivers it. Anything else — another status (a redirect is not followed), no
answer within ``WEBHOOK_TIMEOUT``, a connection error — schedules the next attempt after the
next of ``WEBHOOK_RETRY_INTERVALS`` (RQ's scheduler, ``enqueue_in``) until they run out; then
the delivery is ``failed``. A URL that the URL policy refuses now (DNS may have changed since
it was saved) or a webhook removed meanwhile fails the delivery at once, with nothing sent.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import requests
from flask import current_app
from rq import Queue
from sqlalchemy import select

from ..extensions import db
from ..logs import event
from ..models import WebhookDelivery, utcnow
from ..outbound.deadline import Deadline
from ..outbound.pinned import pinned_session
from ..outbound.urlpolicy import FetchFailed, URLRefused, check_url
from ..redis_client import get_rq_redis
from ..text import inert
from .settings import WebhookTarget, webhook_target
from .signing import signature

WEBHOOKS_QUEUE = "webhooks"
JOB_TIMEOUT = 120
RESULT_TTL = 3600


class Attempt:
    """What one attempt gave: the HTTP status (None without an answer), why it failed, and
    whether trying again could help."""

    def __init__(self, status: int | None = None, error: str | None = None, final: bool = False) -> None:
        self.status, self.error, self.final = status, error, final

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def body_of(delivery: WebhookDelivery) -> bytes:
    """The raw body sent (and signed): the same bytes at every attempt."""
    return json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()


def enqueue_delivery(delivery: WebhookDelivery, delay: float = 0.0) -> None:
    """Queue an attempt now, or in ``delay`` seconds (RQ's scheduler moves it onto the queue)."""
    queue = Queue(WEBHOOKS_QUEUE, connection=get_rq_redis())
    options: dict[str, Any] = {"job_timeout": JOB_TIMEOUT, "result_ttl": RESULT_TTL, "failure_ttl": 7 * 24 * 3600,
                               "description": f"Webhook {delivery.event} for account {delivery.account_id}"}
    if delay > 0:
        queue.enqueue_in(timedelta(seconds=delay), deliver_webhook, delivery.delivery_id, **options)
    else:
        queue.enqueue(deliver_webhook, delivery.delivery_id, **options)


def deliver_webhook(delivery_id: str) -> dict[str, Any]:
    """One attempt at a pending delivery (the RQ job; it takes the delivery's id only)."""
    try:
        delivery = db.session.scalar(select(WebhookDelivery).filter_by(delivery_id=delivery_id))
        if delivery is None or delivery.state != "pending":
            return {"delivery": delivery_id, "skipped": True}
        attempt = send(delivery, webhook_target(delivery.account_id))
        return record(delivery, attempt)
    finally:
        db.session.remove()  # a worker thread or a forked horse: no connection left checked out


def send(delivery: WebhookDelivery, target: WebhookTarget | None) -> Attempt:
    if target is None:
        return Attempt(error="The webhook was removed (or its secret must be saved again); nothing was sent.",
                       final=True)
    config = current_app.config
    timeout = float(config["WEBHOOK_TIMEOUT"])
    try:
        vetted = check_url(target.url, allowed_http_hosts=config.get("ALLOWED_HTTP_HOSTS", ()))
    except URLRefused as exc:
        return Attempt(error=f"The URL is refused: {exc}; nothing was sent. Change it in Settings.", final=True)
    except FetchFailed as exc:
        return Attempt(error=f"The URL cannot be reached: {exc}.")
    body = body_of(delivery)
    headers = {"Content-Type": "application/json", "User-Agent": "igny8-webhooks",
               "X-Igny8-Event": delivery.event, "X-Igny8-Delivery": delivery.delivery_id,
               "X-Igny8-Signature": signature(target.secret, body)}
    with Deadline(timeout) as deadline, pinned_session(vetted, timeout) as session:
        try:
            response = session.post(target.url, data=body, headers=headers, allow_redirects=False,
                                    timeout=timeout, stream=True)
        except requests.RequestException as exc:
            if deadline.expired:
                return Attempt(error=f"No answer within {timeout:g} s.")
            return Attempt(error=f"The connection failed ({type(exc).__name__}).")
        response.close()  # the body of the answer is not needed
    if 300 <= response.status_code < 400:
        return Attempt(response.status_code, f"HTTP {response.status_code}: a redirect, which is not followed.")
    if not 200 <= response.status_code < 300:
        return Attempt(response.status_code, f"HTTP {response.status_code}.")
    return Attempt(response.status_code)


def record(delivery: WebhookDelivery, attempt: Attempt) -> dict[str, Any]:
    """Write the attempt on the row; schedule the next one (after the commit) or end the delivery."""
    intervals = current_app.config["WEBHOOK_RETRY_INTERVALS"]
    delivery.attempts += 1
    delivery.status_code = attempt.status
    retry_in: float | None = None
    if attempt.delivered:
        delivery.state, delivery.delivered_at, delivery.last_error = "delivered", utcnow(), None
        delivery.next_attempt_at = None
    else:
        delivery.last_error = inert(attempt.error or "Failed.", 300)
        if attempt.final or delivery.attempts > len(intervals):
            delivery.state, delivery.next_attempt_at = "failed", None
        else:
            retry_in = float(intervals[delivery.attempts - 1])
            delivery.next_attempt_at = utcnow() + timedelta(seconds=retry_in)
    db.session.commit()
    if retry_in is not None:
        enqueue_delivery(delivery, retry_in)
    event("webhook_delivered" if attempt.delivered else "webhook_attempt_failed",
          level=20 if attempt.delivered else 30, account=delivery.account_id, delivery=delivery.delivery_id,
          webhook_event=delivery.event, attempt=delivery.attempts, status=attempt.status, state=delivery.state,
          error=delivery.last_error, retry_in=retry_in)
    return {"delivery": delivery.delivery_id, "state": delivery.state, "attempts": delivery.attempts}


RESUME_AFTER = timedelta(minutes=5)


def resume_pending() -> int:
    """Queue again the pending deliveries whose attempt is overdue by ``RESUME_AFTER`` (Redis was
    down when they were emitted, or lost their scheduled job). Run by the periodic sweep."""
    overdue = db.session.scalars(select(WebhookDelivery).where(
        WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at < utcnow() - RESUME_AFTER)
        .limit(500)).all()
    for delivery in overdue:
        delivery.next_attempt_at = utcnow()
    db.session.commit()
    for delivery in overdue:
        enqueue_delivery(delivery)
    return len(overdue)
