"""The request fingerprint behind Idempotency-Key replays: orders placed earlier keep theirs
in the database, so the same request must hash to the same value release after release."""

from __future__ import annotations

from decimal import Decimal

from orders.services.placement import request_fingerprint
from orders.validation import BracketOrderRequest, SingleOrderRequest, TargetSpec

D = Decimal


def _bracket(**overrides) -> BracketOrderRequest:
    fields = dict(
        account_id=7,
        no_of_lots=3,
        entry_price=D("99.00"),
        sl_price=D("95.0000"),
        trading_symbol="RELIANCE",
        targets=[
            TargetSpec(price=D("105.00"), percent=D("50")),
            TargetSpec(price=D("110"), lots=1),
        ],
        client_order_id="k-1",
        external_id="e-1",
    )
    return BracketOrderRequest(**(fields | overrides))


def test_the_fingerprints_of_stored_orders_still_match_their_requests():
    single = SingleOrderRequest(
        account_id=7,
        order_side="SELL",
        order_type="LIMIT",
        order_quantity=10,
        symbol="INFY",
        limit_price=D("1500.50"),
        client_order_id="k-2",
    )
    assert request_fingerprint(_bracket()) == (
        "2cddddfb46b6228438ab33cee06bc321802827892a07b6065893747e222dd5a5"
    )
    assert request_fingerprint(single) == (
        "e2387e790511b46cd5fcdc1aabe06223a1140ee09e48ba172ff6ffe00b2bea41"
    )


def test_the_key_and_how_a_price_is_written_do_not_count_but_a_target_does():
    base = request_fingerprint(_bracket())
    assert request_fingerprint(_bracket(client_order_id="other", entry_price=D("99"))) == base
    moved = [TargetSpec(price=D("105.05"), percent=D("50")), TargetSpec(price=D("110"), lots=1)]
    assert request_fingerprint(_bracket(targets=moved)) != base
