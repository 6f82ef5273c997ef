"""Fixtures of the XTS gateway and simulator tests."""

from __future__ import annotations

import pytest

from tests.factories import make_infy_as_the_simulator_lists_it


@pytest.fixture
def instrument(transactional_db):
    """INFY as the simulator lists it; committed, for the simulator's own connection."""
    return make_infy_as_the_simulator_lists_it()
