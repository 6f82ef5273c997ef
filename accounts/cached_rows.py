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
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
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

    def authenticate(self, credential_hash: str) -> _Credential | None:
        """The live row the hash names, its `.user` loaded, or None: unknown, expired,
        revoked, or its user deactivated. The cache first, then the database."""
        now = timezone.now()
        revoked, row = self._lookup(credential_hash)
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

    def _entry_key(self, credential_hash: str) -> str:
        return self.entry_prefix + credential_hash

    def _tombstone_key(self, credential_hash: str) -> str:
        return self.tombstone_prefix + credential_hash

    def _lookup(self, credential_hash: str) -> tuple[bool, _Credential | None]:
        """(revoked, the cached row with its `.user` loaded, or None). One round trip: the
        entry and the revocation tombstone together. If the cache is down or skipped (the
        breaker), the database alone decides (a revocation is always written there first)."""
        entry_key, tombstone = (
            self._entry_key(credential_hash),
            self._tombstone_key(credential_hash),
        )
        if not store_outage.should_ask():
            return False, None
        try:
            found = store_outage.call(lambda: cache.get_many([entry_key, tombstone]))
        except Exception:
            logger.warning(
                "%s cache unavailable; authenticating from the database", self.kind, exc_info=True
            )
            found = {}
        if found.get(tombstone):
            return True, None
        entry: dict[str, Any] | None = found.get(entry_key)
        if entry is None:
            return False, None
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


def _is_live(row: AuthSession | ApiKey, now: datetime) -> bool:
    return (
        row.revoked_at is None
        and (row.expires_at is None or row.expires_at > now)
        and row.user.is_active
    )
