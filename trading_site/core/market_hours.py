"""The trading window: when cycles run and live-broker orders are accepted (SPEC 8).

Default 09:26-15:30 Asia/Kolkata on weekdays, minus the admin-editable `TradingHoliday`
list; `TRADING_WINDOW_ALWAYS_OPEN` (the paper-only embedded default) opens it always.

The date arithmetic is pure (`window_open_at`, `next_opening_after`: a `WindowRules` and a
set of holiday dates in, an answer out); the two public functions only add the settings and
the holiday read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from time import monotonic
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError

from trading_site.core.models import TradingHoliday

MARKET_TZ = ZoneInfo("Asia/Kolkata")
# The days a trader may name in a page's filter or report (From, To, Day): the day's start in
# Asia/Kolkata, the day after and both in UTC exist for each of them. Outside are typos
# (0001-01-01, 9999-12-31) whose arithmetic overflows: a form error, not a server error.
FIRST_NAMEABLE_DAY = date(1970, 1, 1)
LAST_NAMEABLE_DAY = date(2999, 12, 31)
# Far enough to cross any run of weekends and holidays; a calendar with no trading day in a
# year is a misconfiguration, answered with None.
_SEARCH_DAYS = 366


@dataclass(frozen=True)
class WindowRules:
    opens: time
    closes: time
    weekdays: frozenset[int]  # 0 = Monday
    always_open: bool = False


def market_now(at: datetime | None = None) -> datetime:
    """`at` (aware; naive means UTC) or now, in Asia/Kolkata."""
    if at is None:
        from django.utils import timezone

        at = timezone.now()
    if at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo("UTC"))
    return at.astimezone(MARKET_TZ)


def is_nameable_day(day: date) -> bool:
    return FIRST_NAMEABLE_DAY <= day <= LAST_NAMEABLE_DAY


def validate_nameable_day(day: date) -> None:
    """A form field's validator: a day outside FIRST_NAMEABLE_DAY..LAST_NAMEABLE_DAY is
    refused with the range in the message."""
    if not is_nameable_day(day):
        raise ValidationError(
            f"Give a day between {FIRST_NAMEABLE_DAY:%d %b %Y} and {LAST_NAMEABLE_DAY:%d %b %Y}."
        )


def is_trading_day(day: date, rules: WindowRules, holidays: Iterable[date]) -> bool:
    return day.weekday() in rules.weekdays and day not in set(holidays)


def window_open_at(at: datetime, rules: WindowRules, holidays: Iterable[date]) -> bool:
    """Pure: is the window open at the aware instant `at`?"""
    if rules.always_open:
        return True
    local = at.astimezone(MARKET_TZ)
    if not is_trading_day(local.date(), rules, holidays):
        return False
    return rules.opens <= local.time().replace(tzinfo=None) < rules.closes


def next_opening_after(
    at: datetime, rules: WindowRules, holidays: Iterable[date]
) -> datetime | None:
    """Pure: the next instant the window opens, strictly after `at` unless it is open now, in
    which case `at` itself (localised). None when no trading day lies within a year."""
    local = at.astimezone(MARKET_TZ)
    if rules.always_open:
        return local
    holiday_set = set(holidays)
    if window_open_at(local, rules, holiday_set):
        return local
    for offset in range(_SEARCH_DAYS + 1):
        day = local.date() + timedelta(days=offset)
        if not is_trading_day(day, rules, holiday_set):
            continue
        opening = datetime.combine(day, rules.opens, tzinfo=MARKET_TZ)
        if opening > local:
            return opening
    return None


def trading_date(at: datetime | None = None) -> date:
    """The calendar date in Asia/Kolkata (the exchange's day)."""
    return market_now(at).date()


# ---- settings and the holiday table -------------------------------------------------------


def trading_day_start(at: datetime | None = None) -> datetime:
    """Midnight in Asia/Kolkata that starts the trading date of `at` (default: now)."""
    return datetime.combine(trading_date(at), time.min, tzinfo=MARKET_TZ)


def current_rules() -> WindowRules:
    from django.conf import settings

    return WindowRules(
        opens=settings.TRADING_WINDOW_OPEN,
        closes=settings.TRADING_WINDOW_CLOSE,
        weekdays=frozenset(settings.TRADING_WEEKDAYS),
        always_open=settings.TRADING_WINDOW_ALWAYS_OPEN,
    )


def holidays_between(start: date, end: date) -> set[date]:
    return set(
        TradingHoliday.objects.filter(date__gte=start, date__lte=end).values_list("date", flat=True)
    )


def is_trading_window_open(at: datetime | None = None) -> bool:
    rules = current_rules()
    if rules.always_open:
        return True
    local = market_now(at)
    return window_open_at(local, rules, holidays_between(local.date(), local.date()))


def next_opening(at: datetime | None = None) -> datetime | None:
    """The next opening in Asia/Kolkata (`at` itself when the window is open now)."""
    rules = current_rules()
    local = market_now(at)
    if rules.always_open:
        return local
    holidays = holidays_between(local.date(), local.date() + timedelta(days=_SEARCH_DAYS))
    return next_opening_after(local, rules, holidays)


# Per-process memo of "is this date a holiday?" for the WebSocket keep-alive, which asks for
# every open connection's process every PRESENCE_TTL_SECONDS / 3: without it each check was a
# query on a new database connection through a worker thread. An admin edit of the holiday
# table reaches open connections within HOLIDAY_CACHE_SECONDS.
HOLIDAY_CACHE_SECONDS = 60.0
_holiday_memo: dict[date, tuple[bool, float]] = {}


def _cached_is_holiday(day: date) -> bool | None:
    """The memoised answer for `day`, or None when there is none fresh enough."""
    hit = _holiday_memo.get(day)
    if hit is None or monotonic() - hit[1] > HOLIDAY_CACHE_SECONDS:
        return None
    return hit[0]


def _remember_holiday(day: date) -> bool:
    is_holiday = bool(holidays_between(day, day))
    _holiday_memo.clear()  # one day is ever asked about at a time: keep the memo tiny
    _holiday_memo[day] = (is_holiday, monotonic())
    return is_holiday


async def ais_trading_window_open(at: datetime | None = None, *, cached: bool = False) -> bool:
    """`is_trading_window_open` for async code. `cached=True` (the WebSocket keep-alive) reads
    the holiday table at most once per HOLIDAY_CACHE_SECONDS per process, and needs no thread
    hop at all while its memo is fresh."""
    from asgiref.sync import sync_to_async

    rules = current_rules()
    if rules.always_open:
        # No holiday lookup needed: spare every connection's keep-alive the thread hop.
        return True
    if not cached:
        return await sync_to_async(is_trading_window_open)(at)
    local = market_now(at)
    is_holiday = _cached_is_holiday(local.date())
    if is_holiday is None:
        is_holiday = await sync_to_async(_remember_holiday)(local.date())
    holidays = {local.date()} if is_holiday else set()
    return window_open_at(local, rules, holidays)


async def anext_opening(at: datetime | None = None) -> datetime | None:
    from asgiref.sync import sync_to_async

    return await sync_to_async(next_opening)(at)
