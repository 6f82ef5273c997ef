"""Streamed CSV of the trade book and of the order list, with the filters of their pages and
endpoints. Plain numbers (no Indian grouping, no rupee sign: a spreadsheet must read them),
times in ISO 8601 with the +05:30 offset. Text a spreadsheet would run as a formula (a cell
starting with = + - @) is quoted with a leading apostrophe; numbers are never touched.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from decimal import Decimal
from itertools import chain, islice

from django import forms
from django.db.models import QuerySet
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone

from orders.models import BrokerTrade, Order
from orders.tradebook.selectors import owners_of, values_of
from trading_site.core.market_hours import MARKET_TZ

CHUNK = 1000
CENTS = Decimal("0.01")

TRADE_COLUMNS = (
    "traded_at",
    "account",
    "trading_symbol",
    "exchange_segment",
    "exchange_instrument_id",
    "side",
    "product_type",
    "quantity",
    "price",
    "value",
    "execution_id",
    "broker_order_id",
    "order_id",
    "leg_role",
)
ORDER_COLUMNS = (
    "order_id",
    "created_at",
    "account",
    "symbol",
    "exchange_segment",
    "exchange_instrument_id",
    "side",
    "product_type",
    "kind",
    "source",
    "order_type",
    "quantity",
    "filled_quantity",
    "limit_price",
    "stop_price",
    "sl_price",
    "status",
    "pnl",
    "open_position",
    "strategy",
    "external_id",
    "client_order_id",
)


class _Line:
    """csv.writer writes into this and gets the line back (nothing is buffered)."""

    def write(self, value: str) -> str:
        return value


def iso(value) -> str:
    return timezone.localtime(value, MARKET_TZ).isoformat() if value is not None else ""


def number(value) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def text(value) -> str:
    value = "" if value is None else str(value)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _chunks(queryset: QuerySet, size: int = CHUNK) -> Iterator[list]:
    batch = []
    for row in queryset.iterator(chunk_size=size):
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def trade_rows(trades: QuerySet[BrokerTrade]) -> Iterator[list[str]]:
    yield list(TRADE_COLUMNS)
    for batch in _chunks(trades):
        owners = owners_of(batch)
        values = values_of(batch)
        for trade in batch:
            owner = owners.get((trade.account_id, trade.broker_order_id))
            yield [
                iso(trade.traded_at),
                text(trade.account.account_name),
                text(trade.trading_symbol),
                trade.exchange_segment,
                number(trade.exchange_instrument_id),
                trade.side,
                trade.product_type,
                number(trade.quantity),
                number(trade.price),
                number(values[trade.pk].quantize(CENTS)),
                text(trade.execution_id),
                text(trade.broker_order_id),
                number(owner.order_id) if owner else "",
                owner.role if owner else "",
            ]


def order_rows(orders: QuerySet[Order]) -> Iterator[list[str]]:
    yield list(ORDER_COLUMNS)
    for batch in _chunks(orders.select_related("account", "strategy")):
        for order in batch:
            yield [
                number(order.pk),
                iso(order.created_at),
                text(order.account.account_name),
                text(order.symbol),
                order.exchange_segment,
                number(order.exchange_instrument_id),
                order.side,
                order.product_type,
                order.kind,
                order.source,
                order.order_type,
                number(order.quantity),
                number(order.filled_quantity),
                number(order.limit_price),
                number(order.stop_price),
                number(order.sl_price),
                order.status,
                number(order.pnl),
                number(order.open_position),
                text(order.strategy.name if order.strategy else ""),
                text(order.external_id),
                text(order.client_order_id or ""),
            ]


def csv_response(rows: Iterable[list[str]], *, filename: str) -> StreamingHttpResponse:
    """The rows as a streamed CSV. The header and the first row are read before answering:
    that runs the query, so a query that fails (a date past what the database holds, say) is
    the view's error answer, not a 200 whose body breaks off after the header."""
    rows = iter(rows)
    first = list(islice(rows, 2))
    writer = csv.writer(_Line())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in chain(first, rows)),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def refused_filters(form: forms.Form) -> HttpResponse | None:
    """A 400 naming what is wrong with an export's filters (a bound form that is not valid),
    or None: a download with a bad filter is refused, never the whole list instead (nor an
    empty one, which reads as "nothing to export")."""
    if not form.is_bound or form.is_valid():
        return None
    problems = "; ".join(
        f"{name}: {' '.join(str(message) for message in messages)}"
        for name, messages in form.errors.items()
    )
    return HttpResponse(
        f"Not exported, the filters are wrong: {problems}\n",
        status=400,
        content_type="text/plain; charset=utf-8",
    )


def export_name(kind: str) -> str:
    return f"{kind}-{timezone.localtime(timezone.now(), MARKET_TZ):%Y%m%d-%H%M%S}.csv"
