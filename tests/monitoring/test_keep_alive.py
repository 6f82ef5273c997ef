"""Keeping open WebSockets alive cheaply: one batched presence refresh per web process, and a
trading-window check that does not read the holiday table on every tick (SPEC 9, 11)."""

from __future__ import annotations

import time as clock
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from monitoring import presence
from monitoring.models import TradingHoliday
from tests.factories import make_trader_with_token, make_user, session_token_for
from trading_site.asgi import application
from trading_site.core import market_hours

IST = ZoneInfo("Asia/Kolkata")
THURSDAY_NOON = datetime(2026, 11, 26, 12, 0, tzinfo=IST)


@pytest.fixture(autouse=True)
def _fresh_holiday_memo():
    market_hours._holiday_memo.clear()
    yield
    market_hours._holiday_memo.clear()


@pytest.mark.django_db
def test_batched_refresh_extends_every_listed_connection_and_the_rest_expire(settings):
    settings.PRESENCE_TTL_SECONDS = 1
    kept, other_tab_kept, forgotten = make_user(), make_user(), make_user()
    presence.mark_connected(kept.pk, "tab-a")
    presence.mark_connected(other_tab_kept.pk, "tab-b")
    presence.mark_connected(forgotten.pk, "tab-c")
    clock.sleep(0.6)
    presence.refresh_connections([(kept.pk, "tab-a"), (other_tab_kept.pk, "tab-b")])
    clock.sleep(0.6)  # past the first TTL, inside the refreshed one
    assert presence.is_user_connected(kept.pk)
    assert presence.is_user_connected(other_tab_kept.pk)
    assert not presence.is_user_connected(forgotten.pk)
    assert presence.connected_user_ids() >= {kept.pk, other_tab_kept.pk}
    assert forgotten.pk not in presence.connected_user_ids()


@pytest.mark.django_db(transaction=True)
async def test_one_refresh_per_process_keeps_every_open_tab_present(settings, monkeypatch):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    settings.PRESENCE_TTL_SECONDS = 2  # refreshed every second
    batches: list[list[tuple[int, str]]] = []
    real_refresh = presence.refresh_connections

    def recording_refresh(entries):
        batches.append(list(entries))
        real_refresh(batches[-1])

    monkeypatch.setattr(presence, "refresh_connections", recording_refresh)

    user_with_token = sync_to_async(make_trader_with_token)
    (first, first_token), (second, second_token) = [await user_with_token() for _ in range(2)]
    tabs = [
        WebsocketCommunicator(application, f"/ws/{first.pk}/?token={first_token}"),
        WebsocketCommunicator(application, f"/ws/{first.pk}/?token={first_token}"),
        WebsocketCommunicator(application, f"/ws/{second.pk}/?token={second_token}"),
    ]
    for tab in tabs:
        await tab.connect()
        await tab.receive_json_from(timeout=3)
    await tabs[0].receive_nothing(timeout=2.6)  # past the connect-time TTL
    assert await sync_to_async(presence.connection_count)(first.pk) == 2
    assert await sync_to_async(presence.is_user_connected)(second.pk)
    assert batches, "no refresh ran"
    assert all(len(batch) == 3 for batch in batches)  # all three tabs in each single call
    for tab in tabs:
        await tab.disconnect()
    assert not await sync_to_async(presence.is_user_connected)(first.pk)


@pytest.mark.django_db
def test_cached_window_check_reads_the_holiday_table_once_per_interval(
    settings, django_assert_num_queries
):
    settings.TRADING_WINDOW_ALWAYS_OPEN = False
    check = async_to_sync(market_hours.ais_trading_window_open)
    with django_assert_num_queries(1):
        assert check(THURSDAY_NOON, cached=True)
        assert check(THURSDAY_NOON, cached=True)
        assert check(THURSDAY_NOON, cached=True)


@pytest.mark.django_db
def test_cached_window_check_sees_a_new_holiday_once_the_memo_is_stale(settings, monkeypatch):
    settings.TRADING_WINDOW_ALWAYS_OPEN = False
    check = async_to_sync(market_hours.ais_trading_window_open)
    assert check(THURSDAY_NOON, cached=True)
    TradingHoliday.objects.create(date=date(2026, 11, 26), description="declared today")
    monkeypatch.setattr(market_hours, "HOLIDAY_CACHE_SECONDS", 0.0)
    clock.sleep(0.01)
    assert not check(THURSDAY_NOON, cached=True)
    # The uncached check (a new connection) never waits for the memo.
    assert not check(THURSDAY_NOON)


@pytest.mark.django_db
def test_cached_window_check_still_follows_the_hours(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = False
    settings.TRADING_WINDOW_OPEN = time(9, 26)
    settings.TRADING_WINDOW_CLOSE = time(15, 30)
    check = async_to_sync(market_hours.ais_trading_window_open)
    assert check(THURSDAY_NOON, cached=True)
    after_close = THURSDAY_NOON.replace(hour=15, minute=30)
    assert not check(after_close, cached=True)


@pytest.mark.django_db(transaction=True)
async def test_open_tabs_get_market_closed_and_close_when_the_window_closes(settings):
    settings.TRADING_WINDOW_ALWAYS_OPEN = True
    settings.PRESENCE_TTL_SECONDS = 3  # checked every second
    user = await sync_to_async(make_user)()
    token = await sync_to_async(session_token_for)(user)
    tabs = [WebsocketCommunicator(application, f"/ws/{user.pk}/?token={token}") for _ in range(2)]
    for tab in tabs:
        await tab.connect()
        await tab.receive_json_from(timeout=3)
    settings.TRADING_WINDOW_ALWAYS_OPEN = False
    settings.TRADING_WEEKDAYS = []  # closed from now on
    for tab in tabs:
        message = await tab.receive_json_from(timeout=3)
        assert message["type"] == "market_closed"
        assert "next_opening" in message
        closing = await tab.receive_output(timeout=3)
        assert closing["type"] == "websocket.close"
        assert closing["code"] == 4000
