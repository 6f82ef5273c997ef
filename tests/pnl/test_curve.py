"""The intraday curve's maximum drawdown and the sum of several accounts' curves."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pnl.curve import max_drawdown, summed_curve

D = Decimal


def test_drawdown_is_the_largest_fall_from_a_running_peak():
    values = [D(v) for v in ("0", "100", "50", "120", "20", "60")]
    drawdown = max_drawdown(values)
    assert drawdown.amount == D("100")  # 120 -> 20, not 100 -> 20 or 100 -> 50
    assert drawdown.peak_and_trough == (3, 4)


def test_a_curve_that_only_rises_has_no_drawdown():
    drawdown = max_drawdown([D("10"), D("20"), D("20"), D("30")])
    assert drawdown.amount == D("0")
    assert drawdown.peak_and_trough is None


def test_a_curve_falling_from_its_first_point_measures_from_it():
    assert max_drawdown([D("-50"), D("-200"), D("-120")]).amount == D("150")


def test_an_empty_curve_has_no_drawdown():
    assert max_drawdown([]).amount == D("0")


def at(minute: int) -> datetime:
    return datetime(2026, 12, 1, 4, minute, tzinfo=UTC)


def test_curves_are_summed_minute_by_minute_carrying_each_account_forward():
    summed = summed_curve(
        {
            1: [(at(0), D("10")), (at(2), D("30"))],
            2: [(at(1), D("-5")), (at(2), D("-7")), (at(3), D("1"))],
        }
    )
    assert summed == [
        (at(0), D("10")),  # account 2 has no point yet: 0
        (at(1), D("5")),  # 10 carried + -5
        (at(2), D("23")),
        (at(3), D("31")),  # 30 carried + 1
    ]
