"""The Usage page's chart, as numbers for a server-rendered SVG (no script, no CDN): one bar per
day for images, a line for cost, each on its own scale. The template draws it; Jinja escapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

WIDTH, HEIGHT, PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 720, 240, 44, 56, 16, 28


@dataclass(frozen=True)
class Bar:
    day: str
    x: float
    y: float
    width: float
    height: float
    images: int
    failed: int
    cost: float
    cost_x: float
    cost_y: float


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    max_images: int
    max_cost: float
    cost_points: str  # the polyline's points
    baseline: float
    left: float
    right: float
    top: float


def _nice(value: float) -> float:
    return value if value > 0 else 1.0


def build_chart(series: list[dict[str, Any]]) -> Chart:
    """Coordinates for ``series`` (``daily_series``: one entry per day, oldest first)."""
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM
    max_images = max((row["images"] + row["failed"] for row in series), default=0)
    max_cost = max((row["cost"] for row in series), default=0.0)
    slot = plot_w / max(len(series), 1)
    bars = []
    for index, row in enumerate(series):
        height = plot_h * (row["images"] + row["failed"]) / _nice(max_images)
        x = PAD_LEFT + index * slot
        cost_y = PAD_TOP + plot_h - plot_h * row["cost"] / _nice(max_cost)
        bars.append(Bar(day=row["key"], x=round(x + slot * 0.15, 2), y=round(PAD_TOP + plot_h - height, 2),
                        width=round(slot * 0.7, 2), height=round(height, 2), images=row["images"],
                        failed=row["failed"], cost=row["cost"], cost_x=round(x + slot / 2, 2),
                        cost_y=round(cost_y, 2)))
    points = " ".join(f"{bar.cost_x},{bar.cost_y}" for bar in bars)
    return Chart(WIDTH, HEIGHT, bars, max_images, max_cost, points, PAD_TOP + plot_h, PAD_LEFT, WIDTH - PAD_RIGHT,
                 PAD_TOP)
