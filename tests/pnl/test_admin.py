"""PnL admin: read-only pages render, and the recompute action rebuilds an account's lots."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from pnl.models import PnlInstrumentState, PnlLot
from pnl.services import compute_account_pnl
from tests import factories
from tests.factories import make_account, make_instrument, make_trades

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_():
    return factories.staff_client()


@pytest.fixture
def computed_account():
    account = make_account()
    make_trades(
        account=account,
        instrument=make_instrument(symbol="TCS"),
        fills=[("E1", "BUY", 5, "10", timezone.now() - timedelta(minutes=5))],
    )
    compute_account_pnl(account=account)
    return account


@pytest.mark.parametrize("model", ["pnllot", "pnldaily", "pnlinstrumentstate"])
def test_changelists_render_and_offer_no_add(model, admin_client_, computed_account):
    response = admin_client_.get(f"/admin/pnl/{model}/")

    assert response.status_code == 200
    assert f"/admin/pnl/{model}/add/" not in response.content.decode()


def test_lot_search_finds_by_order_id(admin_client_, computed_account):
    response = admin_client_.get("/admin/pnl/pnllot/", {"q": "E1"})
    assert "TCS" in response.content.decode()


def test_lots_cannot_be_edited_by_hand(admin_client_, computed_account):
    lot = PnlLot.objects.get(account=computed_account)
    response = admin_client_.post(f"/admin/pnl/pnllot/{lot.pk}/change/", {"quantity": 1})
    lot.refresh_from_db()
    assert response.status_code == 403
    assert lot.quantity == 5


def test_recompute_action_rematches_the_account(admin_client_, computed_account):
    state = PnlInstrumentState.objects.get(account=computed_account)
    matched_before = state.matched_at

    admin_client_.post(
        "/admin/pnl/pnlinstrumentstate/",
        {"action": "recompute_accounts", "_selected_action": [state.pk]},
    )

    new_state = PnlInstrumentState.objects.get(account=computed_account)
    assert new_state.matched_at > matched_before
    assert PnlLot.objects.filter(account=computed_account).count() == 1
