"""The request fingerprint behind Idempotency-Key replays: orders placed earlier keep theirs
in the database, so the same request must hash to the same value release after release."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal

from orders.domain.vocabulary import ProductType, Side
from orders.services.placement import (
    _canonical,
    _fields_of,
    _orjson_canonical,
    request_fingerprint,
)
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


def _standard_library_canonical(request) -> bytes:
    """The canonical text as the standard library writes it: every stored fingerprint's."""
    body = _fields_of(request)
    body.pop("client_order_id", None)
    body["__kind__"] = type(request).__name__
    return json.dumps(body, sort_keys=True, default=_canonical, separators=(",", ":")).encode()


def test_orjson_writes_the_canonical_text_byte_for_byte_or_leaves_it_to_the_standard_library():
    awkward = "".join(chr(code) for code in range(127))  # every ASCII character but DEL
    plain = [
        _bracket(),
        _bracket(trading_symbol=awkward, external_id='q"uo\\te', product_type=ProductType.NRML),
        _bracket(order_side=Side.SELL, exchange_token=2**63 - 1, no_of_lots=-(2**63)),
        _bracket(entry_price=None, targets=[], strategy_name="x" * 100),
    ]
    for request in plain:
        body = _fields_of(request, plain=True)
        body.pop("client_order_id", None)
        body["__kind__"] = type(request).__name__
        assert _orjson_canonical(body) == _standard_library_canonical(request)
        digest = hashlib.sha256(_standard_library_canonical(request)).hexdigest()
        assert request_fingerprint(request) == digest
    # Text orjson writes otherwise (non-ASCII, DEL), integers it cannot write, a float: the
    # standard library's text, as before.
    others = [
        _bracket(trading_symbol="RÉLIANCE ₹"),
        _bracket(external_id="del\x7f"),
        _bracket(exchange_token=2**64),
        _bracket(no_of_lots=2.5),
    ]
    for request in others:
        digest = hashlib.sha256(_standard_library_canonical(request)).hexdigest()
        assert request_fingerprint(request) == digest
    non_ascii = _fields_of(others[0], plain=True)
    assert _orjson_canonical(non_ascii) is None
    assert _orjson_canonical(_fields_of(others[2], plain=True)) is None
