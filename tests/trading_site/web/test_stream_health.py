"""The dashboard's account cards and the settings page show each account's event stream."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from accounts.models import Broker, BrokerSession
from orders.brokers.paper import events as paper_events
from orders.brokers.streams import health
from tests.factories import make_account

pytestmark = pytest.mark.django_db


def _stream_cell(html: str, account_id: int) -> str:
    card = html.split(f'data-account-id="{account_id}"', 1)[1]
    return re.search(r'data-field="stream".*?</span></span>', card, re.S).group(0)


def test_each_account_card_shows_its_stream_state(web, trader, account):
    live = make_account(user=trader, broker=Broker.IIFL, name="Live XTS")
    BrokerSession.objects.create(
        account=live, access_token="t", expires_at=datetime.now(tz=UTC) + timedelta(hours=1)
    )
    no_session = make_account(user=trader, broker=Broker.IIFL, name="Idle XTS")
    event_at = datetime(2026, 3, 5, 4, 45, 2, tzinfo=UTC)  # 10:15:02 IST
    health.write(
        {
            health.account_key(live.pk): health.StreamHealth(
                state=health.RECONNECTING,
                since=datetime(2026, 3, 5, 4, 44, 0, tzinfo=UTC).isoformat(),
                reconnects=3,
            ),
            health.partition_key(paper_events.partition_of(account.pk)): health.StreamHealth(
                state=health.CONNECTED
            ),
        },
        last_paper_events={account.pk: event_at.isoformat()},
    )
    html = web.get("/").content.decode()
    paper_cell = _stream_cell(html, account.pk)
    assert 'data-stream-state="connected"' in paper_cell and "Live" in paper_cell
    assert "last event 10:15:02" in paper_cell
    live_cell = _stream_cell(html, live.pk)
    assert "Reconnecting" in live_cell and "since 10:14:00 IST" in live_cell
    assert "3 reconnects" in live_cell
    assert 'data-stream-state="no-session"' in _stream_cell(html, no_session.pk)


def test_a_stream_whose_process_stopped_reporting_shows_down(web, trader, account, settings):
    html = web.get("/").content.decode()  # nobody wrote the paper partition's health
    assert 'data-stream-state="down"' in _stream_cell(html, account.pk)


def test_the_settings_page_lists_the_stream_of_every_account(web, trader, account):
    make_account(user=trader, name="Old", is_active=False)
    health.write(
        {
            health.partition_key(paper_events.partition_of(account.pk)): health.StreamHealth(
                state=health.CONNECTED
            )
        }
    )
    html = web.get("/settings/").content.decode()
    assert html.count('data-field="stream"') == 2
    assert 'data-stream-state="connected"' in html and 'data-stream-state="off"' in html
