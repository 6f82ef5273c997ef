"""Fair prices: writing them (feed, admin, simulated) and the paper matching they trigger."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from orders.brokers.paper.exchange import match_open_orders
from orders.market.signals import fair_prices_recorded
from orders.models import FairPrice, Instrument

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FairPriceInput:
    """One instrument's new prices; a missing average is the mid, a missing LTP the average."""

    instrument_id: int
    buy_fair_price: Decimal
    sell_fair_price: Decimal
    avg_fair_price: Decimal | None = None
    last_traded_price: Decimal | None = None


def _as_input(row: FairPriceInput | Mapping[str, Any]) -> FairPriceInput:
    if isinstance(row, FairPriceInput):
        return row
    instrument = row.get("instrument")
    instrument_id = row.get("instrument_id") or (
        instrument.pk if isinstance(instrument, Instrument) else instrument
    )

    def price(name: str) -> Decimal | None:
        value = row.get(name)
        return None if value is None else Decimal(str(value))

    # A mapping row always carries both sides (the price feed's and the tests' rows).
    return FairPriceInput(
        instrument_id=int(instrument_id),  # type: ignore[arg-type]
        buy_fair_price=price("buy_fair_price"),  # type: ignore[arg-type]
        sell_fair_price=price("sell_fair_price"),  # type: ignore[arg-type]
        avg_fair_price=price("avg_fair_price"),
        last_traded_price=price("last_traded_price"),
    )


def record_fair_prices(*, rows: Iterable[FairPriceInput | Mapping], source: str) -> list[FairPrice]:
    """Upsert the fair prices of many instruments at once; after commit, the paper exchange
    matches the open orders of those instruments against the new prices (same process)."""
    inputs = [_as_input(row) for row in rows]
    if not inputs:
        return []
    objects = []
    for item in inputs:
        avg = item.avg_fair_price
        if avg is None and item.buy_fair_price is not None and item.sell_fair_price is not None:
            avg = ((item.buy_fair_price + item.sell_fair_price) / 2).quantize(Decimal("0.0001"))
        ltp = item.last_traded_price if item.last_traded_price is not None else avg
        objects.append(
            FairPrice(
                instrument_id=item.instrument_id,
                buy_fair_price=item.buy_fair_price,
                sell_fair_price=item.sell_fair_price,
                avg_fair_price=avg,
                last_traded_price=ltp,
                source=source[:20],
            )
        )
    conflict_target: dict[str, Any] = (
        {"unique_fields": ["instrument"]}
        if connection.features.supports_update_conflicts_with_target
        else {}
    )
    instrument_ids = sorted({obj.instrument_id for obj in objects})
    with transaction.atomic():
        FairPrice.objects.bulk_create(
            objects,
            update_conflicts=True,
            update_fields=[*FairPrice.PRICE_FIELDS, "source", "updated_at"],
            **conflict_target,
        )
        transaction.on_commit(lambda: match_paper_orders(instrument_ids=instrument_ids))
        transaction.on_commit(lambda: announce_fair_prices(instrument_ids=instrument_ids))
    return list(
        FairPrice.objects.filter(instrument_id__in=instrument_ids).order_by("instrument_id")
    )


def match_paper_orders(*, instrument_ids: list[int]) -> int:
    """One paper-exchange tick for these instruments; a failure is logged, never raised, so a
    price write stands even when matching trips."""
    try:
        return match_open_orders(instrument_ids=instrument_ids)
    except Exception:
        logger.exception("paper matching failed", extra={"instrument_ids": instrument_ids[:20]})
        return 0


def announce_fair_prices(*, instrument_ids: list[int]) -> None:
    """Tell the receivers (live MTM) about the new prices; a failing receiver is logged, never
    raised: the prices stand."""
    for receiver, outcome in fair_prices_recorded.send_robust(
        sender=FairPrice, instrument_ids=instrument_ids
    ):
        if isinstance(outcome, Exception):
            logger.error(
                "fair price receiver failed",
                exc_info=outcome,
                extra={"receiver": getattr(receiver, "__name__", str(receiver))},
            )
