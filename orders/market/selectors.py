"""Reads of the instrument master shared by the apps that look instruments up by key."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.db import router
from django.db.models import Q

from orders.market.models import FairPrice, Instrument
from trading_site.core.prepared import Param, PreparedRows


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


_INSTRUMENT_NAMES = [field.attname for field in Instrument._meta.concrete_fields]
_FAIR_NAMES = [field.attname for field in FairPrice._meta.concrete_fields]
_FAIR_ID_AT = len(_INSTRUMENT_NAMES) + _FAIR_NAMES.index("id")

# Every order's validation looks its instrument up: compiled once per set of filters
# (`PreparedRows`), the row and its fair price's (none: NULLs) in one joined read.
_PRICED_INSTRUMENTS = PreparedRows(
    tuple,
    lambda **filters: Instrument.objects.filter(**filters).values_list(
        *_INSTRUMENT_NAMES, *(f"fair_price__{name}" for name in _FAIR_NAMES)
    )[:2],
)


def priced_instruments(**filters: Param) -> list[Instrument]:
    """At most two instruments matching these exact column filters (exchange_segment,
    exchange_instrument_id, trading_symbol), each with its fair price (or None) already
    read, as `select_related("fair_price")` gives them, without the ORM's compiling."""
    alias = router.db_for_read(Instrument)
    found = []
    for row in _PRICED_INSTRUMENTS(**filters):
        instrument = Instrument.from_db(alias, _INSTRUMENT_NAMES, row[: len(_INSTRUMENT_NAMES)])
        fair = None
        if row[_FAIR_ID_AT] is not None:
            fair = FairPrice.from_db(alias, _FAIR_NAMES, row[len(_INSTRUMENT_NAMES) :])
            FairPrice.instrument.field.set_cached_value(fair, instrument)
        Instrument.fair_price.related.set_cached_value(instrument, fair)
        found.append(instrument)
    return found
