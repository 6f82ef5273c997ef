"""OpenAlgo's answers' shapes (orders.openalgo.presenters)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from orders.openalgo.presenters import trade_data
from tests.factories import broker_trade_row, make_instrument

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("multiplier, value", [(1, 202.0), (10, 2020.0)])
def test_a_fills_trade_value_is_in_rupees_with_its_contracts_multiplier(multiplier, value):
    """price x quantity x multiplier, as the desk's own trade book shows it (an MCX contract
    of multiplier 10 bought 2 at 101 is worth 2,020, not 202)."""
    instrument = make_instrument(symbol="GOLDM", segment="MCXFO", multiplier=multiplier)
    fill = broker_trade_row(
        execution_id="E1",
        broker_order_id="1000000001",
        traded_at=datetime(2026, 12, 2, 4, 0, tzinfo=UTC),
        instrument=instrument,
        unique_identifier="U1",
        product_type="NRML",
        quantity=2,
        price=Decimal("101.00"),
    )
    key = ("MCXFO", instrument.exchange_instrument_id)
    answer = trade_data(fill, {key: instrument}, {})
    assert (answer["average_price"], answer["trade_value"]) == (101.0, value)
