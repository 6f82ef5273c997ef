"""The intraday MTM curve: its maximum drawdown, the sum of several accounts' curves, and
the geometry of the server-drawn SVG line. Pure: no Django.

A curve is a list of (minute, value) points in time order, one per minute at most (pnl.models
MtmSample). Maximum drawdown = the largest fall from a running peak to a later point:
max over j of (max over i <= j of v[i]) - v[j]; 0 for a curve that never falls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

ZERO = Decimal("0")

Point = tuple[datetime, Decimal]


@dataclass(frozen=True)
class Drawdown:
    amount: Decimal  # >= 0
    peak_index: int | None  # where the fall started (None: no fall)
    trough_index: int | None

    @property
    def peak_and_trough(self) -> tuple[int, int] | None:
        if self.peak_index is None or self.trough_index is None:
            return None
        return self.peak_index, self.trough_index


def max_drawdown(values: Sequence[Decimal]) -> Drawdown:
    best = Drawdown(amount=ZERO, peak_index=None, trough_index=None)
    peak_index = None
    for index, value in enumerate(values):
        if peak_index is None or value > values[peak_index]:
            peak_index = index
            continue
        fall = values[peak_index] - value
        if fall > best.amount:
            best = Drawdown(amount=fall, peak_index=peak_index, trough_index=index)
    return best


def summed_curve(curves: Mapping[Any, Sequence[Point]]) -> list[Point]:
    """Several accounts' curves added minute by minute: at each minute any account has a
    point, every account counts with its latest value so far (carried forward; an account
    with no point yet counts 0)."""
    minutes = sorted({minute for points in curves.values() for minute, _value in points})
    cursors = {key: 0 for key in curves}
    latest: dict[object, Decimal] = {key: ZERO for key in curves}
    summed: list[Point] = []
    for minute in minutes:
        for key, points in curves.items():
            index = cursors[key]
            while index < len(points) and points[index][0] <= minute:
                latest[key] = points[index][1]
                index += 1
            cursors[key] = index
        summed.append((minute, sum(latest.values(), ZERO)))
    return summed


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    points: str  # the SVG polyline's "x,y x,y ..."
    zero_y: float | None  # the zero line, when zero is inside the range
    top_label: str
    bottom_label: str
    first_label: str
    last_label: str
    drawdown: tuple[float, float, float, float] | None  # x1, y1, x2, y2 of peak -> trough
    last_x: float
    last_y: float
    bottom_label_y: float  # the lowest value's label, just above the plot's bottom edge
    time_label_y: float  # the times, under the plot


def line_chart(
    points: Sequence[Point],
    *,
    drawdown: Drawdown,
    money,
    clock,
    width: int = 720,
    height: int = 220,
) -> LineChart | None:
    """Scale the curve into a width x height box (time across, value up). `money` and `clock`
    format the axis labels (the caller's Indian number and IST time formats)."""
    if not points:
        return None
    values = [value for _minute, value in points]
    top, bottom = max(max(values), ZERO), min(min(values), ZERO)
    span = (top - bottom) or Decimal("1")
    pad_top, pad_bottom, pad_left, pad_right = 14, 18, 4, 8
    plot_w, plot_h = width - pad_left - pad_right, height - pad_top - pad_bottom
    start = points[0][0]
    seconds = max((points[-1][0] - start).total_seconds(), 60.0)

    def x_of(minute: datetime) -> float:
        return round(pad_left + (minute - start).total_seconds() / seconds * plot_w, 2)

    def y_of(value: Decimal) -> float:
        return round(pad_top + float((top - value) / span) * plot_h, 2)

    coordinates = [(x_of(minute), y_of(value)) for minute, value in points]
    if len(coordinates) == 1:  # one point: a short flat line, so it shows
        coordinates.append((round(coordinates[0][0] + 6, 2), coordinates[0][1]))
    marked = drawdown.peak_and_trough
    return LineChart(
        width=width,
        height=height,
        points=" ".join(f"{x},{y}" for x, y in coordinates),
        zero_y=y_of(ZERO),
        top_label=money(top),
        bottom_label=money(bottom),
        first_label=clock(points[0][0]),
        last_label=clock(points[-1][0]),
        drawdown=(
            (*coordinates[marked[0]], *coordinates[marked[1]]) if marked is not None else None
        ),
        last_x=coordinates[-1][0] if len(points) > 1 else coordinates[0][0],
        last_y=coordinates[-1][1],
        bottom_label_y=round(pad_top + plot_h - 3, 2),
        time_label_y=height - 3,
    )
