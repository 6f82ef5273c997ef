"""The gateway interface declares everything the sessions and services use of a gateway."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orders.brokers import sessions
from orders.brokers.base import BrokerGateway
from orders.brokers.paper.gateway import PaperGateway
from orders.brokers.xts.gateway import XtsGateway


def test_every_gateway_member_the_sessions_use_is_declared_on_the_interface():
    used = set(re.findall(r"self\.gateway\.(\w+)", Path(sessions.__file__).read_text()))
    assert used >= {"place_order", "place_orders", "snapshot", "can_place_in_bulk"}
    assert sorted(name for name in used if not hasattr(BrokerGateway, name)) == []


@pytest.mark.parametrize(
    ("gateway", "bulk", "snapshot"), [(PaperGateway, True, True), (XtsGateway, False, False)]
)
def test_each_gateway_states_its_capabilities(gateway, bulk, snapshot):
    assert (gateway.can_place_in_bulk, gateway.reads_snapshot_at_once) == (bulk, snapshot)
