"""The pager of long lists: a few links whatever the number of pages."""

from __future__ import annotations


def page_window(page: int, pages: int, around: int = 2) -> list[int | None]:
    """The page numbers to link: the first, the last, and ``around`` pages each side of the
    current one, in order; None where pages are left out (shown as an ellipsis)."""
    shown = sorted({1, pages, *range(max(page - around, 1), min(page + around, pages) + 1)})
    window: list[int | None] = []
    for number in shown:
        if window and number - window[-1] > 1:
            window.append(None)
        window.append(number)
    return window
