"""Fixtures for the order tests: a trader with a paper account and priced instruments."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from tests.factories import (
    api_client_for,
    make_account,
    make_fair_price,
    make_instrument,
    make_reliance_at_100,
    make_user,
)

D = Decimal
_seq = itertools.count(1)


@pytest.fixture
def trader(db):
    return make_user()


@pytest.fixture
def account(trader):
    return make_account(user=trader)


@pytest.fixture
def instrument(db):
    """RELIANCE-like: lot 1, tick 0.05, freeze 10,000, band 1..100,000, trading at 100."""
    return make_reliance_at_100()


@pytest.fixture
def future(db):
    """A derivative with lot 50, tick 0.05, freeze 1,800, band 50..150, trading at 100."""
    inst = make_instrument(
        symbol="NIFTYFUT",
        segment="NSEFO",
        lot_size=50,
        freeze_quantity=1800,
        band=(D("50.00"), D("150.00")),
    )
    make_fair_price(inst, D("100.00"))
    return inst


@pytest.fixture
def client(trader):
    return api_client_for(trader)
