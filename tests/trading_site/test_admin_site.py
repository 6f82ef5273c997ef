"""The admin as a whole: every model has a working page, staff only, secrets never shown."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

from accounts.models import Broker, BrokerSession
from tests import factories
from tests.factories import make_account, make_fair_price, make_instrument, make_user

PRODUCT_APPS = ("accounts", "orders", "pnl", "monitoring")
PRODUCT_MODELS = [m for m in apps.get_models() if m._meta.app_label in PRODUCT_APPS]


@pytest.fixture
def staff_client(client):
    admin_user = make_user(username="operator", is_staff=True, is_superuser=True)
    return factories.staff_client(admin_user, client)


@pytest.mark.parametrize("model", PRODUCT_MODELS, ids=lambda m: m._meta.label)
def test_every_product_model_is_in_the_admin(model):
    assert admin.site.is_registered(model), f"{model._meta.label} has no admin"


@pytest.mark.django_db
@pytest.mark.parametrize("model", PRODUCT_MODELS, ids=lambda m: m._meta.label)
def test_every_changelist_renders_for_staff(staff_client, model):
    instrument = make_instrument(symbol="ADMINSYM")
    make_fair_price(instrument, "100.00")
    make_account(name="admin-page-account")
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    response = staff_client.get(url)
    assert response.status_code == 200


@pytest.mark.django_db
def test_a_trader_without_staff_rights_cannot_reach_the_admin(client):
    trader = make_user(username="plain-trader")
    client.force_login(trader)
    response = client.get(reverse("admin:orders_order_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.django_db
def test_broker_credentials_and_access_tokens_never_appear_in_admin_pages(staff_client):
    account = make_account(
        broker=Broker.IIFL,
        name="live-account",
        credentials={"app_key": "APPKEY-VISIBLE-NEVER", "secret_key": "SECRET-VISIBLE-NEVER"},
    )
    from datetime import timedelta

    from django.utils import timezone

    BrokerSession.objects.create(
        account=account,
        access_token="ACCESS-TOKEN-VISIBLE-NEVER",
        expires_at=timezone.now() + timedelta(hours=1),
    )
    pages = [
        reverse("admin:accounts_brokeraccount_change", args=[account.pk]),
        reverse("admin:accounts_brokeraccount_changelist"),
        reverse("admin:accounts_brokersession_changelist"),
        reverse("admin:accounts_brokersession_change", args=[account.broker_session.pk]),
    ]
    for url in pages:
        body = staff_client.get(url).content.decode()
        for secret in (
            "APPKEY-VISIBLE-NEVER",
            "SECRET-VISIBLE-NEVER",
            "ACCESS-TOKEN-VISIBLE-NEVER",
        ):
            assert secret not in body, f"{secret} leaked on {url}"
