"""Rows copied into the cache and rebuilt from it (sessions and API keys): every concrete
field but the ones a caller keeps out, the password hash above all.

`CredentialCache` is the one shared cache of a kind of credential (API sessions, API keys),
keyed by the credential's hash. A revocation deletes the entry and leaves a short-lived
tombstone, so a process that read the row just before cannot put it back. A cache outage
never fails a caller: the database is the truth, and a cache that is down is not being read
either. After a failed call the cache is not read nor filled for a while (the breaker shared
with the rate limiter and the metrics, `trading_site.core.redis_breaker`): a Redis that hangs
costs one socket timeout per period, and meanwhile every credential is read from the
database, never from a copy the cache might hold. Deletions and tombstones always try the
cache: a process whose cache answers would otherwise read the dropped copy on.

A Redis that hung (or was cut off) keeps its data: the copy of a credential revoked meanwhile
would authenticate again once it answers, for the rest of its time in the cache. So when this
process finds Redis again, before it reads anything from it (the breaker's recovery hook):
it writes the cache epoch (no entry cached before it is trusted, by any process, whatever
was revoked, deleted or changed meanwhile and by whom), and the deletions and tombstones it
could not write (kept, bounded, in the process); at its next lookup it also writes the
tombstones of the credentials revoked since its last answer before the outage (from the
database: those of processes that may have died since).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import models
from django.utils import timezone

from accounts.models import ApiKey, AuthSession, User
from trading_site.core.redis_breaker import store_outage

_M = TypeVar("_M", bound=models.Model)
_Credential = TypeVar("_Credential", AuthSession, ApiKey)

logger = logging.getLogger(__name__)

# Never copied into the cache: the password hash stays in the database only.
USER_FIELDS_NOT_CACHED = frozenset({"password"})
# Writing last_used_at on every request would turn every read into a write.
LAST_USED_RESOLUTION_SECONDS = 60
# When a process last found Redis again after an outage (time.time()): no entry cached
# before is trusted. Read with every lookup's entry, in the same round trip.
CACHE_EPOCH_KEY = "auth:cache-epoch"
# Deletions and tombstones the cache missed during an outage, kept per kind of credential
# until it answers (the epoch covers those beyond).
MAX_PENDING = 10_000
# The tombstones written from the database after an outage: the credentials revoked since
# this process's last answer before it, less this margin (clocks, a revocation in flight)...
REVOKED_MARGIN_SECONDS = 5
# ... at most this many of each kind, the latest.
MAX_REVOKED_AFTER_OUTAGE = 10_000

CREDENTIAL_CACHES: list[CredentialCache[Any]] = []


def credential_hash(raw: str) -> str:
    """What is stored of a raw session token or API key, and what the cache is keyed by."""
    return hashlib.sha256(raw.encode()).hexdigest()


def row_fields(instance: models.Model, *, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {
        f.attname: getattr(instance, f.attname)
        for f in type(instance)._meta.concrete_fields
        if f.attname not in skip
    }


def from_cached_fields(model: type[_M], fields: dict[str, Any]) -> _M:
    """Rebuild a row; fields absent from the cache (the password) load lazily if touched,
    and `save()` writes only the loaded fields, so it cannot blank them."""
    names = [f.attname for f in model._meta.concrete_fields if f.attname in fields]
    return model.from_db("default", names, [fields[name] for name in names])


class CredentialCache(Generic[_Credential]):
    """Cached credential rows (with their user) by hash, and the tombstones of revoked ones.

    `kind` names the credential in the log ("token", "key"); `row_name` is the entry's key
    for the row ("session", "key"); `hash_field` is the row's field holding the hash."""

    def __init__(
        self,
        *,
        model: type[_Credential],
        hash_field: str,
        kind: str,
        row_name: str,
        entry_prefix: str,
        tombstone_prefix: str,
    ) -> None:
        self.model: type[_Credential] = model
        self.hash_field = hash_field
        self.kind = kind
        self.row_name = row_name
        self.entry_prefix = entry_prefix
        self.tombstone_prefix = tombstone_prefix
        self._lock = threading.Lock()
        # hash -> whether a tombstone is owed (else only the entry's deletion), in order.
        self._pending: dict[str, bool] = {}
        # Tombstones owed to the credentials revoked since then (time.time()), if any.
        self._revoked_since: float | None = None
        CREDENTIAL_CACHES.append(self)

    def authenticate(self, credential_hash: str) -> _Credential | None:
        """The live row the hash names, its `.user` loaded, or None: unknown, expired,
        revoked, or its user deactivated. The cache first, then the database."""
        revoked, row = self._lookup(credential_hash)
        now = timezone.now()  # after the lookup: an epoch it wrote is before what it caches
        if revoked:
            return None
        if row is None:
            row = (
                self.model.objects.select_related("user")
                .filter(**{self.hash_field: credential_hash})
                .first()
            )
            if row is None or not _is_live(row, now):
                return None
            self._record_use(row, now)
            self.store(row, now)
            return row
        if not _is_live(row, now):
            self.drop([credential_hash])
            return None
        if self._record_use(row, now):
            self.store(row, now)  # so other processes see the new last_used_at
        return row

    def store(self, row: _Credential, now: datetime) -> None:
        """Cache `row` and its user, never past the row's expiry (nor for longer than
        AUTH_TOKEN_CACHE_SECONDS)."""
        ttl = settings.AUTH_TOKEN_CACHE_SECONDS
        if row.expires_at is not None:
            ttl = min(ttl, int((row.expires_at - now).total_seconds()))
        if ttl <= 0 or not store_outage.should_ask():
            return
        entry = {
            "user": row_fields(row.user, skip=USER_FIELDS_NOT_CACHED),
            self.row_name: row_fields(row),
            "cached_at": now.timestamp(),  # read before the row was: never later than it
        }
        try:
            store_outage.call(
                lambda: cache.set(self._entry_key(getattr(row, self.hash_field)), entry, ttl)
            )
        except Exception:  # a cache outage slows authentication down; it must not break it
            logger.warning(
                "%s cache unavailable; not caching the %s", self.kind, self.row_name, exc_info=True
            )

    def drop(self, hashes: list[str]) -> None:
        """Delete cached entries, so the next request re-reads the rows."""
        if not hashes:
            return
        try:
            store_outage.call(lambda: cache.delete_many([self._entry_key(h) for h in hashes]))
        except Exception:
            logger.warning("%s cache unavailable; entries not dropped", self.kind, exc_info=True)
            self._remember(hashes, revoked=False)

    def forget_revoked(self, hashes: list[str]) -> None:
        """Delete the entries of revoked credentials and leave their tombstones."""
        if not hashes:
            return
        try:
            store_outage.call(lambda: cache.delete_many([self._entry_key(h) for h in hashes]))
            # Outlives any entry another process may be writing from a read just before.
            store_outage.call(
                lambda: cache.set_many(
                    {self._tombstone_key(h): True for h in hashes},
                    settings.AUTH_TOKEN_CACHE_SECONDS + 5,
                )
            )
        except Exception:
            # The database already says revoked; a cache that is down is not being read either.
            logger.error(
                "%s cache unavailable while revoking %ss", self.kind, self.row_name, exc_info=True
            )
            self._remember(hashes, revoked=True)

    def forget_pending(self) -> None:
        """Forget what this process owes the cache (as a process that died would)."""
        with self._lock:
            self._pending.clear()
            self._revoked_since = None

    def _remember(self, hashes: list[str], *, revoked: bool) -> None:
        """Owe the cache these deletions (and tombstones), until it answers again."""
        with self._lock:
            for h in hashes:
                self._pending[h] = self._pending.pop(h, False) or revoked
            overflow = len(self._pending) - MAX_PENDING
            for h in list(self._pending)[: max(overflow, 0)]:
                del self._pending[h]
        if overflow > 0:
            logger.error("%s cache: %s owed deletions forgotten", self.kind, overflow)

    def _owed(self) -> tuple[dict[str, bool], dict[str, Any], list[str]]:
        """(what this process owes, the tombstones to set, the entries to delete)."""
        with self._lock:
            owed = dict(self._pending)
        tombstones = {self._tombstone_key(h): True for h, revoked in owed.items() if revoked}
        return owed, tombstones, [self._entry_key(h) for h in owed]

    def _paid(self, owed: dict[str, bool], revoked_since: float) -> None:
        with self._lock:
            for h, revoked in owed.items():
                if self._pending.get(h) == revoked:
                    del self._pending[h]
            if self._revoked_since is None or revoked_since < self._revoked_since:
                self._revoked_since = revoked_since

    def _tombstone_revoked_since(self) -> None:
        """The tombstones of the credentials revoked since the time owed (one query)."""
        with self._lock:
            since, self._revoked_since = self._revoked_since, None
        if since is None:
            return
        hashes = list(
            self.model.objects.filter(revoked_at__gte=datetime.fromtimestamp(since, UTC))
            .order_by("-revoked_at")
            .values_list(self.hash_field, flat=True)[:MAX_REVOKED_AFTER_OUTAGE]
        )
        self.forget_revoked(hashes)  # owed again if the cache fails again

    def _entry_key(self, credential_hash: str) -> str:
        return self.entry_prefix + credential_hash

    def _tombstone_key(self, credential_hash: str) -> str:
        return self.tombstone_prefix + credential_hash

    def _lookup(self, credential_hash: str) -> tuple[bool, _Credential | None]:
        """(revoked, the cached row with its `.user` loaded, or None). One round trip: the
        entry, the revocation tombstone and the cache epoch together. If the cache is down or skipped (the
        breaker), the database alone decides (a revocation is always written there first)."""
        entry_key, tombstone = (
            self._entry_key(credential_hash),
            self._tombstone_key(credential_hash),
        )
        if not store_outage.should_ask():
            return False, None
        if self._revoked_since is not None:
            self._tombstone_revoked_since()
        try:
            found = store_outage.call(
                lambda: cache.get_many([entry_key, tombstone, CACHE_EPOCH_KEY])
            )
        except Exception:
            logger.warning(
                "%s cache unavailable; authenticating from the database", self.kind, exc_info=True
            )
            found = {}
        if found.get(tombstone):
            return True, None
        entry: dict[str, Any] | None = found.get(entry_key)
        if entry is None or entry.get("cached_at", 0.0) < found.get(CACHE_EPOCH_KEY, 0.0):
            return False, None  # none, or cached before an outage: the database decides
        row = from_cached_fields(self.model, entry[self.row_name])
        row.user = from_cached_fields(User, entry["user"])
        return False, row

    def _record_use(self, row: _Credential, now: datetime) -> bool:
        """Write the row's last_used_at, at most once per LAST_USED_RESOLUTION_SECONDS; True
        if written."""
        last = row.last_used_at
        if last is not None and (now - last).total_seconds() < LAST_USED_RESOLUTION_SECONDS:
            return False
        self.model.objects.filter(pk=row.pk).update(last_used_at=now)
        row.last_used_at = now
        return True


def _after_outage(answered_before: float | None) -> None:
    """The breaker's recovery hook: the epoch and what this process owes, in one round trip
    (and one more for the owed deletions); the tombstones of recent revocations at the next
    lookup (the database is not asked from the breaker's callers, some of them async)."""
    now = time.time()
    ttl = settings.AUTH_TOKEN_CACHE_SECONDS + 5
    owed = [c._owed() for c in CREDENTIAL_CACHES]
    writes: dict[str, Any] = {CACHE_EPOCH_KEY: now}
    for _pending, tombstones, _entries in owed:
        writes.update(tombstones)
    cache.set_many(writes, ttl)  # the epoch outlives every entry cached before it
    deletions = [key for _pending, _tombstones, entries in owed for key in entries]
    if deletions:
        cache.delete_many(deletions)
    # A copy cached before a revocation is gone by now - ttl anyway.
    since = max(
        (answered_before or 0.0) - REVOKED_MARGIN_SECONDS, now - ttl - REVOKED_MARGIN_SECONDS
    )
    for credentials, (pending, _tombstones, _entries) in zip(CREDENTIAL_CACHES, owed, strict=True):
        credentials._paid(pending, since)


store_outage.on_recovery(_after_outage)


def _is_live(row: AuthSession | ApiKey, now: datetime) -> bool:
    return (
        row.revoked_at is None
        and (row.expires_at is None or row.expires_at > now)
        and row.user.is_active
    )
