"""BrokerEvents as JSON for the trip through Redis: orjson writes them (a batch publishes 500),
exactly as the standard library's encoder wrote them, and they read back as they were."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from orders.brokers import event_codec
from orders.brokers.base import BrokerOrderRow, BrokerPositionRow
from orders.brokers.event_codec import _row_dict, decode_event, encode_event
from orders.brokers.events import BrokerEvent, BrokerEventKind
from tests.factories import broker_order_row, broker_trade_row

D = Decimal
AT = datetime(2026, 12, 2, 9, 15, 30, 123456, tzinfo=UTC)
IST = timezone(timedelta(hours=5, minutes=30))


def _order_row(**fields) -> BrokerOrderRow:
    """An order row with every field set: awkward text, Decimals, datetimes and a None."""
    row = broker_order_row(broker_order_id="1000000007", status="OPEN", uid='A7 "q" \\ \t')
    return replace(
        row,
        average_price=D("1E+2"),
        exchange_order_id="1000000007",
        time_in_force="DAY",
        generated_at=AT,
        transact_time=AT.replace(microsecond=0).astimezone(IST),
        **fields,
    )


def _events() -> list[BrokerEvent]:
    trade = broker_trade_row(
        execution_id="1000000007-2", broker_order_id="1000000007", traded_at=AT, quantity=None
    )
    position = BrokerPositionRow(
        exchange_segment="NSEFO",
        exchange_instrument_id=35001,
        trading_symbol="NIFTY",
        product_type="NRML",
        net_qty=-75,
        buy_qty=0,
        sell_qty=75,
        sell_avg_price=D("101.25"),
        mtm=D("0"),
    )
    return [
        BrokerEvent(7, BrokerEventKind.ORDER, "paper", AT, order=_order_row()),
        BrokerEvent(7, BrokerEventKind.TRADE, "paper", AT, trade=replace(trade, price=D("-0.05"))),
        BrokerEvent(7, BrokerEventKind.POSITION, "xts-stream", AT, position=position),
        BrokerEvent(7, BrokerEventKind.CONNECTED, "xts-stream", AT, detail="joined"),
    ]


def _as_the_standard_library_wrote_it(event: BrokerEvent) -> str:
    data = {
        "account_id": event.account_id,
        "kind": str(event.kind),
        "source": event.source,
        "received_at": event.received_at.isoformat(),
        "detail": event.detail,
    }
    for name in ("order", "trade", "position"):
        row = getattr(event, name)
        if row is not None:
            data[name] = _row_dict(row)
    return json.dumps(data, separators=(",", ":"))


def test_events_are_written_by_orjson_as_the_standard_library_wrote_them(monkeypatch):
    events = _events()
    expected = [_as_the_standard_library_wrote_it(event) for event in events]

    def standard_library(data):
        raise AssertionError("written by the standard library's encoder")

    monkeypatch.setattr(event_codec, "_compact_json", standard_library)
    assert [encode_event(event) for event in events] == expected
    assert [decode_event(encode_event(event)) for event in events] == events
    # Non-ASCII text: UTF-8 where the standard library escaped it; it reads back the same.
    rupee = BrokerEvent(7, BrokerEventKind.ORDER, "paper", AT, order=_order_row(client_id="₹ é"))
    assert json.loads(encode_event(rupee)) == json.loads(_as_the_standard_library_wrote_it(rupee))
    assert decode_event(encode_event(rupee)) == rupee
    # What orjson cannot write (an integer beyond 64 bits) goes the standard library's way.
    monkeypatch.undo()
    huge = BrokerEvent(7, BrokerEventKind.ORDER, "paper", AT, order=_order_row(quantity=2**70))
    assert encode_event(huge) == _as_the_standard_library_wrote_it(huge)
    assert decode_event(encode_event(huge)) == huge
