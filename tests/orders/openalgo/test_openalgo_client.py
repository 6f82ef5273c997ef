"""The desk driven by OpenAlgo's own Python client (`openalgo` from PyPI, unmodified) over
real HTTP (a live server), on paper accounts: every call of the compatible API, its errors
(which change nothing in the database nor at the paper exchange), brackets that get their
protection, retries that place once, the analyzer's paper twin and the strategy webhook."""

from __future__ import annotations

import threading
import time
from datetime import date, datetime, timedelta
from datetime import time as clock
from decimal import Decimal

import httpx
import openalgo
import pytest
from django.core.cache import cache

from accounts.models import BrokerAccount, Strategy
from accounts.services import deactivate_broker_account
from orders.alerts.services import save_webhook
from orders.brokers.paper.models import PaperBook, PaperOrder, PaperTrade
from orders.models import Order, OrderEvent, OrderLeg
from orders.openalgo.models import OpenAlgoRequest
from orders.selectors import repricing_anchors
from orders.services import place_single_order, reprice_leg
from tests.factories import (
    make_fair_price,
    make_instrument,
    make_strategy,
    set_price_and_match,
    single_request,
)
from tests.orders.openalgo.support import ok, positions, refused, state
from trading_site.core.market_hours import MARKET_TZ
from trading_site.core.models import TradingHoliday

pytestmark = pytest.mark.django_db(transaction=True)


def limit_order(
    client, *, symbol="RELIANCE", exchange="NSE", action="BUY", quantity=1, price="90", **fields
) -> dict:
    """placeorder for a LIMIT order (1 RELIANCE bought at 90 unless told otherwise)."""
    return client.placeorder(
        symbol=symbol,
        action=action,
        exchange=exchange,
        quantity=quantity,
        price_type="LIMIT",
        price=price,
        **fields,
    )


def modify_reliance(client, order_id: str, *, action="BUY", quantity: int, price: str, **fields):
    """modifyorder on a RELIANCE MIS order at NSE."""
    return client.modifyorder(
        order_id=order_id,
        symbol="RELIANCE",
        action=action,
        exchange="NSE",
        product="MIS",
        quantity=quantity,
        price=price,
        **fields,
    )


def send_at_once(copies: int, send) -> list[dict]:
    """The answers of `copies` calls of `send` made at once, one thread each."""
    answers: list[dict] = []
    threads = [threading.Thread(target=lambda: answers.append(send())) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == copies
    return answers


# ---- placing ------------------------------------------------------------------------------------


def test_placeorder_places_through_the_desks_write_ahead_path(desk):
    answer = ok(
        desk.client().placeorder(
            strategy="Breakout", symbol="RELIANCE", action="BUY", exchange="NSE", quantity=3
        )
    )
    order = Order.objects.get(pk=int(answer["orderid"]))
    assert answer["mode"] == "live"
    assert order.account_id == desk.account.pk and order.user_id == desk.user.pk
    assert (order.side, order.quantity, order.order_type, order.product_type) == (
        "BUY",
        3,
        "MARKET",
        "MIS",
    )
    assert order.source == Order.Source.OPENALGO and order.kind == Order.Kind.SINGLE
    assert order.strategy == Strategy.objects.get(user=desk.user, name="Breakout")
    assert order.client_order_id.startswith("openalgo:")
    entry = order.legs.get()
    assert PaperOrder.objects.get(unique_identifier=entry.unique_identifier).quantity == 3
    events = OrderEvent.objects.filter(order=order)
    assert {"order_created", "leg_accepted"} <= set(events.values_list("kind", flat=True))
    assert set(events.values_list("actor", flat=True)) == {f"openalgo:key:{desk.trade_key_row.pk}"}


def test_the_orders_rate_limit_holds_for_openalgo_calls(desk, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "orders": "1/0.01"}
    client = desk.client()
    ok(client.placeorder(symbol="RELIANCE", action="BUY", exchange="NSE", quantity=1))
    before = state()
    assert refused(client.placeorder(symbol="RELIANCE", action="SELL", exchange="NSE"), 429)
    assert state() == before
    ok(client.orderbook())  # reads draw on their own bucket


def test_placeorder_in_openalgos_futures_and_options_symbols(desk):
    client = desk.client()
    future = ok(
        client.placeorder(
            symbol="NIFTY29DEC26FUT", action="SELL", exchange="NFO", quantity=65, product="NRML"
        )
    )
    option = ok(
        limit_order(client, symbol="NIFTY29DEC2626000CE", exchange="NFO", quantity=130, price="150")
    )
    assert Order.objects.get(pk=int(future["orderid"])).instrument == desk.future
    placed = Order.objects.get(pk=int(option["orderid"]))
    assert placed.instrument == desk.option and placed.limit_price == Decimal("150")


def test_a_retried_placeorder_places_once_and_answers_the_first_order(desk):
    client = desk.client()
    first = ok(client.placeorder(symbol="RELIANCE", action="BUY", exchange="NSE", quantity=2))
    again = ok(client.placeorder(symbol="RELIANCE", action="BUY", exchange="NSE", quantity=2))
    assert again["orderid"] == first["orderid"] and again["replayed"] is True
    assert Order.objects.count() == 1 and PaperOrder.objects.count() == 1
    # Other content is another order (the documented way to mean two identical orders).
    other = ok(
        client.placeorder(symbol="RELIANCE", action="BUY", exchange="NSE", quantity=2, tag="2")
    )
    assert other["orderid"] != first["orderid"] and Order.objects.count() == 2


def test_twenty_copies_at_once_place_one_order(desk):
    answers = send_at_once(20, lambda: limit_order(desk.client(), quantity=7, price="99"))
    assert {ok(a)["orderid"] for a in answers} == {str(Order.objects.get().pk)}
    assert PaperOrder.objects.count() == 1


def test_after_the_window_the_same_request_is_a_new_order(desk, settings):
    settings.OPENALGO_IDEMPOTENCY_SECONDS = 1
    client = desk.client()
    first = ok(client.placeorder(symbol="RELIANCE", action="BUY", exchange="NSE", quantity=1))
    time.sleep(2.2)
    second = ok(client.placeorder(symbol="RELIANCE", action="BUY", exchange="NSE", quantity=1))
    assert second["orderid"] != first["orderid"] and Order.objects.count() == 2


def test_placeorder_with_stoploss_and_target_is_a_bracket_protected_after_the_fill(desk):
    answer = ok(desk.client().placeorder(**desk.BRACKET))
    assert answer["kind"] == "BRACKET"
    bracket = Order.objects.get(pk=int(answer["orderid"]))
    assert bracket.kind == Order.Kind.BRACKET and bracket.sl_price == Decimal("95")
    assert bracket.targets == [{"price": "110", "quantity": 10}]
    desk.fill_and_protect(answer["orderid"])
    legs = {leg.role: leg for leg in bracket.legs.all()}
    assert legs["ENTRY"].status == "FILLED"
    sl, tp = legs["STOP_LOSS"], legs["TAKE_PROFIT"]
    assert (sl.side, sl.quantity, sl.stop_price, sl.status) == ("SELL", 10, Decimal("95"), "OPEN")
    assert (tp.side, tp.quantity, tp.limit_price, tp.status) == ("SELL", 10, Decimal("110"), "OPEN")
    at_exchange = PaperOrder.objects.filter(
        unique_identifier__in=[sl.unique_identifier, tp.unique_identifier]
    )
    assert sorted(at_exchange.values_list("status", flat=True)) == ["OPEN", "OPEN"]


def test_placesmartorder_moves_the_position_to_position_size(desk):
    client = desk.client()
    opened = ok(
        client.placesmartorder(
            symbol="RELIANCE", action="BUY", exchange="NSE", quantity=5, position_size=5
        )
    )
    assert (opened["action"], opened["quantity"], opened["current_position"]) == ("BUY", 5, 0)
    assert positions(client)[("RELIANCE", "MIS")] == 5
    matched = ok(
        client.placesmartorder(
            symbol="RELIANCE", action="BUY", exchange="NSE", quantity=5, position_size=5, tag="b"
        )
    )
    assert "No Action" in matched["message"] and Order.objects.count() == 1
    flipped = ok(
        client.placesmartorder(
            symbol="RELIANCE", action="SELL", exchange="NSE", quantity=5, position_size=-3
        )
    )
    assert (flipped["action"], flipped["quantity"]) == ("SELL", 8)
    assert (
        ok(client.openposition(symbol="RELIANCE", exchange="NSE", product="MIS"))["quantity"]
        == "-3"
    )
    flat = ok(
        client.placesmartorder(
            symbol="RELIANCE", action="BUY", exchange="NSE", quantity=0, position_size=0
        )
    )
    assert (flat["action"], flat["quantity"]) == ("BUY", 3)
    assert positions(client)[("RELIANCE", "MIS")] == 0


def test_flattening_a_brackets_position_exits_through_the_bracket(desk):
    client = desk.client()
    answer = ok(client.placeorder(**desk.BRACKET))
    bracket = desk.fill_and_protect(answer["orderid"])
    flat = ok(
        client.placesmartorder(
            symbol="RELIANCE", action="SELL", exchange="NSE", quantity=0, position_size=0
        )
    )
    assert flat["orderid"] == str(bracket.pk) and flat["quantity"] == 10
    legs = {leg.role: leg for leg in bracket.legs.all()}
    # The stop-loss and target are cancelled before the exit goes out: neither can fill
    # later and open the position again the other way.
    assert legs["STOP_LOSS"].status == "CANCELLED" and legs["TAKE_PROFIT"].status == "CANCELLED"
    assert (legs["EXIT"].side, legs["EXIT"].quantity, legs["EXIT"].order_type) == (
        "SELL",
        10,
        "MARKET",
    )
    assert positions(client)[("RELIANCE", "MIS")] == 0
    assert Order.objects.count() == 1  # no stray order beside the bracket
    cancelled_at_exchange = PaperOrder.objects.filter(
        unique_identifier__in=[legs["STOP_LOSS"].unique_identifier]
    ).values_list("status", flat=True)
    assert list(cancelled_at_exchange) == ["CANCELLED"]


def test_basketorder_places_each_order_alone_buys_first(desk):
    answer = desk.client().basketorder(
        strategy="Rebalance",
        orders=[
            {"symbol": "RELIANCE", "exchange": "NSE", "action": "SELL", "quantity": "1"},
            {
                "symbol": "RELIANCE",
                "exchange": "NSE",
                "action": "BUY",
                "quantity": "2",
                "pricetype": "LIMIT",
                "price": "99",
            },
            {"symbol": "NOSUCH", "exchange": "NSE", "action": "BUY", "quantity": "1"},
        ],
    )
    results = ok(answer)["results"]
    assert [r["status"] for r in results] == ["success", "success", "error"]
    assert "NOSUCH" in results[2]["message"]
    sell, buy = (Order.objects.get(pk=int(results[i]["orderid"])) for i in (0, 1))
    assert buy.pk < sell.pk  # the BUY went first
    assert {sell.strategy.name, buy.strategy.name} == {"Rebalance"}
    assert Order.objects.count() == 2 == PaperOrder.objects.count()


def test_splitorder_places_the_quantity_in_pieces_remainder_last(desk):
    answer = ok(
        desk.client().splitorder(
            symbol="RELIANCE",
            action="SELL",
            exchange="NSE",
            quantity=105,
            splitsize=20,
            price_type="LIMIT",
            price="101",
        )
    )
    assert (answer["split_size"], answer["total_quantity"]) == (20, 105)
    assert [r["quantity"] for r in answer["results"]] == [20, 20, 20, 20, 20, 5]
    assert [r["order_num"] for r in answer["results"]] == [1, 2, 3, 4, 5, 6]
    quantities = [Order.objects.get(pk=int(r["orderid"])).quantity for r in answer["results"]]
    assert quantities == [20, 20, 20, 20, 20, 5] and PaperOrder.objects.count() == 6


# ---- changing -------------------------------------------------------------------------------------


def test_modifyorder_changes_price_and_quantity_at_the_exchange(desk):
    client = desk.client()
    placed = ok(client.placeorder(**desk.WORKING))
    answer = ok(
        modify_reliance(client, placed["orderid"], quantity=4, price="96", price_type="LIMIT")
    )
    assert answer["orderid"] == placed["orderid"]
    leg = Order.objects.get(pk=int(placed["orderid"])).legs.get()
    assert (leg.limit_price, leg.quantity) == (Decimal("96"), 4)
    at_exchange = PaperOrder.objects.get(unique_identifier=leg.unique_identifier)
    assert (at_exchange.limit_price, at_exchange.quantity) == (Decimal("96"), 4)
    before = state()
    changed_side = modify_reliance(client, placed["orderid"], action="SELL", quantity=4, price="97")
    assert "action" in refused(changed_side, 400) and state() == before


def test_cancelorder_and_orderstatus(desk):
    client = desk.client()
    placed = ok(client.placeorder(**desk.WORKING))
    status = ok(client.orderstatus(order_id=placed["orderid"]))["data"]
    assert (status["order_status"], status["pricetype"], status["price"]) == ("open", "LIMIT", 95.0)
    assert (status["symbol"], status["exchange"], status["quantity"]) == ("RELIANCE", "NSE", "3")
    assert ok(client.cancelorder(order_id=placed["orderid"]))["orderid"] == placed["orderid"]
    assert ok(client.orderstatus(order_id=placed["orderid"]))["data"]["order_status"] == "cancelled"
    leg = Order.objects.get(pk=int(placed["orderid"])).legs.get()
    assert PaperOrder.objects.get(unique_identifier=leg.unique_identifier).status == "CANCELLED"
    ok(client.cancelorder(order_id=placed["orderid"]))  # already cancelled: success, as OpenAlgo


def re_priced_stop_limit(desk, client) -> tuple[dict, Order, OrderLeg]:
    """An SL order (trigger 101, limit 101.50) placed through `client`, the price gone to 103
    (through the stop, past the limit: stuck) and its entry re-priced to 102: placeorder's
    answer, the order and its entry leg."""
    stop_limit = dict(desk.WORKING, price_type="SL", price="101.50", trigger_price="101")
    placed = ok(client.placeorder(**stop_limit))
    set_price_and_match(desk.stock, "103")
    order = Order.objects.get(pk=int(placed["orderid"]))
    entry = order.legs.get()
    reprice_leg(
        leg_id=entry.pk, account_id=desk.account.pk, new_limit_price=Decimal("102"), actor="test"
    )
    return placed, order, entry


def test_orderstatus_shows_the_price_the_desk_re_priced_the_entry_to(desk):
    # A re-pricing leaves the order's prices as the trader set them (a regeneration
    # re-places a rejected order there): orderstatus answers the entry's at the broker, as
    # a broker's order book does, not the order's.
    client = desk.client()
    placed, order, _entry = re_priced_stop_limit(desk, client)
    status = ok(client.orderstatus(order_id=placed["orderid"]))["data"]
    assert (status["pricetype"], status["price"], status["trigger_price"]) == ("SL", 102.0, 101.0)
    [row] = ok(client.orderbook())["data"]["orders"]
    assert (row["price"], row["trigger_price"]) == (102.0, 101.0)
    order.refresh_from_db()
    assert (order.limit_price, order.stop_price) == (Decimal("101.50"), Decimal("101"))


def test_modifyorder_echoing_the_re_priced_price_changes_only_the_quantity(desk):
    # OpenAlgo's modifyorder sends every field: a client changing the quantity sends back
    # the price orderstatus showed, the entry's re-priced one. That took the working price
    # as the trader's own (onto the order, and re-pricing's bound afresh from it).
    client = desk.client()
    placed, order, entry = re_priced_stop_limit(desk, client)
    status = ok(client.orderstatus(order_id=placed["orderid"]))["data"]
    echoed = {"price": str(status["price"]), "trigger_price": str(status["trigger_price"])}

    ok(modify_reliance(client, placed["orderid"], quantity=4, price_type="SL", **echoed))

    entry.refresh_from_db()
    assert (entry.quantity, entry.limit_price, entry.stop_price) == (4, 102, 101)
    order.refresh_from_db()
    assert (order.quantity, order.limit_price, order.stop_price) == (4, Decimal("101.50"), 101)
    assert repricing_anchors([entry.pk]) == {entry.pk: Decimal("101.50")}
    # The same again changes nothing: refused, as a PATCH of nothing is.
    before = state()
    again = modify_reliance(client, placed["orderid"], quantity=4, price_type="SL", **echoed)
    assert refused(again, 400) == (
        "request: nothing to change: price, trigger_price and quantity are the order's"
    )
    assert state() == before


def test_cancelallorder_cancels_every_working_order_of_the_account(desk):
    client = desk.client()
    ids = [ok(limit_order(client, quantity=q))["orderid"] for q in (1, 2)]
    answer = ok(client.cancelallorder())
    assert sorted(answer["canceled_orders"]) == sorted(ids) and answer["failed_cancellations"] == []
    assert answer["message"] == "Canceled 2 orders. Failed to cancel 0 orders."
    assert set(PaperOrder.objects.values_list("status", flat=True)) == {"CANCELLED"}


def test_closeposition_squares_off_every_position(desk):
    client = desk.client()
    ok(client.placeorder(symbol="RELIANCE", action="BUY", exchange="NSE", quantity=3))
    ok(
        client.placeorder(
            symbol="NIFTY29DEC26FUT", action="SELL", exchange="NFO", quantity=65, product="NRML"
        )
    )
    assert positions(client) == {("RELIANCE", "MIS"): 3, ("NIFTY29DEC26FUT", "NRML"): -65}
    answer = ok(client.closeposition(strategy="EOD"))
    assert answer["message"] == "All Open Positions Squared Off" and len(answer["orderids"]) == 2
    assert positions(client) == {("RELIANCE", "MIS"): 0, ("NIFTY29DEC26FUT", "NRML"): 0}
    assert ok(client.closeposition(strategy="EOD again"))["message"] == "No open positions to close"


def test_closeposition_exits_a_brackets_position_through_the_bracket_and_sends_once(desk):
    # closeposition is the desk's own position exit (orders.positions.services): the
    # bracket's stop-loss and target are cancelled first, its position leaves through its
    # own exit leg, and a later closeposition finds nothing more to send.
    client = desk.client()
    answer = ok(client.placeorder(**desk.BRACKET))
    bracket = desk.fill_and_protect(answer["orderid"])

    closed = ok(client.closeposition(strategy="EOD"))

    assert closed["orderids"] == [str(bracket.pk)]
    legs = {leg.role: leg for leg in bracket.legs.all()}
    assert legs["STOP_LOSS"].status == "CANCELLED" and legs["TAKE_PROFIT"].status == "CANCELLED"
    assert (legs["EXIT"].side, legs["EXIT"].quantity) == ("SELL", 10)
    assert positions(client)[("RELIANCE", "MIS")] == 0
    assert Order.objects.count() == 1  # no stray order beside the bracket
    replayed = ok(client.closeposition(strategy="EOD"))  # the same request: its first answer
    assert replayed["replayed"] is True and replayed["orderids"] == closed["orderids"]
    again = ok(client.closeposition(strategy="EOD 2"))
    assert again["message"] == "No open positions to close"
    assert OrderLeg.objects.filter(order=bracket, role="EXIT").count() == 1


# ---- books ------------------------------------------------------------------------------------------


def test_orderbook_tradebook_positionbook_holdings_and_funds(desk):
    client = desk.client()
    bought = ok(
        client.placeorder(
            symbol="RELIANCE", action="BUY", exchange="NSE", quantity=4, product="CNC"
        )
    )
    ok(limit_order(client, action="SELL", price="150"))
    book = ok(client.orderbook())["data"]
    assert [o["orderid"] for o in book["orders"]][0] == bought["orderid"]
    assert book["orders"][0]["order_status"] == "complete"  # the fill, read from the broker
    assert book["statistics"] == {
        "total_buy_orders": 1.0,
        "total_sell_orders": 1.0,
        "total_completed_orders": 1.0,
        "total_open_orders": 1.0,
        "total_rejected_orders": 0.0,
    }
    trades = ok(client.tradebook())["data"]
    assert [(t["orderid"], t["action"], t["quantity"]) for t in trades] == [
        (bought["orderid"], "BUY", 4.0)
    ]
    assert trades[0]["trade_value"] == pytest.approx(trades[0]["average_price"] * 4)
    assert positions(client) == {("RELIANCE", "CNC"): 4}
    # Holdings are the broker's delivery holdings (orders.positions.holdings, as on the
    # desk's positions page): bought today is a position, not yet a holding.
    empty = ok(client.holdings())["data"]
    assert empty["holdings"] == [] and empty["statistics"]["totalinvvalue"] == 0
    funds = ok(client.funds())["data"]
    assert set(funds) == {
        "availablecash",
        "collateral",
        "m2mrealized",
        "m2munrealized",
        "utiliseddebits",
    }
    assert Decimal(funds["availablecash"]) < Decimal("1000000")  # margin is blocked
    # Carried over from an earlier day, the CNC buy is a holding.
    for trade in PaperTrade.objects.filter(book__account_id=desk.account.pk):
        trade.traded_at -= timedelta(days=1)
        trade.save(update_fields=["traded_at"])
    cache.delete(f"holdings:{desk.account.pk}")  # the broker's answer is kept a minute
    holdings = ok(client.holdings())["data"]
    assert [(h["symbol"], h["quantity"], h["product"]) for h in holdings["holdings"]] == [
        ("RELIANCE", 4, "CNC")
    ]
    assert holdings["statistics"]["totalinvvalue"] > 0


def test_quotes_symbol_and_search(desk):
    client = desk.client()
    quote = ok(client.quotes(symbol="NIFTY29DEC2626000CE", exchange="NFO"))["data"]
    assert (quote["ltp"], quote["bid"], quote["ask"]) == (180.0, 179.75, 180.25)
    future = ok(client.symbol(symbol="NIFTY29DEC26FUT", exchange="NFO"))["data"]
    assert (future["brsymbol"], future["lotsize"], future["instrumenttype"]) == (
        "NIFTY26DECFUT",
        65,
        "FUT",
    )
    assert (future["expiry"], future["token"], future["exchange"]) == ("29-DEC-26", "52001", "NFO")
    found = ok(client.search(query="NIFTY 26000 DEC CE", exchange="NFO"))
    assert [row["symbol"] for row in found["data"]] == ["NIFTY29DEC2626000CE"]
    assert found["message"] == "Found 1 matching symbols"
    equity = ok(client.symbol(symbol="RELIANCE", exchange="NSE"))["data"]
    assert (equity["symbol"], equity["instrumenttype"], equity["strike"]) == (
        "RELIANCE",
        "EQ",
        -0.01,
    )


def test_market_timings_and_holidays(desk, settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = False
    TradingHoliday.objects.create(date=date(2026, 12, 25), description="Christmas")
    client = desk.client()
    holidays = ok(client.holidays(year=2026))
    assert holidays["timezone"] == "Asia/Kolkata"
    assert [(h["date"], h["description"]) for h in holidays["data"]] == [
        ("2026-12-25", "Christmas")
    ]
    assert ok(client.timings(date="2026-12-25"))["data"] == []
    assert ok(client.timings(date="2026-12-26"))["data"] == []  # a Saturday
    rows = ok(client.timings(date="2026-12-24"))["data"]
    assert [row["exchange"] for row in rows] == ["NSE", "BSE", "NFO", "BFO", "CDS", "MCX"]
    opens = datetime.combine(date(2026, 12, 24), clock(9, 26), tzinfo=MARKET_TZ)
    closes = datetime.combine(date(2026, 12, 24), clock(15, 30), tzinfo=MARKET_TZ)
    assert rows[0]["start_time"] == int(opens.timestamp() * 1000)
    assert rows[0]["end_time"] == int(closes.timestamp() * 1000)
    assert "year" in refused(client.holidays(year=1999), 400)


# ---- the analyzer ---------------------------------------------------------------------------------


def test_analyzer_mode_sends_orders_to_a_paper_twin_of_the_bound_account(desk):
    client = desk.client()
    live = ok(client.placeorder(symbol="RELIANCE", action="BUY", exchange="NSE", quantity=1))
    assert ok(client.analyzerstatus())["data"]["analyze_mode"] is False
    toggled = ok(client.analyzertoggle(mode=True))["data"]
    assert (
        toggled["mode"] == "analyze" and toggled["message"] == "Analyzer mode switched to analyze"
    )
    twin = BrokerAccount.objects.get(paper_twin_of=desk.account)
    assert (
        twin.user_id == desk.user.pk
        and twin.is_paper
        and twin.account_name == toggled["paper_account"]
    )
    sandbox = ok(client.placeorder(symbol="RELIANCE", action="BUY", exchange="NSE", quantity=2))
    assert sandbox["mode"] == "analyze"
    assert Order.objects.get(pk=int(sandbox["orderid"])).account_id == twin.pk
    assert [o["orderid"] for o in ok(client.orderbook())["data"]["orders"]] == [sandbox["orderid"]]
    assert positions(client) == {("RELIANCE", "MIS"): 2}
    # The twin's money is its own paper book's, never added to the live account's.
    twin_cash = ok(client.funds())["data"]["availablecash"]
    assert PaperBook.objects.get(account=twin) != PaperBook.objects.get(account=desk.account)
    assert ok(client.analyzerstatus())["data"]["total_logs"] == 1
    ok(client.analyzertoggle(mode=False))
    assert ok(client.funds())["data"]["availablecash"] != twin_cash
    assert [o["orderid"] for o in ok(client.orderbook())["data"]["orders"]] == [live["orderid"]]
    assert positions(client) == {("RELIANCE", "MIS"): 1}
    ok(client.analyzertoggle(mode=True))
    assert BrokerAccount.objects.filter(paper_twin_of=desk.account).count() == 1  # the same twin


def test_a_key_whose_paper_twin_was_deleted_can_switch_analyzer_mode_off(desk):
    # The trader deleted the "(analyzer)" paper account: every call says "reactivate it, or
    # switch analyzer mode off", and switching it off was refused with that same answer
    # (the toggle is a call of the key too): the key was stuck until the account came back.
    client = desk.client()
    ok(client.analyzertoggle(mode=True))
    deactivate_broker_account(account=BrokerAccount.objects.get(paper_twin_of=desk.account))
    order = dict(symbol="RELIANCE", action="BUY", exchange="NSE", quantity=1)
    assert "switch analyzer mode off" in refused(client.placeorder(**order), 403)
    assert "is deactivated" in refused(client.analyzertoggle(mode=True), 403)

    assert ok(client.analyzertoggle(mode=False))["data"]["mode"] == "live"
    live = ok(client.placeorder(**order))
    assert live["mode"] == "live"
    assert Order.objects.get(pk=int(live["orderid"])).account_id == desk.account.pk


# ---- errors change nothing ------------------------------------------------------------------------


def test_a_bad_key_is_refused_and_nothing_changes(desk):
    before = state()
    bad = desk.client("tdk_" + "x" * 43)
    assert refused(bad.placeorder(symbol="RELIANCE", action="BUY", exchange="NSE"), 403) == (
        "Invalid openalgo apikey"
    )
    assert refused(bad.orderbook(), 403) == "Invalid openalgo apikey"
    assert state() == before


def test_a_read_key_reads_but_cannot_place_change_or_cancel(desk):
    placed = ok(limit_order(desk.client()))
    reader = desk.client(desk.read_key)
    before = state()
    message = refused(reader.placeorder(symbol="RELIANCE", action="BUY", exchange="NSE"), 403)
    assert "read-only" in message
    refused(reader.cancelorder(order_id=placed["orderid"]), 403)
    refused(reader.cancelallorder(), 403)
    refused(reader.closeposition(), 403)
    refused(
        reader.placesmartorder(symbol="RELIANCE", action="BUY", exchange="NSE", position_size=3),
        403,
    )
    refused(
        reader.basketorder(
            orders=[{"symbol": "RELIANCE", "exchange": "NSE", "action": "BUY", "quantity": 1}]
        ),
        403,
    )
    refused(reader.analyzertoggle(mode=True), 403)
    assert state() == before
    assert ok(reader.orderbook())["data"]["orders"][0]["orderid"] == placed["orderid"]
    assert (
        ok(reader.orderstatus(order_id=placed["orderid"]))["data"]["orderid"] == placed["orderid"]
    )


def test_a_key_not_bound_to_one_account_is_refused(desk):
    before = state()
    message = refused(
        desk.client(desk.unbound_key).placeorder(symbol="RELIANCE", action="BUY", exchange="NSE"),
        403,
    )
    assert "not bound" in message and state() == before


@pytest.mark.parametrize(
    "fields,named",
    [
        ({"symbol": "NOSUCH", "exchange": "NSE"}, "NOSUCH"),
        ({"symbol": "NIFTY29DEC2699999CE", "exchange": "NFO"}, "NIFTY29DEC2699999CE"),
        ({"symbol": "RELIANCE", "exchange": "NSE_INDEX"}, "exchange"),
        ({"symbol": "RELIANCE", "exchange": "NSE", "price_type": "STOP"}, "pricetype"),
        ({"symbol": "RELIANCE", "exchange": "NSE", "product": "BO"}, "product"),
        ({"symbol": "RELIANCE", "exchange": "NSE", "quantity": "1.5"}, "quantity"),
        ({"symbol": "NIFTY29DEC26FUT", "exchange": "NFO", "quantity": 10}, "lot size"),
        ({"symbol": "RELIANCE", "exchange": "NSE", "price_type": "LIMIT"}, "price"),
    ],
)
def test_an_unknown_symbol_or_a_bad_field_is_named_and_nothing_is_placed(desk, fields, named):
    before = state()
    args = {"action": "BUY", "quantity": 1, **fields}
    message = refused(desk.client().placeorder(**args), 400)
    assert named in message and state() == before


def test_another_users_order_id_is_not_found_and_stays_as_it_was(desk):
    theirs = ok(limit_order(desk.client(desk.stranger_key)))
    mine_elsewhere = place_single_order(
        user=desk.user,
        request=single_request(
            desk.other_account,
            symbol="RELIANCE",
            order_type="LIMIT",
            limit_price=Decimal("90"),
            order_quantity=1,
        ),
    ).order
    client = desk.client()
    before = state()
    for order_id in (theirs["orderid"], str(mine_elsewhere.pk), "999999999"):
        assert refused(client.cancelorder(order_id=order_id), 404) == "Order not found"
        refused(client.orderstatus(order_id=order_id), 404)
        refused(modify_reliance(client, order_id, quantity=1, price="91"), 404)
    assert state() == before
    assert ok(client.cancelallorder())["canceled_orders"] == []
    assert state()[3] == before[3]  # the paper exchange: their orders still open


# ---- OpenAlgo's strategy webhook ------------------------------------------------------------------


def test_openalgos_strategy_client_moves_the_position_through_the_alert_webhook(desk):
    webhook = save_webhook(
        actor="test", strategy=make_strategy(user=desk.user, name="TV"), account=desk.account
    )
    strategy = openalgo.Strategy(
        host_url=desk.url, webhook_id=f"{webhook.public_id}/{webhook.secret}"
    )
    long = strategy.strategyorder("RELIANCE", "BUY", 5)
    assert long["outcome"] == "placed" and long["quantity"] == 5
    client = desk.client()
    assert positions(client)[("RELIANCE", "MIS")] == 5
    short = strategy.strategyorder("RELIANCE", "SELL", 2)  # the client's "short entry": -2
    assert (short["action"], short["quantity"]) == ("SELL", 7)
    assert positions(client)[("RELIANCE", "MIS")] == -2
    exit_short = strategy.strategyorder("RELIANCE", "BUY", 0)
    assert (exit_short["action"], exit_short["quantity"]) == ("BUY", 2)
    assert positions(client)[("RELIANCE", "MIS")] == 0
    assert strategy.strategyorder("RELIANCE", "SELL", 0)["outcome"] == "no_action"
    assert {o.strategy.name for o in Order.objects.all()} == {"TV"}


def test_a_refused_request_is_evaluated_afresh_when_sent_again(desk):
    client = desk.client()
    args = {"symbol": "NEWLIST", "action": "BUY", "exchange": "NSE", "quantity": 1}
    assert "NEWLIST" in refused(client.placeorder(**args), 400)
    claim = OpenAlgoRequest.objects.get()
    assert claim.endpoint == "placeorder" and claim.placed is False
    listed = make_instrument(symbol="NEWLIST")
    make_fair_price(listed, "50.00")
    placed = ok(client.placeorder(**args))  # the same request, within the window
    claim.refresh_from_db()
    assert claim.placed is True and claim.answer["orderid"] == placed["orderid"]
    assert Order.objects.get().client_order_id == f"openalgo:{claim.pk}:0"
    assert ok(client.placeorder(**args))["orderid"] == placed["orderid"]  # and now it holds


def test_copies_of_a_refused_request_at_once_are_all_refused_and_place_nothing(desk):
    answers = send_at_once(
        10,
        lambda: desk.client().placeorder(symbol="NOSUCH", action="BUY", exchange="NSE", quantity=1),
    )
    assert all("NOSUCH" in refused(answer, 400) for answer in answers)
    assert not Order.objects.exists() and PaperOrder.objects.count() == 0


def test_the_key_may_come_in_the_x_api_key_header_but_not_the_query_string(desk):
    header = httpx.post(
        f"{desk.url}/api/v1/funds", json={}, headers={"X-API-KEY": desk.read_key}, timeout=10
    )
    assert header.status_code == 200 and header.json()["status"] == "success"
    query = httpx.post(f"{desk.url}/api/v1/funds?apikey={desk.read_key}", json={}, timeout=10)
    assert query.status_code == 403 and query.json()["status"] == "error"
