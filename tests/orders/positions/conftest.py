"""A trader with a paper account holding a position, synced as the monitoring loop syncs.
(The API `client` is tests/orders/conftest.py's, for this trader.)"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.factories import (
    make_account,
    make_fair_price,
    make_instrument,
    make_user,
)

D = Decimal


@pytest.fixture
def trader(db):
    return make_user(username="meera")


@pytest.fixture
def account(trader):
    return make_account(user=trader, name="Paper one")


@pytest.fixture
def instrument(db):
    inst = make_instrument(symbol="TATAPOS", lot_size=1, freeze_quantity=5000)
    make_fair_price(inst, D("100.00"))
    return inst
