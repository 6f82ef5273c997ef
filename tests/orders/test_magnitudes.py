"""Numbers too large, too precise or of the wrong kind (issue 10, item 5): one validator
(orders.validation, reached through orders.scheduled.services for templates) for every way an order
or a template enters: the API, the web order and schedule forms, the batch CSV, the admin.
Each was a 500, or (the web schedule form) stored what the API refuses."""

from __future__ import annotations

import json
import logging

import pytest

from orders.models import Order
from orders.scheduled.models import ScheduledOrder
from tests import factories
from tests.factories import (
    api_client_for,
    make_account,
    make_instrument,
    make_user,
    web_client_for,
)
from tests.servers import fresh_machine_env, run_manage

pytestmark = pytest.mark.django_db

HUGE_ID = 99999999999999999999


@pytest.fixture(autouse=True)
def _open_window(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True


@pytest.fixture
def trader():
    user = make_user()
    return user, make_account(user=user), make_instrument()


def _no_errors_logged(caplog):
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


# ---- scheduled-order templates --------------------------------------------------------------


def _schedule_body(account, template, kind="SINGLE"):
    return {
        "name": "nightly",
        "account_id": account.pk,
        "kind": kind,
        "template": template,
        "time_of_day": "10:15:00",
        "weekdays": [0, 1, 2, 3, 4],
    }


@pytest.mark.parametrize("bad_id", ["abc", 1.5, True, -4, 0, HUGE_ID, "12e3"])
def test_template_with_a_non_integer_instrument_id_is_a_400(trader, bad_id, caplog):
    user, account, instrument = trader
    template = {
        "exchange_instrument_id": bad_id,
        "exchange_segment": instrument.exchange_segment,
        "order_side": "BUY",
        "order_type": "MARKET",
        "order_quantity": 1,
    }
    response = api_client_for(user).post(
        "/api/scheduled-orders", _schedule_body(account, template), format="json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert not ScheduledOrder.objects.filter(user=user).exists()
    _no_errors_logged(caplog)


@pytest.mark.parametrize("raw_price", ['"1e309"', "1e309", '"1e40"', '"-1e40"', '"100.00001"'])
def test_template_with_an_absurd_price_is_a_400(trader, raw_price, caplog):
    user, account, instrument = trader
    body = json.dumps(
        _schedule_body(
            account,
            {
                "symbol": instrument.trading_symbol,
                "order_side": "BUY",
                "order_type": "LIMIT",
                "order_quantity": 1,
                "limit_price": "PRICE",
            },
        )
    ).replace('"PRICE"', raw_price)
    response = api_client_for(user).post(
        "/api/scheduled-orders", data=body, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    answer = response.json()
    # A string is judged by the validator; a bare 1e309 already by the JSON parser.
    assert "limit_price" in json.dumps(answer["details"]) or "out of range" in answer["error"]
    assert not ScheduledOrder.objects.filter(user=user).exists()
    _no_errors_logged(caplog)


def test_bracket_template_with_a_1e309_target_is_a_400(trader):
    user, account, instrument = trader
    template = {
        "trading_symbol": instrument.trading_symbol,
        "no_of_lots": 1,
        "entry_price": "100",
        "sl_price": "90",
        "targets": [{"price": "1e309", "percent": "100"}],
    }
    response = api_client_for(user).post(
        "/api/scheduled-orders", _schedule_body(account, template, kind="BRACKET"), format="json"
    )
    assert response.status_code == 400, response.content


def _web_schedule(user, account, template) -> dict:
    """The web form is the order ticket now (issue 13): the template's fields are its fields."""
    return {
        "name": "web nightly",
        "account_id": account.pk,
        "kind": "SINGLE",
        "time_of_day": "10:15",
        "weekdays": ["0", "2"],
        "enabled": "on",
        "product_type": "MIS",
        **template,
    }


@pytest.mark.parametrize(
    "template,field",
    [
        ({"order_quantity": 0}, "order_quantity"),
        ({"order_quantity": 1, "order_type": "LIMIT", "limit_price": "1e309"}, "limit_price"),
        ({"order_quantity": 1, "exchange_instrument_id": "abc", "symbol": ""}, "exchange"),
    ],
)
def test_web_schedule_form_refuses_what_the_api_refuses(trader, template, field, caplog):
    user, account, instrument = trader
    full = {"symbol": instrument.trading_symbol, "order_side": "BUY", "order_type": "MARKET"}
    full.update(template)
    response = web_client_for(user).post(
        "/settings/scheduled/new/", _web_schedule(user, account, full)
    )
    assert response.status_code == 400
    assert field in str(response.context["form"].errors)
    assert not ScheduledOrder.objects.filter(user=user).exists()
    # The API says no to the same template.
    api = api_client_for(user).post(
        "/api/scheduled-orders", _schedule_body(account, full), format="json"
    )
    assert api.status_code == 400
    _no_errors_logged(caplog)


def test_web_schedule_form_still_saves_a_valid_template(trader):
    user, account, instrument = trader
    template = {
        "symbol": instrument.trading_symbol,
        "order_side": "BUY",
        "order_type": "MARKET",
        "order_quantity": 1,
    }
    response = web_client_for(user).post(
        "/settings/scheduled/new/", _web_schedule(user, account, template)
    )
    assert response.status_code == 302
    assert ScheduledOrder.objects.get(user=user).template == {**template, "product_type": "MIS"}


def test_web_schedule_form_edit_cannot_store_a_zero_quantity(trader):
    user, account, instrument = trader
    good = {"symbol": instrument.trading_symbol, "order_side": "BUY", "order_type": "MARKET"}
    schedule = ScheduledOrder.objects.create(
        user=user,
        account=account,
        name="s",
        kind="SINGLE",
        template={**good, "order_quantity": 1},
        time_of_day="10:00",
        weekdays=[0],
    )
    response = web_client_for(user).post(
        f"/settings/scheduled/{schedule.pk}/",
        _web_schedule(user, account, {**good, "order_quantity": 0}),
    )
    assert response.status_code == 400
    schedule.refresh_from_db()
    assert schedule.template["order_quantity"] == 1


def test_admin_schedule_form_refuses_a_zero_quantity(trader):
    user, account, instrument = trader
    response = factories.staff_client().post(
        "/admin/orders/scheduledorder/add/",
        {
            "user": user.pk,
            "account": account.pk,
            "name": "admin",
            "kind": "SINGLE",
            "template": json.dumps(
                {
                    "symbol": instrument.trading_symbol,
                    "order_side": "BUY",
                    "order_type": "MARKET",
                    "order_quantity": 0,
                }
            ),
            "time_of_day": "10:00",
            "weekdays": "[0]",
            "enabled": "on",
        },
    )
    assert response.status_code == 200
    assert "order_quantity" in str(response.context["adminform"].form.errors)
    assert not ScheduledOrder.objects.exists()


# ---- the batch CSV and the API ----------------------------------------------------------------


@pytest.mark.parametrize(
    "row",
    [
        "{sym},1,1e309,90,BUY,",
        "{sym},1,1e40,90,BUY,",
        "{sym},1,100,-1e40,BUY,",
        "{sym},1,100,90,BUY,1e40",
        "{sym},1,100,90,BUY,110:1e40%",
        "{sym},99999999999999999999,100,90,BUY,",
        "{sym},1,100.000001,90,BUY,",
    ],
)
@pytest.mark.parametrize("action", ["preview", "place"])
def test_web_batch_csv_with_absurd_numbers_is_a_row_error(trader, row, action, caplog):
    user, account, instrument = trader
    csv_text = "trading_symbol,no_of_lots,entry_price,sl_price,order_side,targets\n" + row.format(
        sym=instrument.trading_symbol
    )
    response = web_client_for(user).post(
        "/orders/batch/",
        {"account_id": account.pk, "csv_text": csv_text, "action": action},
        follow=True,  # placing redirects to the results page
    )
    assert response.status_code in (200, 400), response.status_code
    assert not Order.objects.filter(user=user).exclude(status=Order.Status.REJECTED).exists()
    _no_errors_logged(caplog)


@pytest.mark.parametrize(
    "fields",
    [
        {"order_type": "LIMIT", "limit_price": "1e40"},
        {"order_type": "LIMIT", "limit_price": "1e309"},
        {"order_type": "MARKET", "order_quantity": 2**31},
        {"order_type": "MARKET", "order_quantity": HUGE_ID},
        {"order_type": "MARKET", "exchange_instrument_id": HUGE_ID, "symbol": ""},
    ],
)
def test_api_order_with_absurd_numbers_is_a_400(trader, fields, caplog):
    user, account, instrument = trader
    body = {
        "account_id": account.pk,
        "symbol": instrument.trading_symbol,
        "exchange_segment": instrument.exchange_segment,
        "order_side": "BUY",
        "order_quantity": 1,
        **fields,
    }
    response = api_client_for(user).post("/api/orders", body, format="json")
    assert response.status_code == 400, response.content
    assert not Order.objects.filter(user=user).exists()
    _no_errors_logged(caplog)


def test_api_bracket_whose_lots_overflow_the_quantity_is_a_400(trader):
    user, account, _ = trader
    big_lots = make_instrument(lot_size=1000, freeze_quantity=None, band=None)
    response = api_client_for(user).post(
        "/api/algo-orders",
        {
            "account_id": account.pk,
            "trading_symbol": big_lots.trading_symbol,
            "no_of_lots": 2**22,  # 4,194,304 lots x 1,000 > 2**31 - 1 units
            "entry_price": "100",
            "sl_price": "90",
            "tp_price": "110",
        },
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "no_of_lots" in response.json()["details"]


def test_out_of_range_ids_in_urls_query_and_bodies_are_4xx(trader, caplog):
    user, account, _ = trader
    client = api_client_for(user)
    probes = [
        client.get(f"/api/orders/{HUGE_ID}"),
        client.get(f"/api/accounts/{HUGE_ID}"),
        client.get(f"/api/orders?account_id={HUGE_ID}"),
        client.put(
            "/api/entry-regenerate-permission",
            {"enabled": True, "strategy_ids": [HUGE_ID]},
            format="json",
        ),
        client.post(
            "/api/algo-place-batch-orders",
            {"account_id": HUGE_ID, "orders": [{"trading_symbol": "X"}]},
            format="json",
        ),
    ]
    assert [p.status_code for p in probes] == [404, 404, 400, 400, 404]
    _no_errors_logged(caplog)


_SQLITE_PROBES = """
import json
from django.conf import settings
from django.test import Client
from accounts.models import User
from tests.factories import api_client_for, make_account, make_instrument
assert "sqlite" in settings.DATABASES["default"]["ENGINE"]
BIG = 99999999999999999999
user = User.objects.create_user(username="p", email="p@example.com", password="pw-sqlite-1")
account = make_account(user=user)
instrument = make_instrument()
api = api_client_for(user)
api.raise_request_exception = False
web = Client(raise_request_exception=False)
web.force_login(user)
def body(**extra):
    return json.dumps({"account_id": account.pk, "symbol": instrument.trading_symbol,
                       "order_side": "BUY", "order_type": "MARKET", "order_quantity": 1, **extra})
probes = {
    "order": api.get(f"/api/orders/{BIG}"),
    "account": api.get(f"/api/accounts/{BIG}"),
    "strategy": api.get(f"/api/strategies/{BIG}"),
    "schedule": api.get(f"/api/scheduled-orders/{BIG}"),
    "filter": api.get(f"/api/orders?account_id={BIG}"),
    "regen": api.put("/api/entry-regenerate-permission", data=json.dumps(
        {"enabled": True, "strategy_ids": [BIG]}), content_type="application/json"),
    "place-account": api.post("/api/orders", data=body(account_id=BIG),
                              content_type="application/json"),
    "place-instrument": api.post("/api/orders", data=body(symbol="", exchange_instrument_id=BIG),
                                 content_type="application/json"),
    "place-quantity": api.post("/api/orders", data=body(order_quantity=BIG),
                               content_type="application/json"),
    "web-order": web.get(f"/orders/{BIG}/"),
    "web-filter": web.get(f"/orders/?account={BIG}"),
    "web-account": web.get(f"/settings/accounts/{BIG}/"),
}
for name, response in probes.items():
    print("probe", name, response.status_code)
"""


@pytest.mark.slow
def test_out_of_range_ids_on_sqlite_are_404_or_400_not_500(tmp_path):
    env = fresh_machine_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'ids.sqlite3'}",
        VAR_DIR=str(tmp_path / "var"),
        LOG_LEVEL="CRITICAL",
    )
    assert run_manage("migrate", "--noinput", env=env).returncode == 0
    run = run_manage("shell", "-c", _SQLITE_PROBES, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    statuses = {
        line.split()[1]: int(line.split()[2])
        for line in run.stdout.splitlines()
        if line.startswith("probe ")
    }
    assert len(statuses) == 12
    # Every probe is refused, the web list's filter naming no account of yours too (a 400
    # showing no order, as the trade book's).
    assert {k: v for k, v in statuses.items() if not 400 <= v < 500} == {}
