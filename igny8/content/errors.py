"""Errors of the content services that the API answers with a status of their own."""

from __future__ import annotations


class ConflictError(Exception):
    """The change cannot be made in the row's present state (a task holds the image, the version is
    the active one …); answered 409 with ``message``, and nothing was written."""

    status = 409

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
