"""Broker accounts, strategies and the regenerate permission over the API."""

from __future__ import annotations

import pytest
from django.db import connection

from accounts.models import Broker, BrokerAccount, EntryRegeneratePermission, Strategy
from tests.concurrency import start_thread
from tests.factories import api_client_for, make_account, make_strategy, make_user

pytestmark = pytest.mark.django_db

XTS_CREDENTIALS = {"app_key": "APPKEY-123456", "secret_key": "SECRET-abcdef", "client_id": "C1"}


def _assert_400_on(response, field: str) -> None:
    """A validation error that names `field`."""
    assert response.status_code == 400
    assert field in response.json()["details"]


def test_account_list_shows_only_my_accounts_with_the_spec_fields():
    me = make_user()
    mine = make_account(user=me, name="main")
    make_account(name="someone-elses")
    response = api_client_for(me).get("/api/accounts")
    assert response.status_code == 200
    (shown,) = response.json()["accounts"]
    # The spec's fields, with this account's values.
    expected = {
        "id": mine.pk,
        "account_name": "main",
        "broker": "PAPER",
        "cash_available": "1000000.00",
        "margin_utilized": "0.00",
        "net_margin": "1000000.00",
        "total_mtm": "0.00",
        "realized_mtm": "0.00",
        "unrealized_mtm": "0.00",
        "is_active": True,
    }
    assert {field: shown.get(field) for field in expected} == expected


def test_creating_an_xts_account_stores_credentials_and_never_returns_them():
    me = make_user()
    response = api_client_for(me).post(
        "/api/accounts",
        {"account_name": "iifl-1", "broker": "IIFL", "credentials": XTS_CREDENTIALS},
        format="json",
    )
    assert response.status_code == 201
    account = response.json()["account"]
    assert account["broker"] == "IIFL"
    assert "credentials" not in account
    assert "SECRET-abcdef" not in response.content.decode()
    assert account["credential_keys"] == ["app_key", "client_id", "secret_key"]
    stored = BrokerAccount.objects.get(pk=account["id"])
    assert stored.user == me
    assert stored.credentials == XTS_CREDENTIALS


def test_xts_account_without_app_key_and_secret_is_rejected_and_not_created():
    me = make_user()
    response = api_client_for(me).post(
        "/api/accounts",
        {"account_name": "iifl-1", "broker": "WISDOM_CAPITAL", "credentials": {"client_id": "x"}},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "VALIDATION_ERROR"
    assert set(body["details"]["credentials"]) == {"app_key", "secret_key"}
    assert not BrokerAccount.objects.filter(user=me).exists()


def test_paper_account_needs_no_credentials():
    response = api_client_for(make_user()).post(
        "/api/accounts", {"account_name": "paper", "broker": "PAPER"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["account"]["credential_keys"] == []


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        (
            "/api/accounts",
            {"account_name": "p", "broker": "PAPER", "credentials": {"pin": "1234"}},
            "credentials",
        ),
        ("/api/accounts", {"account_name": "x", "broker": "ZERODHA"}, "broker"),
        ("/api/strategies", {"name": "x", "max_slippage_pct": "-1"}, "max_slippage_pct"),
    ],
    ids=["unknown-credential-key", "unknown-broker", "negative-slippage"],
)
def test_an_invalid_new_account_or_strategy_is_a_400_naming_the_field(url, body, field):
    response = api_client_for(make_user()).post(url, body, format="json")
    _assert_400_on(response, field)


def test_duplicate_account_name_is_a_400_on_the_name():
    me = make_user()
    make_account(user=me, name="dup")
    response = api_client_for(me).post(
        "/api/accounts", {"account_name": "dup", "broker": "PAPER"}, format="json"
    )
    _assert_400_on(response, "account_name")


def test_patch_merges_credentials_and_blank_keeps_the_old_value():
    me = make_user()
    account = make_account(user=me, broker=Broker.IIFL, credentials=dict(XTS_CREDENTIALS))
    response = api_client_for(me).patch(
        f"/api/accounts/{account.pk}",
        {"account_name": "renamed", "credentials": {"secret_key": "NEW-SECRET", "app_key": ""}},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["account"]["account_name"] == "renamed"
    account.refresh_from_db()
    assert account.credentials["secret_key"] == "NEW-SECRET"
    assert account.credentials["app_key"] == "APPKEY-123456"


def test_patch_cannot_change_the_broker():
    me = make_user()
    account = make_account(user=me)
    response = api_client_for(me).patch(
        f"/api/accounts/{account.pk}", {"broker": "IIFL"}, format="json"
    )
    assert response.status_code == 400
    account.refresh_from_db()
    assert account.broker == Broker.PAPER


def test_delete_deactivates_and_keeps_the_account():
    me = make_user()
    account = make_account(user=me)
    response = api_client_for(me).delete(f"/api/accounts/{account.pk}")
    assert response.status_code == 200
    assert response.json()["account"]["is_active"] is False
    account.refresh_from_db()
    assert account.is_active is False


def test_trailing_slash_spelling_is_accepted():
    me = make_user()
    account = make_account(user=me)
    assert api_client_for(me).get(f"/api/accounts/{account.pk}/").status_code == 200


@pytest.mark.parametrize(
    ("method", "body"),
    [("get", None), ("patch", {"account_name": "stolen"}), ("delete", None)],
)
def test_another_users_account_is_a_404_on_every_endpoint(method, body):
    theirs = make_account(name="theirs", credentials={})
    client = api_client_for(make_user())
    response = getattr(client, method)(f"/api/accounts/{theirs.pk}", body, format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "NOT_FOUND"
    assert "theirs" not in response.content.decode()
    theirs.refresh_from_db()
    assert theirs.account_name == "theirs" and theirs.is_active


def test_strategy_crud_round_trip():
    me = make_user()
    client = api_client_for(me)
    created = client.post(
        "/api/strategies",
        {"name": "breakout", "allow_regeneration": True, "max_regenerations": 3},
        format="json",
    )
    assert created.status_code == 201
    strategy_id = created.json()["strategy"]["id"]
    assert client.get("/api/strategies").json()["strategies"][0]["name"] == "breakout"
    patched = client.patch(
        f"/api/strategies/{strategy_id}", {"max_slippage_pct": "0.5"}, format="json"
    )
    assert patched.status_code == 200
    assert patched.json()["strategy"]["max_slippage_pct"] == "0.5000"
    assert client.delete(f"/api/strategies/{strategy_id}").status_code == 204
    assert not Strategy.objects.filter(pk=strategy_id).exists()


def test_duplicate_strategy_name_is_a_400():
    me = make_user()
    make_strategy(user=me, name="same")
    response = api_client_for(me).post("/api/strategies", {"name": "same"}, format="json")
    _assert_400_on(response, "name")


def _rival_right_after_the_name_check(model, make_rival):
    """An execute wrapper: once the first SELECT from `model`'s table (the name's check) has
    run, a second request (another connection) creates the same name before this one
    inserts."""
    checked: list[bool] = []
    table = f"FROM `{model._meta.db_table}`"

    def wrapper(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not checked and sql.startswith("SELECT") and table in sql:
            checked.append(True)
            errors: list[BaseException] = []
            start_thread(errors, make_rival).join()
            assert not errors
        return result

    return wrapper


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "url,field,model,make_rival",
    [
        ("/api/strategies", "name", Strategy, make_strategy),
        ("/api/accounts", "account_name", BrokerAccount, make_account),
    ],
    ids=["strategy", "account"],
)
def test_a_name_taken_by_a_request_running_alongside_is_a_400_not_a_500(
    url, field, model, make_rival
):
    # A client retrying a create whose first answer it did not get: both pass the "name is
    # free" check, the second insert hits the unique index. It was an IntegrityError: a 500.
    me = make_user()
    wrapper = _rival_right_after_the_name_check(model, lambda: make_rival(user=me, name="twice"))
    with connection.execute_wrapper(wrapper):
        response = api_client_for(me).post(url, {field: "twice"}, format="json")
    _assert_400_on(response, field)
    assert model.objects.filter(user=me).count() == 1


def test_another_users_strategy_is_invisible():
    theirs = make_strategy(user=make_user(), name="secret-sauce")
    client = api_client_for(make_user())
    assert client.get("/api/strategies").json()["strategies"] == []
    assert client.get(f"/api/strategies/{theirs.pk}").status_code == 404
    assert (
        client.patch(f"/api/strategies/{theirs.pk}", {"name": "x"}, format="json").status_code
        == 404
    )
    assert client.delete(f"/api/strategies/{theirs.pk}").status_code == 404
    assert Strategy.objects.filter(pk=theirs.pk, name="secret-sauce").exists()


def test_regenerate_permission_starts_disabled():
    body = api_client_for(make_user()).get("/api/entry-regenerate-permission").json()
    assert body["enabled"] is False
    assert body["strategy_ids"] == []


def test_regenerate_permission_put_sets_enabled_and_strategies():
    me = make_user()
    first, second = make_strategy(user=me), make_strategy(user=me)
    response = api_client_for(me).put(
        "/api/entry-regenerate-permission",
        {"enabled": True, "strategy_ids": [first.pk, second.pk]},
        format="json",
    )
    assert response.status_code == 200
    assert sorted(response.json()["strategy_ids"]) == sorted([first.pk, second.pk])
    permission = EntryRegeneratePermission.objects.get(user=me)
    assert permission.enabled
    assert set(permission.strategies.values_list("pk", flat=True)) == {first.pk, second.pk}


def test_regenerate_permission_refuses_another_users_strategy():
    me = make_user()
    mine = make_strategy(user=me)
    theirs = make_strategy(user=make_user())
    response = api_client_for(me).put(
        "/api/entry-regenerate-permission",
        {"enabled": True, "strategy_ids": [mine.pk, theirs.pk]},
        format="json",
    )
    _assert_400_on(response, "strategy_ids")
    assert not EntryRegeneratePermission.objects.filter(user=me, enabled=True).exists()
