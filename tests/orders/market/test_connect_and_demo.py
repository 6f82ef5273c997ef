"""POST /api/accounts/{id}/connect, and the demo data and price feed."""

from __future__ import annotations

import pytest

from accounts.models import Broker, BrokerSession
from orders.market.demo import demo_reference_prices, seed_demo_data, tick_price_feed
from orders.models import FairPrice, Instrument
from tests.factories import api_client_for, make_account, make_user


@pytest.mark.django_db
def test_connect_a_paper_account_answers_the_expiry_never_the_token():
    account = make_account()
    response = api_client_for(account.user).post(f"/api/accounts/{account.pk}/connect")
    body = response.json()
    assert response.status_code == 200 and body["connected"] is True
    assert body["expires_at"]
    token = BrokerSession.objects.get(account=account).access_token
    assert token not in response.content.decode()


@pytest.mark.django_db
def test_connect_another_users_account_is_a_404():
    account = make_account()
    response = api_client_for(make_user()).post(f"/api/accounts/{account.pk}/connect")
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"
    assert not BrokerSession.objects.filter(account=account).exists()


@pytest.mark.django_db
def test_connect_to_an_unreachable_broker_is_broker_unavailable(settings):
    settings.BROKER_RETRY_BACKOFF_SECONDS = 0.01
    account = make_account(
        broker=Broker.IIFL,
        credentials={"app_key": "a", "secret_key": "b", "base_url": "http://127.0.0.1:9"},
    )
    response = api_client_for(account.user).post(f"/api/accounts/{account.pk}/connect")
    assert response.status_code == 503 and response.json()["code"] == "BROKER_UNAVAILABLE"


def test_connect_with_wrong_credentials_is_broker_rejected(simulator):
    account = make_account(
        broker=Broker.IIFL,
        credentials={"app_key": "inv-app", "secret_key": "nope", "base_url": simulator.base_url},
    )
    response = api_client_for(account.user).post(f"/api/accounts/{account.pk}/connect")
    body = response.json()
    assert response.status_code == 422 and body["code"] == "BROKER_REJECTED"
    # Our own words (issue 10: a foreign server's text never reaches the trader).
    assert "refused the login" in body["error"]
    assert "Invalid appKey" not in body["error"]


@pytest.mark.django_db
def test_seed_demo_data_is_idempotent(settings):
    first = seed_demo_data()
    second = seed_demo_data()
    assert first == second
    assert first.username == settings.DEMO_USERNAME
    assert first.instrument_count == len(demo_reference_prices())
    assert FairPrice.objects.count() == first.instrument_count


@pytest.mark.django_db
def test_price_feed_moves_prices_inside_the_band_on_the_tick():
    seed_demo_data()
    before = dict(FairPrice.objects.values_list("instrument_id", "avg_fair_price"))
    for _ in range(5):
        assert tick_price_feed() == len(before)
    moved = 0
    for instrument in Instrument.objects.select_related("fair_price"):
        fair = instrument.fair_price
        assert instrument.price_band_low < fair.sell_fair_price <= fair.avg_fair_price
        assert fair.avg_fair_price <= fair.buy_fair_price < instrument.price_band_high
        assert fair.avg_fair_price % instrument.tick_size == 0
        moved += fair.avg_fair_price != before[instrument.pk]
    assert moved > len(before) // 2
