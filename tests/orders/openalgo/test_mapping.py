"""OpenAlgo's conventions mapped to the desk's and back (pure: no database)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orders.openalgo import mapping as m
from orders.openalgo.mapping import MappingError, SymbolSpec


@pytest.mark.parametrize(
    "exchange,segment",
    [
        ("NSE", "NSECM"),
        ("BSE", "BSECM"),
        ("NFO", "NSEFO"),
        ("BFO", "BSEFO"),
        ("CDS", "NSECD"),
        ("MCX", "MCXFO"),
    ],
)
def test_every_exchange_maps_to_its_xts_segment_and_back(exchange, segment):
    assert m.segment_of_exchange(exchange) == segment
    assert m.segment_of_exchange(exchange.lower()) == segment
    assert m.exchange_of_segment(segment) == exchange


@pytest.mark.parametrize("code", ["NSE_INDEX", "BCD", "NCDEX", "LSE", ""])
def test_an_exchange_the_desk_does_not_trade_is_an_error_naming_the_field(code):
    with pytest.raises(MappingError) as caught:
        m.segment_of_exchange(code)
    assert caught.value.field == "exchange"


@pytest.mark.parametrize(
    "price_type,order_type",
    [("MARKET", "MARKET"), ("LIMIT", "LIMIT"), ("SL", "STOPLIMIT"), ("SL-M", "STOPMARKET")],
)
def test_price_types_map_to_order_types_and_back(price_type, order_type):
    assert m.order_type_of_price_type(price_type) == order_type
    assert m.price_type_of_order_type(order_type) == price_type


@pytest.mark.parametrize("spelling,order_type", [("sl-m", "STOPMARKET"), ("SLM", "STOPMARKET")])
def test_other_spellings_of_a_price_type_are_read_too(spelling, order_type):
    assert m.order_type_of_price_type(spelling) == order_type


def test_no_price_type_is_openalgos_default_market():
    assert m.order_type_of_price_type("") == "MARKET"


@pytest.mark.parametrize(
    "mapper,value,field",
    [
        (m.order_type_of_price_type, "STOP", "pricetype"),
        (m.side_of_action, "HOLD", "action"),
        (m.side_of_action, "", "action"),
        (m.product_type_of_product, "BO", "product"),
    ],
)
def test_unknown_words_are_errors_naming_their_field(mapper, value, field):
    with pytest.raises(MappingError) as caught:
        mapper(value)
    assert caught.value.field == field
    if value:
        assert repr(value) in str(caught.value)


def test_actions_and_products_are_case_insensitive_with_openalgos_defaults():
    assert m.side_of_action(" buy ") == "BUY" and m.side_of_action("Sell") == "SELL"
    assert m.product_type_of_product("nrml") == "NRML" and m.product_type_of_product("") == "MIS"


@pytest.mark.parametrize(
    "symbol,spec",
    [
        ("NIFTY28MAR24FUT", SymbolSpec("NIFTY", "FUT", date(2024, 3, 28))),
        ("BANKNIFTY24APR24FUT", SymbolSpec("BANKNIFTY", "FUT", date(2024, 4, 24))),
        ("CRUDEOILM20MAY24FUT", SymbolSpec("CRUDEOILM", "FUT", date(2024, 5, 20))),
        (
            "NIFTY28MAR2420800CE",
            SymbolSpec("NIFTY", "CE", date(2024, 3, 28), Decimal("20800")),
        ),
        ("VEDL25APR24292.5CE", SymbolSpec("VEDL", "CE", date(2024, 4, 25), Decimal("292.5"))),
        ("USDINR19APR2482PE", SymbolSpec("USDINR", "PE", date(2024, 4, 19), Decimal("82"))),
        (
            "726GS203225APR2497PE",
            SymbolSpec("726GS2032", "PE", date(2024, 4, 25), Decimal("97")),
        ),
    ],
)
def test_openalgo_derivative_symbols_read_and_written_back(symbol, spec):
    assert m.parse_symbol(symbol, "NFO") == spec
    assert m.format_symbol(spec) == symbol


@pytest.mark.parametrize("symbol", ["NIFTY26DECFUT", "NIFTY31FEB24FUT", "28MAR24FUT", "RELIANCE"])
def test_what_is_not_openalgos_derivative_format_is_none(symbol):
    # The desk then looks it up as the broker's own trading symbol.
    assert m.parse_symbol(symbol, "NFO") is None


def test_an_equity_is_its_base_symbol_even_when_it_looks_like_something_else():
    assert m.parse_symbol("m&m", "NSE") == SymbolSpec("M&M", "EQ")
    assert m.parse_symbol("BAJAJ-AUTO", "BSE") == SymbolSpec("BAJAJ-AUTO", "EQ")


# An instrument-master row's columns, in the order the cases below give them.
_MASTER_COLUMNS = ("segment", "trading_symbol", "base", "expiry", "strike", "option_type")


@pytest.mark.parametrize(
    "columns,symbol",
    [
        (("NSEFO", "X", "NIFTY", date(2026, 12, 29), None, ""), "NIFTY29DEC26FUT"),
        (
            ("NSEFO", "X", "NIFTY", date(2026, 12, 29), Decimal("26000.0000"), "CE"),
            "NIFTY29DEC2626000CE",
        ),
        (("NSECM", "RELIANCE", "RELIANCE", None, None, ""), "RELIANCE"),
        # A derivative row without an expiry keeps the broker's symbol rather than guess.
        (("NSEFO", "ODD", "ODD", None, None, ""), "ODD"),
    ],
)
def test_master_rows_map_to_openalgo_symbols(columns, symbol):
    row = dict(zip(_MASTER_COLUMNS, columns, strict=True))
    assert m.openalgo_symbol(**row) == symbol


_bases = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ&", min_size=1, max_size=12)
_expiries = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))
_strikes = st.decimals(min_value=Decimal("0.05"), max_value=Decimal("99999"), places=2)


@given(base=_bases, expiry=_expiries, strike=_strikes, kind=st.sampled_from(["CE", "PE"]))
def test_any_option_round_trips(base, expiry, strike, kind):
    spec = SymbolSpec(base=base, kind=kind, expiry=expiry, strike=strike.normalize())
    parsed = m.parse_derivative_symbol(m.format_symbol(spec))
    assert parsed == spec


@given(base=_bases, expiry=_expiries)
def test_any_future_round_trips(base, expiry):
    spec = SymbolSpec(base=base, kind="FUT", expiry=expiry)
    assert m.parse_derivative_symbol(m.format_symbol(spec)) == spec


@pytest.mark.parametrize(
    "status,order_type,word",
    [
        ("PENDING", "MARKET", "pending"),
        ("OPEN", "LIMIT", "open"),
        ("OPEN", "STOPMARKET", "trigger pending"),
        ("PARTIALLY_FILLED", "LIMIT", "open"),
        ("FILLED", "MARKET", "complete"),
        ("COMPLETED", "LIMIT", "complete"),
        ("CANCELLED", "LIMIT", "cancelled"),
        ("REJECTED", "MARKET", "rejected"),
    ],
)
def test_order_statuses_in_openalgos_words(status, order_type, word):
    assert m.order_status_text(status, order_type) == word


def test_timestamps_are_openalgos_in_india_time():
    moment = datetime(2025, 4, 8, 8, 28, 3, tzinfo=ZoneInfo("UTC"))
    assert m.openalgo_timestamp(moment) == "08-Apr-2025 13:58:03"
    assert m.expiry_text(date(2026, 8, 25)) == "25-AUG-26"


# ---- position-sized calls --------------------------------------------------------------------


@pytest.mark.parametrize(
    "action,quantity,size,current,expected",
    [
        # OpenAlgo's own table (docs: PlaceSmartOrder, "How it works").
        ("BUY", 100, 0, 0, ("BUY", 100)),
        ("BUY", 100, 100, -100, ("BUY", 200)),
        ("BUY", 100, 100, 100, None),
        ("BUY", 100, 200, 100, ("BUY", 100)),
        ("SELL", 100, 0, 0, ("SELL", 100)),
        ("SELL", 100, -100, 100, ("SELL", 200)),
        ("SELL", 100, -100, -100, None),
        ("SELL", 100, -200, -100, ("SELL", 100)),
        # Flattening, whatever the action says.
        ("SELL", 0, 0, 40, ("SELL", 40)),
        ("BUY", 0, 0, -40, ("BUY", 40)),
        ("BUY", 0, 0, 0, None),
    ],
)
def test_smart_orders_place_the_difference_to_the_target(action, quantity, size, current, expected):
    change = m.smart_order_change(
        action=action, quantity=quantity, position_size=size, current=current
    )
    assert (None if change is None else (change.side, change.quantity)) == expected


@pytest.mark.parametrize(
    "action,size,target",
    [("BUY", 5, 5), ("BUY", 0, 0), ("SELL", 0, 0), ("SELL", -5, -5), ("SELL", 5, -5)],
)
def test_the_strategy_webhooks_target(action, size, target):
    assert m.webhook_target(action=action, position_size=size) == target


def test_a_buy_to_a_short_position_could_mean_two_things_and_is_refused():
    with pytest.raises(MappingError) as caught:
        m.webhook_target(action="BUY", position_size=-5)
    assert caught.value.field == "position_size"


def test_split_quantities_put_the_remainder_last_and_cap_the_count():
    assert m.split_quantities(105, 20) == [20, 20, 20, 20, 20, 5]
    assert m.split_quantities(10, 50) == [10]
    with pytest.raises(MappingError) as caught:
        m.split_quantities(1000, 1)
    assert caught.value.field == "splitsize"


def test_a_split_into_too_many_pieces_is_refused_before_a_piece_is_made():
    # Any trade key's splitorder of the largest quantity in pieces of 1 built a list of two
    # billion pieces (17 GB) before counting them: the web process was killed.
    with pytest.raises(MappingError) as caught:
        m.split_quantities(2**31 - 1, 1)
    assert caught.value.field == "splitsize"
    assert "2147483647 orders" in caught.value.message
