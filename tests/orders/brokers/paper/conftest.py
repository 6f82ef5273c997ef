"""Fixtures of the paper exchange tests."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.factories import make_fair_price, make_instrument


@pytest.fixture
def instrument(db):
    """RELIANCE banded 1000 to 1600, its fair price 1300 (1299.95 / 1300.05)."""
    inst = make_instrument(symbol="RELIANCE", band=(Decimal("1000.00"), Decimal("1600.00")))
    make_fair_price(inst, "1300.00", spread="0.10")
    return inst
