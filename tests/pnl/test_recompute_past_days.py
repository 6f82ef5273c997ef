"""manage.py recompute_pnl: the past daily rows of contracts with a multiplier (MCX x10),
written before PnL honoured it, recomputed from the stored trades by the daily run's own
code. Realized, turnover and fills are recomputed; the unrealized of a past day was valued
at that day's marks, which are not stored, so it is corrected only where that is exact and
said to be kept otherwise. Each changed row leaves one audit row; a second run changes
nothing; --dry-run writes nothing."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.models import BrokerAccount
from orders.models import Instrument, OrderEvent
from pnl.models import PnlDaily
from pnl.services import compute_account_pnl
from tests.factories import make_account, make_fair_price, make_instrument, make_trades
from trading_site.core.market_hours import MARKET_TZ

pytestmark = pytest.mark.django_db

D = Decimal
MONDAY, TUESDAY, WEDNESDAY = date(2025, 1, 6), date(2025, 1, 7), date(2025, 1, 8)
RECOMPUTED = "pnl_day_recomputed"


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=MARKET_TZ)


def row(account: BrokerAccount, day: date) -> tuple:
    found = PnlDaily.objects.get(account=account, trading_date=day)
    return found.realized, found.unrealized, found.turnover, found.fills


def recompute(*args: str) -> str:
    out = StringIO()
    call_command("recompute_pnl", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def audit_rows(account: BrokerAccount) -> list[OrderEvent]:
    return list(OrderEvent.objects.filter(account=account, kind=RECOMPUTED).order_by("id"))


def traded_before_the_fix(account: BrokerAccount, crude: Instrument) -> None:
    """Monday: a x10 crude contract bought at 100 and sold at 101, and 2 more bought at 100
    and held (marked 103 at the close); Tuesday: held (marked 104). Both days' rows written
    by runs that valued the contract at x1, as PnL did before the multiplier fix; the
    master says x10 since, and today's run (Wednesday) honours it."""
    make_trades(
        account=account,
        instrument=crude,
        fills=[
            ("B1", "BUY", 1, "100", at(MONDAY, 10)),
            ("S1", "SELL", 1, "101", at(MONDAY, 11)),
            ("B2", "BUY", 2, "100", at(MONDAY, 12)),
        ],
    )
    make_fair_price(crude, "103")
    compute_account_pnl(account=account, now=at(MONDAY, 15, 30))
    make_fair_price(crude, "104")
    compute_account_pnl(account=account, now=at(TUESDAY, 15, 30))
    Instrument.objects.filter(pk=crude.pk).update(multiplier=10)
    compute_account_pnl(account=account, now=at(WEDNESDAY, 10))


def test_a_past_day_of_a_x10_contract_is_recomputed_once_with_one_audit_row():
    account = make_account()
    crude = make_instrument(segment="MCXFO", symbol="CRUDEOIL")
    traded_before_the_fix(account, crude)
    # The defect: today's row is right, the past ones keep the x1 figures.
    assert row(account, WEDNESDAY) == (D("0"), D("80.00"), D("0"), 0)
    assert row(account, MONDAY) == (D("1.00"), D("6.00"), D("401.00"), 3)
    assert row(account, TUESDAY) == (D("0"), D("8.00"), D("0"), 0)

    out = recompute("--multiplier-contracts")

    # Realized 1 x 1 x 10, turnover (100 + 101 + 200) x 10; the 2 held were the only open
    # position that day and the row provably holds x1 figures: its unrealized x10.
    assert row(account, MONDAY) == (D("10.00"), D("60.00"), D("4010.00"), 3)
    # Tuesday had no fill: nothing tells whether its 8.00 was valued at x1 or x10, and
    # Tuesday's marks are not stored: kept, and said so.
    assert row(account, TUESDAY) == (D("0"), D("8.00"), D("0"), 0)
    name = f"account {account.pk} ({account.account_name})"
    assert (
        f"{name} 2025-01-06: realized 1.00 -> 10.00, unrealized 6.00 -> 60.00, "
        "turnover 401.00 -> 4010.00 [unrealized x10: every position open that day was a x10 "
        "contract, valued at x1 before the multiplier fix]"
    ) in out
    assert f"{name} 2025-01-07: unchanged [unrealized 8.00 kept: contracts (x10)" in out
    assert "that day's marks are not stored" in out
    [event] = audit_rows(account)
    assert (event.user_id, event.actor, event.order_id) == (account.user_id, "recompute_pnl", None)
    assert event.before == {
        "trading_date": "2025-01-06",
        "realized": "1.00",
        "unrealized": "6.00",
        "turnover": "401.00",
        "fills": 3,
    }
    assert event.after == {
        "trading_date": "2025-01-06",
        "realized": "10.00",
        "unrealized": "60.00",
        "turnover": "4010.00",
        "fills": 3,
    }
    assert event.message.startswith("PnL of 2025-01-06 recomputed from the stored trades:")

    again = recompute("--multiplier-contracts")

    assert row(account, MONDAY) == (D("10.00"), D("60.00"), D("4010.00"), 3)
    assert len(audit_rows(account)) == 1
    assert "2025-01-06" not in again and "0 of" in again and "changed" in again


def test_a_day_with_contracts_of_several_multipliers_open_keeps_its_unrealized_and_says_why():
    account = make_account()
    crude = make_instrument(segment="MCXFO")
    shares = make_instrument()
    make_trades(
        account=account,
        instrument=crude,
        fills=[("C1", "BUY", 1, "100", at(MONDAY, 10)), ("C2", "SELL", 1, "102", at(MONDAY, 11))],
    )
    make_trades(account=account, instrument=crude, fills=[("C3", "BUY", 1, "100", at(MONDAY, 12))])
    make_trades(account=account, instrument=shares, fills=[("E1", "BUY", 1, "50", at(MONDAY, 12))])
    make_fair_price(crude, "101")
    make_fair_price(shares, "51")
    compute_account_pnl(account=account, now=at(MONDAY, 15, 30))
    Instrument.objects.filter(pk=crude.pk).update(multiplier=10)
    assert row(account, MONDAY) == (D("2.00"), D("2.00"), D("352.00"), 4)

    out = recompute("--since", "2025-01-06", "--until", "2025-01-06", "--account", str(account.pk))

    # x1 shares and a x10 contract open at once: the 2.00 cannot be split without the
    # day's marks. Realized and turnover are the trades' own.
    assert row(account, MONDAY) == (D("20.00"), D("2.00"), D("3070.00"), 4)
    assert "several multipliers (x1, x10)" in out
    [event] = audit_rows(account)
    assert event.after["realized"] == "20.00" and event.after["unrealized"] == "2.00"


def test_a_dry_run_shows_the_change_and_writes_nothing():
    account = make_account()
    traded_before_the_fix(account, make_instrument(segment="MCXFO"))
    events = OrderEvent.objects.count()

    out = recompute("--multiplier-contracts", "--dry-run")

    assert "2025-01-06: realized 1.00 -> 10.00" in out
    # Monday to Wednesday, and today (the daily run's own, made by the recompute's run).
    assert "1 of 4 stored day(s) in 1 account(s) would change (dry run: nothing written)" in out
    assert row(account, MONDAY) == (D("1.00"), D("6.00"), D("401.00"), 3)
    assert OrderEvent.objects.count() == events

    assert "1 of 4 stored day(s) in 1 account(s) changed" in recompute("--multiplier-contracts")
    assert row(account, MONDAY) == (D("10.00"), D("60.00"), D("4010.00"), 3)


def test_multiplier_contracts_picks_only_the_accounts_that_traded_one():
    mcx = make_account()
    traded_before_the_fix(mcx, make_instrument(segment="MCXFO"))
    shares_only = make_account()
    shares = make_instrument()
    make_trades(
        account=shares_only,
        instrument=shares,
        fills=[("E1", "BUY", 1, "50", at(MONDAY, 10)), ("E2", "SELL", 1, "55", at(MONDAY, 11))],
    )
    compute_account_pnl(account=shares_only, now=at(MONDAY, 15, 30))
    # A row that disagrees with the trades (a fill the broker reported late, say).
    PnlDaily.objects.filter(account=shares_only).update(realized=D("4.00"))

    out = recompute("--multiplier-contracts")

    assert f"account {shares_only.pk} " not in out and "in 1 account(s)" in out
    assert row(shares_only, MONDAY)[0] == D("4.00")
    assert audit_rows(shares_only) == []

    out = recompute("--since", "2025-01-06", "--account", str(shares_only.pk))

    assert f"account {shares_only.pk} ({shares_only.account_name}) 2025-01-06: realized " in out
    assert row(shares_only, MONDAY) == (D("5.00"), D("0"), D("105.00"), 2)
    assert len(audit_rows(shares_only)) == 1


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--since", "2025-01-08", "--until", "2025-01-06"], "is after --until"),
        (["--since", "yesterday"], "is not a date"),
        (["--account", "999999"], "no broker account with id 999999"),
        ([], "name the days"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(args, words):
    account = make_account()
    traded_before_the_fix(account, make_instrument(segment="MCXFO"))

    with pytest.raises(CommandError, match=words):
        recompute(*args)

    assert row(account, MONDAY) == (D("1.00"), D("6.00"), D("401.00"), 3)
    assert audit_rows(account) == []
