"""A position change (OpenAlgo's placesmartorder, its strategy webhook) that exits a whole
bracket with MARKET exits split at the freeze quantity, some slices rejected: the bracket's
stop-loss and targets were cancelled for the exit, and it is exit-requested, so nothing put
them back until the next broker event or cycle noticed the refusal. Now, as the kill
switch's and the position exit's (test_split_exit_partly_rejected), the bracket gets at
once a stop-loss and targets for what the slices on their way do not close, and the answer
says the exit was refused in part and the rest is protected, never a full success.

Over the XTS simulator: freeze quantity 5 splits the bracket's 10 into two slices of 5 and
`reject_next` refuses one of the two order POSTs."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.api_keys import create_api_key
from accounts.models import ApiKey
from orders.alerts.services import save_webhook
from orders.models import OrderEvent
from tests.factories import (
    HALF_OF_10_PROTECTED,
    assert_working_protection,
    flatten_smart_order_body,
    legs_of,
    make_strategy,
    split_in_two_and_refuse_one,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def split_and_refuse_one(simulator, protected_bracket):
    """The protected bracket of 10 whose exit goes out as two slices of 5, one refused."""
    split_in_two_and_refuse_one(simulator, protected_bracket[2])
    return protected_bracket


def _assert_the_rest_protected_at_once(account, bracket) -> None:
    assert [leg.quantity for leg in legs_of(bracket, "EXIT")] == [5, 5]
    assert sorted(leg.status for leg in legs_of(bracket, "EXIT")) == ["OPEN", "REJECTED"]
    # The 5 the rejected slice left open are covered, here and at the broker; not the 10.
    assert_working_protection(account, bracket, HALF_OF_10_PROTECTED)
    bracket.refresh_from_db()
    assert bracket.exit_requested_at is not None  # its accepted slice is still closing
    kept = OrderEvent.objects.get(order=bracket, kind="position_exit_protection_kept")
    assert "part of its exit was rejected" in kept.message


def test_placesmartorder_exit_rejected_in_part_protects_the_rest_at_once(split_and_refuse_one):
    user, account, _stock, bracket = split_and_refuse_one
    key, _ = create_api_key(user=user, name="algo", scope=ApiKey.Scope.TRADE, bound_account=account)

    answer = APIClient().post(
        "/api/v1/placesmartorder",
        flatten_smart_order_body(key),
        format="json",
    )

    _assert_the_rest_protected_at_once(account, bracket)
    body = answer.json()
    assert answer.status_code == 400, body  # OpenAlgo's error answer, as before
    assert body["status"] == "error"
    assert body["orderids"] == [str(bracket.pk)]
    assert "rejected" in body["message"]
    assert (
        f"still protected: RELIANCE (order {bracket.pk}): part of its exit was rejected"
        in (body["message"])
    )
    assert "stop-loss and targets cover the 5 its exits do not close" in body["message"]


def test_a_webhook_exit_rejected_in_part_protects_the_rest_at_once(split_and_refuse_one):
    user, account, _stock, bracket = split_and_refuse_one
    webhook = save_webhook(actor="test", strategy=make_strategy(user=user), account=account)

    answer = Client().post(
        f"/strategy/webhook/{webhook.public_id}/{webhook.secret}",
        data=json.dumps({"symbol": "RELIANCE", "action": "SELL", "position_size": "0"}),
        content_type="application/json",
    )

    _assert_the_rest_protected_at_once(account, bracket)
    body = answer.json()
    assert answer.status_code == 422, body  # the webhook's refusal, as before
    assert body["outcome"] == "rejected"
    assert body["exited_brackets"] == [bracket.pk]
    assert (
        f"still protected: RELIANCE (order {bracket.pk}): part of its exit was rejected"
        in (body["error"])
    )
