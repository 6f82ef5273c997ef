"""placesmartorder tells the trader once that a bracket's exit and protection were sized to
what the broker holds (less than the desk), whether the change placed with errors or was
refused. A change that placed its order with errors once said it twice (in `message` and
among `errors`); one refused ran two sentences together with a double full stop.

Over the XTS simulator: a bracket BUY 10 RELIANCE, protected (stop-loss and target 10); a
sale in the broker's own terminal; the stop-loss's cancel or reduction fails (HTTP 500)."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from accounts.api_keys import create_api_key
from accounts.models import ApiKey
from tests.factories import flatten_smart_order_body, legs_of, trade_at_the_broker
from tests.servers import SIM_CANCEL_ROUTE

pytestmark = pytest.mark.django_db(transaction=True)

SIZING = "The broker holds less than the desk"


def _flatten_with_the_stop_loss_stuck(simulator, protected_bracket, *, sold: int):
    """The answer to flattening after the broker's own terminal sold `sold`, the first
    cancel failing; with the bracket and its (old) stop-loss leg's identifier."""
    user, account, stock, bracket = protected_bracket
    trade_at_the_broker(account, stock, "SELL", sold)
    (stop_loss,) = legs_of(bracket, "STOP_LOSS")
    key, _ = create_api_key(user=user, name="algo", scope=ApiKey.Scope.TRADE, bound_account=account)
    simulator.set_faults(error_next=1, routes=[SIM_CANCEL_ROUTE])
    answer = APIClient().post(
        "/api/v1/placesmartorder", flatten_smart_order_body(key), format="json"
    )
    return answer, bracket.pk, stop_loss.unique_identifier


def test_a_change_placed_with_errors_names_the_sizing_once(simulator, protected_bracket):
    # The broker is short 3: BUY 3 placed; trimming the stop-loss to the broker's 0 failed.
    answer, order, stop_loss = _flatten_with_the_stop_loss_stuck(
        simulator, protected_bracket, sold=13
    )

    body = answer.json()
    assert answer.status_code == 200, body
    assert (body["status"], body["action"], body["quantity"]) == ("success", "BUY", 3)
    assert body["errors"] == [
        f"order {order}: could not reduce STOP_LOSS leg {stop_loss}: IIFL answered HTTP 500",
        f"{SIZING}: RELIANCE (order {order}): the desk held 10, the broker 0; its exits, "
        "stop-loss and targets sized to 0.",
    ]
    assert "message" not in body
    assert json.dumps(body).count(SIZING) == 1


def test_a_refused_change_says_each_sentence_once(simulator, protected_bracket):
    # The broker holds 4: the bracket's exit of 4 held back, its stop-loss not cancelled.
    answer, order, stop_loss = _flatten_with_the_stop_loss_stuck(
        simulator, protected_bracket, sold=6
    )

    body = answer.json()
    assert answer.status_code == 400, body
    assert body["message"] == (
        f"bracket {order}: nothing was sent for it, its protection stands (RELIANCE: could not "
        f"cancel leg {stop_loss} (IIFL answered HTTP 500)). Not squared off, still protected: "
        f"RELIANCE (order {order}): stop-loss and targets placed again. {SIZING}: RELIANCE "
        f"(order {order}): the desk held 10, the broker 4; its exits, stop-loss and targets "
        "sized to 4."
    )
