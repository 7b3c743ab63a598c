"""Typed SQLAlchemy 2.0 models, one module per concern. Every row that belongs to a customer carries
``account_id``. Everything is importable from ``igny8.models``."""

from __future__ import annotations

from ..progress.schema import ImageStatus, TaskState
from .accounts import Account, User
from .base import MAX_DB_ID, utcnow
from .content import Content, Image, ImageVersion
from .runs import RUN_SOURCES, Run
from .settings import IntegrationSettings, PromptTemplate
from .spend import SpendEntry, SpendReservation
from .tasks import TASK_KINDS, AccountTotals, GenerationTask
from .webhooks import DELIVERY_STATES, WebhookDelivery

IMAGE_STATUSES = tuple(ImageStatus)
IMAGE_TYPES = ("featured", "in_article")
TASK_STATES = tuple(TaskState)
INTEGRATION_TYPES = ("image_generation", "openai", "runware", "webhook")

__all__ = [
    "IMAGE_STATUSES", "IMAGE_TYPES", "INTEGRATION_TYPES", "MAX_DB_ID", "TASK_STATES", "Account", "AccountTotals",
    "Content", "DELIVERY_STATES", "GenerationTask", "Image", "ImageVersion", "IntegrationSettings", "PromptTemplate",
    "RUN_SOURCES", "Run", "SpendEntry", "SpendReservation", "TASK_KINDS", "User", "WebhookDelivery", "utcnow",
]
