"""Stream health per account: connected, reconnecting or down, since when, the last event,
how many reconnects; shown on the dashboard, the settings page and /readyz.

Kept in the cache (Redis in the full stack, this process's memory when embedded) by the
process running the stream, rewritten every scan with a TTL of
BROKER_STREAM_HEALTH_TTL_SECONDS: a dead process's streams expire and read as "down",
never as healthy. An XTS account's record is its own stream's; a paper account's comes from
the reader of its event partition (state) plus its own last event.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from accounts.models import XTS_BROKERS, Broker, BrokerAccount, BrokerSession
from orders.brokers.paper import events as paper_events

CONNECTED, RECONNECTING, WAITING, DOWN, NO_SESSION, OFF = (
    "connected",
    "reconnecting",
    "waiting-for-session",
    "down",
    "no-session",
    "off",
)


_LABELS = {
    CONNECTED: "Live",
    RECONNECTING: "Reconnecting",
    WAITING: "Waiting for a new session",
    DOWN: "Down",
    NO_SESSION: "Not connected",
    OFF: "Off",
}
_BADGES = {
    CONNECTED: "status-ok",
    RECONNECTING: "status-pending",
    WAITING: "status-pending",
    DOWN: "status-error",
    NO_SESSION: "status-none",
    OFF: "status-none",
}


@dataclass
class StreamHealth:
    state: str  # connected | reconnecting | waiting-for-session | down | no-session | off
    source: str = ""  # "xts-stream" | "paper"
    since: str | None = None  # ISO 8601: in this state since
    last_event_at: str | None = None
    reconnects: int = 0
    process: str = ""  # which process runs it
    detail: str = ""  # why it is not connected

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def since_at(self) -> datetime | None:
        return parse_time(self.since)

    @property
    def last_event(self) -> datetime | None:
        return parse_time(self.last_event_at)

    @property
    def label(self) -> str:
        return _LABELS.get(self.state, self.state)

    @property
    def badge(self) -> str:
        """The CSS status class of the state (templates)."""
        return _BADGES.get(self.state, "status-unknown")


def _ttl() -> int:
    return max(2, int(settings.BROKER_STREAM_HEALTH_TTL_SECONDS))


def account_key(account_id: int) -> str:
    return f"broker-stream-health:account:{account_id}"


def partition_key(partition: int) -> str:
    return f"broker-stream-health:paper:{partition}"


def paper_event_key(account_id: int) -> str:
    return f"broker-stream-health:paper-event:{account_id}"


def write(
    records: dict[str, StreamHealth], *, last_paper_events: dict[int, str] | None = None
) -> None:
    """Store these records (by key: account_key / partition_key) for one TTL, and the paper
    accounts' last events for a day (a quiet account is not a down stream)."""
    if records:
        cache.set_many({key: health.as_dict() for key, health in records.items()}, _ttl())
    if last_paper_events:
        cache.set_many(
            {paper_event_key(account_id): at for account_id, at in last_paper_events.items()},
            86400,
        )


def forget(keys: list[str]) -> None:
    if keys:
        cache.delete_many(keys)


def _stream_expected(account: BrokerAccount, live_sessions: set[int]) -> str | None:
    """Why an account has no stream to show (None: it should have one)."""
    if not account.is_active:
        return OFF
    if account.broker == Broker.PAPER:
        return None if paper_events.transport() != paper_events.OFF else OFF
    if account.broker in XTS_BROKERS:
        return None if account.pk in live_sessions else NO_SESSION
    return OFF


def live_session_accounts(account_ids: list[int]) -> set[int]:
    return set(
        BrokerSession.objects.filter(
            account_id__in=account_ids,
            invalidated_at__isnull=True,
            expires_at__gt=timezone.now(),
        ).values_list("account_id", flat=True)
    )


def health_of(accounts: list[BrokerAccount]) -> dict[int, StreamHealth]:
    """Each account's stream health (one query and one cache round trip for all)."""
    if not accounts:
        return {}
    live = live_session_accounts([a.pk for a in accounts])
    keys = []
    for account in accounts:
        keys.append(account_key(account.pk))
        if account.broker == Broker.PAPER:
            keys.append(partition_key(paper_events.partition_of(account.pk)))
            keys.append(paper_event_key(account.pk))
    stored = cache.get_many(keys)
    result: dict[int, StreamHealth] = {}
    for account in accounts:
        missing = _stream_expected(account, live)
        if missing is not None:
            result[account.pk] = StreamHealth(state=missing)
            continue
        if account.broker == Broker.PAPER:
            record = stored.get(partition_key(paper_events.partition_of(account.pk)))
            health = StreamHealth(**record) if record else StreamHealth(state=DOWN, source="paper")
            health.last_event_at = stored.get(paper_event_key(account.pk))
        else:
            record = stored.get(account_key(account.pk))
            health = (
                StreamHealth(**record) if record else StreamHealth(state=DOWN, source="xts-stream")
            )
        result[account.pk] = health
    return result


READINESS_MAX_ACCOUNTS = 500


def readiness() -> dict:
    """The /readyz section: each active account that should stream, with its state
    ("degraded" when any is not connected). At most READINESS_MAX_ACCOUNTS are listed, those
    not connected first; the counts cover them all."""
    accounts = list(
        BrokerAccount.objects.filter(is_active=True)
        .only("pk", "broker", "is_active")
        .order_by("pk")
    )
    streaming = {
        account_id: h
        for account_id, h in health_of(accounts).items()
        if h.state not in (OFF, NO_SESSION)
    }
    counts: dict[str, int] = {}
    for h in streaming.values():
        counts[h.state] = counts.get(h.state, 0) + 1
    listed = sorted(streaming.items(), key=lambda item: (item[1].state == CONNECTED, item[0]))
    shown = {
        str(account_id): {
            "state": h.state,
            "since": h.since,
            "last_event_at": h.last_event_at,
            "reconnects": h.reconnects,
        }
        for account_id, h in listed[:READINESS_MAX_ACCOUNTS]
    }
    healthy = all(h.state == CONNECTED for h in streaming.values())
    return {
        "status": "ok" if healthy else "degraded",
        "counts": counts,
        "accounts": shown,
        "truncated": len(listed) > READINESS_MAX_ACCOUNTS,
    }


def parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
