"""Which gateway speaks for an account: one shared instance per broker family."""

from __future__ import annotations

import threading

from django.conf import settings

from accounts.models import XTS_BROKERS, Broker
from orders.brokers.base import BrokerGateway
from orders.brokers.paper.gateway import PaperGateway
from orders.brokers.xts.gateway import XtsGateway

_gateways: dict[str, BrokerGateway] = {}
_lock = threading.Lock()


def gateway_for(account) -> BrokerGateway:
    """The gateway of an account's broker. XTS gateways pool their HTTP connections, so they
    are shared per broker; an account's own base URL travels in its SessionContext."""
    broker = account.broker
    with _lock:
        gateway = _gateways.get(broker)
        if gateway is None:
            gateway = _gateways[broker] = _build(broker)
    return gateway


def _build(broker: str) -> BrokerGateway:
    if broker == Broker.PAPER:
        return PaperGateway()
    if broker in XTS_BROKERS:
        return XtsGateway(base_url=settings.XTS_BASE_URLS.get(broker, ""), name=broker)
    raise ValueError(f"no gateway for broker {broker!r}")


def default_base_url(broker: str) -> str:
    return settings.XTS_BASE_URLS.get(broker, "") if broker in XTS_BROKERS else ""
