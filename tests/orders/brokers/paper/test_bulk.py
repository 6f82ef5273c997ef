"""The paper exchange's batch placement and its margin check under concurrency: many orders
in one call behave exactly as the same orders placed one by one, and concurrent placements
on one book can never block more margin than the book has."""

from __future__ import annotations

from decimal import Decimal

from orders.brokers.base import OrderRejected, PlaceOrderRequest
from orders.brokers.paper import book as paper_book
from orders.brokers.paper import exchange as paper_exchange
from orders.brokers.paper.models import PaperOrder
from orders.domain.vocabulary import LegStatus
from tests.concurrency import in_threads
from tests.factories import make_account, make_fair_price, make_instrument, order_request

D = Decimal


def _request(instrument, *, uid, order_type="LIMIT", quantity=100, limit="1290", **fields):
    price = D(limit) if order_type == "LIMIT" else None
    return order_request(
        instrument, uid, order_type=order_type, quantity=quantity, limit=price, **fields
    )


def _mixed_requests(instrument, prefix: str) -> list[PlaceOrderRequest]:
    """Resting limits, market buys that fill at once (they move positions and equity), a
    closing sell, a rule rejection and orders that run out of margin (rate 1, 10 lakh)."""
    return [
        _request(instrument, uid=f"{prefix}1", quantity=200),  # rests: 2.58 lakh blocked
        _request(instrument, uid=f"{prefix}2", order_type="MARKET", quantity=100),  # fills
        _request(instrument, uid=f"{prefix}3", quantity=7),  # rests
        _request(instrument, uid=f"{prefix}4", quantity=3, limit="1290.01"),  # off tick
        _request(instrument, uid=f"{prefix}5", side="SELL", order_type="MARKET", quantity=50),
        _request(instrument, uid=f"{prefix}6", quantity=400),  # 5.16 lakh: still fits
        _request(instrument, uid=f"{prefix}7", quantity=300),  # no margin left
        _request(instrument, uid=f"{prefix}8", quantity=1),  # fits in what is left
    ]


def _summary(order_or_error):
    if isinstance(order_or_error, OrderRejected):
        return ("rejected", order_or_error.message.split(":")[0])
    return (order_or_error.status, order_or_error.filled_quantity)


def test_a_batch_gives_the_same_orders_and_balance_as_one_by_one(instrument, settings):
    settings.PAPER_MARGIN_RATE = "1"
    one_by_one = paper_book.book_for_account(make_account().pk)
    batched = paper_book.book_for_account(make_account().pk)

    expected = []
    for request in _mixed_requests(instrument, "S"):
        try:
            expected.append(_summary(paper_exchange.submit_order(book=one_by_one, request=request)))
        except OrderRejected as exc:
            expected.append(_summary(exc))
    answers = paper_exchange.submit_orders(book=batched, requests=_mixed_requests(instrument, "B"))

    assert [_summary(answer) for answer in answers] == expected
    assert ("rejected", "Insufficient margin") in expected  # the margin check really bit
    assert (LegStatus.FILLED, 100) in expected
    assert paper_book.compute_balance(batched) == paper_book.compute_balance(one_by_one)
    # Rejected orders are in the book too, in input order, with AppOrderIDs from their ids.
    rows = list(PaperOrder.objects.filter(book=batched).order_by("id"))
    assert [row.unique_identifier for row in rows] == [f"B{n}" for n in range(1, 9)]
    assert all(row.app_order_id == paper_exchange.APP_ORDER_ID_BASE + row.pk for row in rows)
    assert [row.status for row in rows].count(LegStatus.REJECTED) == 2
    assert answers[6].response == {"AppOrderID": rows[6].app_order_id}


def test_concurrent_placements_on_one_book_never_overdraw_the_margin(transactional_db, settings):
    """Six threads, each with its own connection, each placing a resting limit buy that needs 29% of
    the cash (rate 1): only three fit, whatever the interleaving."""
    settings.PAPER_MARGIN_RATE = "1"
    settings.PAPER_STARTING_CASH = "1000000"
    inst = make_instrument(symbol="SBIN", band=(D("100.00"), D("500.00")))
    make_fair_price(inst, "300.00")
    book = paper_book.book_for_account(make_account().pk)

    def place(n: int) -> str:
        request = _request(inst, uid=f"C{n}", quantity=1000, limit="290")  # 2.9 lakh
        try:
            paper_exchange.submit_order(book=book, request=request)
        except OrderRejected as exc:
            return exc.message
        return "accepted"

    outcomes = in_threads(6, place)

    assert len(outcomes) == 6
    assert outcomes.count("accepted") == 3
    assert all(o.startswith("Insufficient margin") for o in outcomes if o != "accepted")
    balance = paper_book.compute_balance(book)
    assert balance.margin_utilized == D("870000.00")
    assert balance.net_margin >= 0
    assert PaperOrder.objects.filter(book=book, status=LegStatus.OPEN).count() == 3
