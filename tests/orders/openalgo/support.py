"""Helpers of the OpenAlgo client tests: what a call could change, and its answers read."""

from __future__ import annotations

import json

from accounts.models import BrokerAccount, Strategy
from orders.brokers.paper.models import PaperOrder
from orders.models import Order, OrderEvent, OrderLeg


def state() -> tuple:
    """Everything an OpenAlgo call could change: desk orders and legs, the audit trail,
    the paper exchange's orders, accounts and strategies."""
    return (
        list(Order.objects.order_by("id").values_list("id", "status", "quantity", "limit_price")),
        list(OrderLeg.objects.order_by("id").values_list("id", "status", "quantity")),
        OrderEvent.objects.count(),
        list(
            PaperOrder.objects.order_by("id").values_list("id", "status", "quantity", "limit_price")
        ),
        list(BrokerAccount.objects.order_by("id").values_list("id", "account_name")),
        list(Strategy.objects.order_by("id").values_list("id", "name")),
    )


def ok(answer: dict) -> dict:
    """A success answer of OpenAlgo's client, as it is."""
    assert answer.get("status") == "success", answer
    return answer


def refused(answer: dict, code: int) -> str:
    """The server's message of an error answer. (The client hands a non-200 answer over as
    `HTTP <code>: <body>`; the body is OpenAlgo's error envelope.)"""
    assert answer.get("status") == "error" and answer.get("code") == code, answer
    message = answer["message"]
    prefix = f"HTTP {code}: "
    if message.startswith(prefix):
        body = json.loads(message[len(prefix) :])
        assert body["status"] == "error", body
        return body["message"]
    return message


def positions(client) -> dict:
    """The position book through the client: {(symbol, product): signed quantity}."""
    return {
        (row["symbol"], row["product"]): int(row["quantity"])
        for row in ok(client.positionbook())["data"]
    }
