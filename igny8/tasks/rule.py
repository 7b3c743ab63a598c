"""The queue rule: which images of an article a click on Generate Images queues.

Queue for one article: its featured image if it is pending or failed and has a prompt, plus its
pending or failed, prompted in-article images sorted by position, as many as
``max_in_article_images`` minus the article's in-article images already generated, queued or
processing. The setting is a cap per article, not per click: a second click while a batch runs
queues nothing more, and a failed image can always be generated again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..models import Content, Image
from ..progress.schema import ImageStatus, QueueItem

# Image statuses a click may (re)generate, and in-article statuses that use up the article's cap.
GENERATABLE = (ImageStatus.PENDING, ImageStatus.FAILED)
COUNTED_IN_CAP = (ImageStatus.GENERATED, ImageStatus.QUEUED, ImageStatus.PROCESSING)


@dataclass(frozen=True)
class QueuePlan:
    """What a click on Generate Images queues, and how many in-article images the cap leaves out."""

    images: list[Image]
    max_in_article: int
    left_out: int

    @property
    def note(self) -> str | None:
        """Why some images are not in the queue, in the words the page and the modal show."""
        if not self.left_out:
            return None
        cap = f"max {self.max_in_article} in-article image{'' if self.max_in_article == 1 else 's'} per article"
        return (f"{self.left_out} in-article image{' is' if self.left_out == 1 else 's are'} left out: "
                f"{cap} — change it in Settings.")


def plan_queue(images: Iterable[Image], max_in_article: int) -> QueuePlan:
    """The queue rule for one article's images (see the module docstring)."""
    images = list(images)
    ready = [img for img in images if img.status in GENERATABLE and img.prompt.strip()]
    featured = [img for img in ready if img.type == "featured"][:1]
    in_article = sorted((img for img in ready if img.type == "in_article"), key=lambda i: i.position)
    used = sum(1 for img in images if img.type == "in_article" and img.status in COUNTED_IN_CAP)
    room = max(max_in_article - used, 0)
    return QueuePlan(featured + in_article[:room], max_in_article, max(len(in_article) - room, 0))


def build_queue(images: Iterable[Image], max_in_article: int) -> list[Image]:
    return plan_queue(images, max_in_article).images


@dataclass(frozen=True)
class QueuePreview:
    items: list[QueueItem]
    note: str | None


def queue_preview(content: Content, max_in_article: int) -> QueuePreview:
    """What a click on Generate Images would queue (and why others are left out): rendered into
    the page so the modal can open with every bar before the request is even sent."""
    plan = plan_queue(content.images, max_in_article)
    return QueuePreview([QueueItem.from_image(img, i, content.title) for i, img in enumerate(plan.images, start=1)],
                        plan.note)
