"""The trading window: 09:26-15:30 Asia/Kolkata on weekdays, minus holidays (SPEC 8)."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from monitoring.models import TradingHoliday
from trading_site.core.market_hours import (
    WindowRules,
    is_trading_window_open,
    next_opening,
    next_opening_after,
    window_open_at,
)

IST = ZoneInfo("Asia/Kolkata")
RULES = WindowRules(opens=time(9, 26), closes=time(15, 30), weekdays=frozenset(range(5)))
# 2026-11-26 is a Thursday.
THURSDAY = date(2026, 11, 26)


def ist(day: date, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, ss, tzinfo=IST)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (ist(THURSDAY, 9, 25, 59), False),
        (ist(THURSDAY, 9, 26), True),
        (ist(THURSDAY, 12, 0), True),
        (ist(THURSDAY, 15, 29, 59), True),
        (ist(THURSDAY, 15, 30), False),
        (ist(date(2026, 11, 28), 11, 0), False),  # Saturday
    ],
)
def test_window_opens_at_0926_and_closes_at_1530_on_weekdays(moment, expected):
    assert window_open_at(moment, RULES, set()) is expected


def test_window_is_judged_in_kolkata_time_whatever_the_input_zone():
    # 04:00 UTC is 09:30 IST.
    assert window_open_at(datetime(2026, 11, 26, 4, 0, tzinfo=ZoneInfo("UTC")), RULES, set())
    assert not window_open_at(datetime(2026, 11, 26, 3, 55, tzinfo=ZoneInfo("UTC")), RULES, set())


def test_holiday_closes_the_whole_day():
    assert not window_open_at(ist(THURSDAY, 11, 0), RULES, {THURSDAY})


def test_next_opening_after_friday_close_is_monday_0926():
    friday_evening = ist(date(2026, 11, 27), 16, 0)
    assert next_opening_after(friday_evening, RULES, set()) == ist(date(2026, 11, 30), 9, 26)


def test_next_opening_skips_holidays():
    early = ist(THURSDAY, 8, 0)
    assert next_opening_after(early, RULES, {THURSDAY}) == ist(date(2026, 11, 27), 9, 26)


def test_next_opening_before_open_is_today():
    assert next_opening_after(ist(THURSDAY, 7, 0), RULES, set()) == ist(THURSDAY, 9, 26)


def test_always_open_rules_are_open_on_sunday_night():
    rules = WindowRules(time(9, 26), time(15, 30), frozenset(range(5)), always_open=True)
    assert window_open_at(ist(date(2026, 11, 29), 23, 0), rules, set())


@pytest.mark.django_db
def test_holiday_table_closes_the_window(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = False
    assert is_trading_window_open(ist(THURSDAY, 11, 0))
    TradingHoliday.objects.create(date=THURSDAY, description="test holiday")
    assert not is_trading_window_open(ist(THURSDAY, 11, 0))
    assert next_opening(ist(THURSDAY, 11, 0)) == ist(date(2026, 11, 27), 9, 26)


@pytest.mark.django_db
def test_window_settings_are_read_at_call_time(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = False
    settings.TRADING_WINDOW_OPEN = time(10, 0)
    settings.TRADING_WEEKDAYS = [0, 1, 2, 3, 4, 5]
    assert not is_trading_window_open(ist(THURSDAY, 9, 30))
    assert is_trading_window_open(ist(date(2026, 11, 28), 10, 30))  # Saturday now trades
