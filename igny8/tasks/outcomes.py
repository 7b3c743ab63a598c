"""How an image or a task ends, written to the database (the truth that outlives the Redis
keys). Each function is one unit of work with its own commit; none touches Redis."""

from __future__ import annotations

from ..content.versions import add_version, status_after_failure, status_after_release
from ..extensions import db
from ..media.variants import StoredVariant
from ..models import GenerationTask, Image, utcnow
from ..progress.schema import ImageStatus, TaskState, TaskSummary
from ..providers.base import GeneratedImage
from ..spend.alerts import announce_pending
from ..spend.budget import release, settle


def start_image(task_id: str, image_id: int) -> Image | None:
    """Mark the image ``processing`` if this task still holds it queued; None when it was deleted
    or reconciled away meanwhile (nothing to do, nothing to pay)."""
    image = db.session.get(Image, image_id)
    if image is None or image.status != ImageStatus.QUEUED or image.task_id != task_id:
        return None
    image.status, image.error = ImageStatus.PROCESSING, None
    db.session.commit()
    return image


def record_generated(image: Image, generated: GeneratedImage, variants: list[StoredVariant], attempts: int,
                     placeholder: bool) -> tuple[StoredVariant, StoredVariant | None]:
    """The image is stored: a new version of it (its files, provider, prompt and cost), made active
    in the same commit; the image's attempts and cost add up everything paid for it. Earlier
    versions stay as they are. Returns (desktop, mobile)."""
    desktop = next((v for v in variants if v.variant == "desktop"), variants[0])
    mobile = next((v for v in variants if v.variant == "mobile"), None)
    add_version(image, variants, provider=generated.provider, model=generated.model, cost=generated.cost or 0.0,
                placeholder=placeholder)
    task_id = image.task_id
    image.status, image.error, image.task_id, image.generated_at = ImageStatus.GENERATED, None, None, utcnow()
    image.attempts += attempts
    image.cost = (image.cost or 0.0) + (generated.cost or 0.0)
    settle(image, task_id, "generated", generated.cost or 0.0, provider=generated.provider, model=generated.model)
    db.session.commit()
    announce_pending()
    return desktop, mobile


def record_failed(task_id: str, image_id: int, message: str, attempts: int, cost: float) -> bool:
    """Mark the image failed with its message, attempts and cost (an image the provider made but
    that could not be stored is paid for all the same). False when the task no longer holds it."""
    image = db.session.get(Image, image_id)
    if image is None or image.task_id != task_id:
        return False
    image.status, image.error, image.task_id = status_after_failure(image), message, None
    image.attempts += attempts
    image.cost = (image.cost or 0.0) + cost
    settle(image, task_id, "failed", cost)
    db.session.commit()
    announce_pending()
    return True


def release_image(task_id: str, image_id: int) -> None:
    """Cancelled before it started: back to pending (or generated, when it has a version to show);
    nothing was asked of the provider."""
    image = db.session.get(Image, image_id)
    if image is not None and image.task_id == task_id and image.status == ImageStatus.QUEUED:
        image.status, image.task_id = status_after_release(image), None
        db.session.commit()


def start_task(task: GenerationTask) -> None:
    task.state, task.started_at, task.heartbeat_at = TaskState.PROGRESS, task.started_at or utcnow(), utcnow()
    db.session.commit()


def held_images(task: GenerationTask) -> list[int]:
    """The task's images it still holds queued, in its order (a bulk task resumed after stepping aside)."""
    held = set(db.session.scalars(db.select(Image.id).where(Image.task_id == task.id,
                                                            Image.status == ImageStatus.QUEUED)))
    return [image_id for image_id in task.image_ids if image_id in held]


def beat(task_id: str) -> None:
    """The heartbeat the reconciler reads: this task's worker is alive."""
    db.session.execute(db.update(GenerationTask).filter_by(id=task_id).values(heartbeat_at=utcnow()))
    db.session.commit()


def cancel_flagged(task_id: str) -> bool:
    return bool(db.session.scalar(db.select(GenerationTask.cancelled).filter_by(id=task_id)))


def finish_task(task: GenerationTask, summary: TaskSummary, error: str | None, cancelled: bool) -> None:
    """The task's final row: SUCCESS when it ran to the end (whatever its images did), FAILURE
    when it could not run."""
    task.state = TaskState.FAILURE if error else TaskState.SUCCESS
    task.completed, task.failed = summary.completed, summary.failed
    task.cost, task.error = summary.cost, error
    task.cancelled, task.finished_at = cancelled, utcnow()
    release(task.id)
    db.session.commit()
