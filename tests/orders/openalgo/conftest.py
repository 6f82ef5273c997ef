"""The OpenAlgo API's test world: a trader with a paper account, instruments in OpenAlgo's
three symbol shapes, and keys of every kind; the `openalgo` client (from PyPI, unmodified)
talks to a live server over real HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import ClassVar

import openalgo
import pytest

from accounts.api_keys import create_api_key
from accounts.models import ApiKey, BrokerAccount, User
from orders.models import Instrument, Order
from orders.services import place_protective_legs
from tests.factories import (
    make_account,
    make_fair_price,
    make_instrument,
    make_user,
    set_price_and_match,
    sync_from_broker,
)

EXPIRY = date(2026, 12, 29)
# What the tests' orders have in common: LIMIT buys of RELIANCE on NSE.
RELIANCE_LIMIT_BUY = dict(symbol="RELIANCE", action="BUY", exchange="NSE", price_type="LIMIT")


@dataclass
class Desk:
    url: str
    user: User
    account: BrokerAccount
    other_account: BrokerAccount
    stock: Instrument
    future: Instrument
    option: Instrument
    trade_key: str
    trade_key_row: ApiKey
    read_key: str
    unbound_key: str
    stranger: User
    stranger_account: BrokerAccount
    stranger_key: str

    def client(self, key: str | None = None) -> openalgo.api:
        return openalgo.api(api_key=key or self.trade_key, host=self.url, timeout=30)

    # placeorder's fields for the tests' bracket on RELIANCE (at 100): a LIMIT entry at 99,
    # stop-loss 95, target 110.
    BRACKET: ClassVar[dict] = dict(
        RELIANCE_LIMIT_BUY, quantity=10, price="99", stoploss="95", target="110"
    )

    # ... and for a working order that does not fill: 3 RELIANCE bought LIMIT at 95.
    WORKING: ClassVar[dict] = dict(RELIANCE_LIMIT_BUY, quantity=3, price="95")

    def fill_and_protect(self, order_id: str) -> Order:
        """The bracket's entry fills at the exchange (98.50), the desk reads it and places
        the stop-loss and target."""
        set_price_and_match(self.stock, "98.50")
        sync_from_broker(self.account)
        place_protective_legs(account=self.account)
        return Order.objects.get(pk=int(order_id))


def make_nifty_december_contract(
    symbol: str, instrument_id: int, *, fair: tuple[str, str], series: str = "", **fields
) -> Instrument:
    """A NIFTY future or option of the December expiry (lot 65), at its fair price and spread."""
    contract = make_instrument(
        symbol=symbol,
        segment="NSEFO",
        instrument_id=instrument_id,
        lot_size=65,
        tick_size=Decimal("0.05"),
        freeze_quantity=1755,
        underlying="NIFTY",
        expiry=EXPIRY,
        **fields,
    )
    contract.name = "NIFTY"
    update_fields = ["name"]
    if series:
        contract.series = series
        update_fields.append("series")
    contract.save(update_fields=update_fields)
    price, spread = fair
    make_fair_price(contract, price, spread=spread)
    return contract


def raw_key(user: User, name: str, scope: str, account: BrokerAccount | None = None) -> str:
    """A new API key of `user` (bound to `account` if given), as a client sends it."""
    key, _row = create_api_key(user=user, name=name, scope=scope, bound_account=account)
    return key


@pytest.fixture
def desk(live_server, settings) -> Desk:
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    settings.PAPER_REJECT_RATE = "0"
    settings.PAPER_FILL_CAP = 0
    user = make_user(username="algo")
    account = make_account(user=user, name="Paper desk")
    stock = make_instrument(symbol="RELIANCE", instrument_id=2885, tick_size=Decimal("0.05"))
    make_fair_price(stock, "100.00", spread="0.10")
    trade_key, trade_key_row = create_api_key(
        user=user, name="amibroker", scope=ApiKey.Scope.TRADE, bound_account=account
    )
    stranger = make_user(username="stranger")
    stranger_account = make_account(user=stranger, name="Paper desk")
    return Desk(
        url=live_server.url,
        user=user,
        account=account,
        other_account=make_account(user=user, name="Second paper"),
        stock=stock,
        future=make_nifty_december_contract(
            "NIFTY26DECFUT", 52001, fair=("26100.00", "1.00"), instrument_type="2", series="FUTIDX"
        ),
        option=make_nifty_december_contract(
            "NIFTY26DEC26000CE",
            52011,
            fair=("180.00", "0.50"),
            strike_price=Decimal("26000"),
            option_type="CE",
            band=(Decimal("0.05"), Decimal("5000")),
        ),
        trade_key=trade_key,
        trade_key_row=trade_key_row,
        read_key=raw_key(user, "dashboard", ApiKey.Scope.READ, account),
        unbound_key=raw_key(user, "desk", ApiKey.Scope.TRADE),
        stranger=stranger,
        stranger_account=stranger_account,
        stranger_key=raw_key(stranger, "theirs", ApiKey.Scope.TRADE, stranger_account),
    )
