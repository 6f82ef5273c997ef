"""Reads of the instrument master shared by the apps that look instruments up by key."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.db.models import Q


def instruments_filter(keys: Iterable[tuple[str, int]], *, via: str = "") -> Q:
    """Rows on these (segment, instrument id) instruments: one IN per segment, OR-ed; it
    matches nothing for no instruments. `via`: the path to the instrument's columns
    ("instrument__"), none for a row that carries them itself (an instrument, a position,
    a lot, a fill)."""
    by_segment: dict[str, list[int]] = defaultdict(list)
    for segment, instrument_id in keys:
        by_segment[segment].append(instrument_id)
    condition = Q(pk__in=[])
    for segment, ids in by_segment.items():
        condition |= Q(
            **{f"{via}exchange_segment": segment, f"{via}exchange_instrument_id__in": ids}
        )
    return condition
