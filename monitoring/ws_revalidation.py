"""Open WebSockets keep their right to stream: a revoked or expired token, a logged-out or
password-changed browser session, or a deactivated user closes the socket with 4401 within
WS_AUTH_RECHECK_SECONDS.

The handshake checks credentials once; without this, a socket opened with a token streamed
the trader's orders for as long as it stayed open. One task per web process (not one per
connection) re-reads every open socket's credential in a few batched queries:
- a token: its AuthSession row must be unrevoked, unexpired and its user active;
- an API key: its ApiKey row likewise (no expiry set means none);
- a browser session: the session must still exist, unexpired, name the same user, and carry
  the user's current session-auth hash (a password change alters it; Django's own
  `update_session_auth_hash` keeps the changer's session valid).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import import_module

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from accounts.models import ApiKey, AuthSession, User
from trading_site.core.per_loop import PerLoop

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
_CHUNK = 1000


@dataclass(frozen=True)
class Credential:
    """What a socket was opened with: a token's hash, an API key's hash, or a browser
    session's key."""

    user_id: int
    token_hash: str = ""
    session_key: str = ""
    api_key_hash: str = ""


def _chunks(items: list, size: int = _CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _valid_token_hashes(hashes: set[str]) -> set[str]:
    return _live_hashes(AuthSession, "token_hash", hashes, Q(expires_at__gt=timezone.now()))


def _valid_api_key_hashes(hashes: set[str]) -> set[str]:
    unexpired = Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
    return _live_hashes(ApiKey, "key_hash", hashes, unexpired)


def _live_hashes(
    model: type[AuthSession] | type[ApiKey], hash_field: str, hashes: set[str], unexpired: Q
) -> set[str]:
    """The `hashes` whose `model` row is unexpired, not revoked and of an active user (read
    in chunks)."""
    valid: set[str] = set()
    for chunk in _chunks(sorted(hashes)):
        valid.update(
            model.objects.filter(
                unexpired,
                revoked_at__isnull=True,
                user__is_active=True,
                **{f"{hash_field}__in": chunk},
            ).values_list(hash_field, flat=True)
        )
    return valid


def _session_data(keys: set[str]) -> dict[str, dict]:
    """The decoded data of the sessions that still exist and have not expired."""
    engine = import_module(settings.SESSION_ENGINE)
    if settings.SESSION_ENGINE == "django.contrib.sessions.backends.db":
        from django.contrib.sessions.models import Session  # only with the database backend

        store = engine.SessionStore()
        found: dict[str, dict] = {}
        for chunk in _chunks(sorted(keys)):
            rows = Session.objects.filter(
                session_key__in=chunk, expire_date__gt=timezone.now()
            ).values_list("session_key", "session_data")
            for key, data in rows:
                found[key] = store.decode(data)
        return found
    found = {}
    for key in keys:
        store = engine.SessionStore(session_key=key)
        if store.exists(key):
            data = store.load()
            if data:
                found[key] = data
    return found


def _valid_session_keys(credentials: list[Credential]) -> set[str]:
    sessions = _session_data({c.session_key for c in credentials})
    user_ids = {c.user_id for c in credentials if c.session_key in sessions}
    users = {u.pk: u for u in User.objects.filter(pk__in=user_ids, is_active=True)}
    valid = set()
    for credential in credentials:
        data = sessions.get(credential.session_key)
        user = users.get(credential.user_id)
        if data is None or user is None or str(data.get(SESSION_KEY)) != str(user.pk):
            continue
        stored = data.get(HASH_SESSION_KEY) or ""
        current = [user.get_session_auth_hash()]
        fallbacks = getattr(user, "get_session_auth_fallback_hash", None)
        if fallbacks is not None:
            current.extend(fallbacks())
        if any(constant_time_compare(stored, h) for h in current):
            valid.add(credential.session_key)
    return valid


def still_valid(credentials: list[Credential]) -> set[Credential]:
    """The credentials, of those given, that may keep streaming (database reads only)."""
    tokens = {c.token_hash for c in credentials if c.token_hash}
    api_keys = {c.api_key_hash for c in credentials if c.api_key_hash}
    sessions = [c for c in credentials if c.session_key and not c.token_hash and not c.api_key_hash]
    valid_hashes = _valid_token_hashes(tokens) if tokens else set()
    valid_api_keys = _valid_api_key_hashes(api_keys) if api_keys else set()
    valid_keys = _valid_session_keys(sessions) if sessions else set()

    def holds(c: Credential) -> bool:
        if c.token_hash:
            return c.token_hash in valid_hashes
        if c.api_key_hash:
            return c.api_key_hash in valid_api_keys
        return bool(c.session_key) and c.session_key in valid_keys

    return {c for c in credentials if holds(c)}


class _Revalidator:
    """This process's open sockets and the one task that re-checks them."""

    def __init__(self) -> None:
        self.sockets: dict[AsyncWebsocketConsumer, Credential] = {}
        self.task: asyncio.Task | None = None

    def watch(self, consumer: AsyncWebsocketConsumer, credential: Credential) -> None:
        self.sockets[consumer] = credential
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())

    def forget(self, consumer: AsyncWebsocketConsumer) -> None:
        self.sockets.pop(consumer, None)
        if not self.sockets and self.task is not None:
            self.task.cancel()
            self.task = None

    async def _run(self) -> None:
        period = max(0.2, float(settings.WS_AUTH_RECHECK_SECONDS))
        while self.sockets:
            await asyncio.sleep(period)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database may be away for a moment: keep the sockets, try again.
                logger.warning("websocket credential re-check failed", exc_info=True)

    async def tick(self) -> None:
        snapshot = dict(self.sockets)
        if not snapshot:
            return
        valid = await sync_to_async(still_valid, thread_sensitive=False)(
            list(set(snapshot.values()))
        )
        closing = [c for c, credential in snapshot.items() if credential not in valid]
        for consumer in closing:
            self.sockets.pop(consumer, None)
        if closing:
            logger.info("closing websockets whose credentials ended", extra={"count": len(closing)})
            await asyncio.gather(
                *(c.close(code=CLOSE_UNAUTHENTICATED) for c in closing), return_exceptions=True
            )


_revalidator: PerLoop[_Revalidator] = PerLoop(_Revalidator)


def watch(consumer: AsyncWebsocketConsumer, credential: Credential | None) -> None:
    if credential is not None:
        _revalidator.get().watch(consumer, credential)


def forget(consumer: AsyncWebsocketConsumer) -> None:
    _revalidator.get().forget(consumer)
