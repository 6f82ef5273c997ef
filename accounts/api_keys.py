"""Long-lived API keys: create (shown once), authenticate, revoke.

A key is `tdk_` followed by 43 URL-safe characters (256 random bits). The prefix tells a
key from a session token without a database hit (session tokens never start with it), and
lets secret scanners recognise a leaked key. Only the SHA-256 hash is stored.

`authenticate_api_key` is the one lookup every way of presenting a key uses: the REST API's
Bearer header (accounts.auth), the WebSocket (monitoring.ws_auth), and any later API that
takes the key in a request body (OpenAlgo's `apikey`). Like session tokens, keys are cached
in the shared cache; a revocation deletes the entry and leaves a tombstone, so it holds on
every process at once.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from accounts.cached_rows import USER_FIELDS_NOT_CACHED, from_cached_fields, row_fields
from accounts.models import ApiKey, BrokerAccount, User
from trading_site.core.errors import ValidationFailed

logger = logging.getLogger(__name__)

API_KEY_PREFIX = "tdk_"
API_KEY_NAME_MAX = 100
# A runaway script creating keys in a loop stops here.
MAX_LIVE_API_KEYS = 25
# Writing last_used_at on every request would turn every read into a write.
LAST_USED_RESOLUTION_SECONDS = 60
_CACHE_PREFIX = "auth:apikey:"
_TOMBSTONE_PREFIX = "auth:apikey-revoked:"
_DISPLAY_CHARS = 8


def hash_api_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def looks_like_api_key(raw: str) -> bool:
    return raw.startswith(API_KEY_PREFIX)


def _new_raw_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


# ---- creating -------------------------------------------------------------------------------


def create_api_key(
    *,
    user: User,
    name: str,
    scope: str,
    bound_account: BrokerAccount | None = None,
    expires_at: datetime | None = None,
    client_ip: str | None = None,
) -> tuple[str, ApiKey]:
    """A new key for `user`; returns (raw key, row). The raw key is never stored."""
    errors: dict[str, list[str]] = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = ["is required"]
    elif len(name) > API_KEY_NAME_MAX:
        errors["name"] = [f"must be at most {API_KEY_NAME_MAX} characters"]
    if scope not in ApiKey.Scope.values:
        errors["scope"] = [f"must be one of {', '.join(ApiKey.Scope.values)}"]
    if bound_account is not None and (
        bound_account.user_id != user.pk or not bound_account.is_active
    ):
        errors["bound_account_id"] = ["not one of your active broker accounts"]
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        errors["expires_at"] = ["must be in the future"]
    if live_api_keys(user=user).count() >= MAX_LIVE_API_KEYS:
        errors["name"] = [f"you already have {MAX_LIVE_API_KEYS} keys; revoke one first"]
    if errors:
        first_field, messages = next(iter(errors.items()))
        raise ValidationFailed(f"{first_field}: {messages[0]}", details=errors)
    raw = _new_raw_key()
    api_key = ApiKey.objects.create(
        user=user,
        name=name,
        scope=scope,
        bound_account=bound_account,
        display_prefix=raw[: len(API_KEY_PREFIX) + _DISPLAY_CHARS],
        key_hash=hash_api_key(raw),
        expires_at=expires_at,
        created_ip=client_ip or None,
    )
    return raw, api_key


def live_api_keys(*, user: User):
    now = timezone.now()
    return ApiKey.objects.filter(user=user, revoked_at__isnull=True).exclude(expires_at__lte=now)


# ---- authenticating -------------------------------------------------------------------------


def _cache_seconds(api_key: ApiKey, now: datetime) -> int:
    seconds = settings.AUTH_TOKEN_CACHE_SECONDS
    if api_key.expires_at is not None:
        seconds = min(seconds, int((api_key.expires_at - now).total_seconds()))
    return max(0, seconds)


def _cache_key(api_key: ApiKey, now: datetime) -> None:
    ttl = _cache_seconds(api_key, now)
    if ttl <= 0:
        return
    entry = {
        "user": row_fields(api_key.user, skip=USER_FIELDS_NOT_CACHED),
        "key": row_fields(api_key),
    }
    try:
        cache.set(_CACHE_PREFIX + api_key.key_hash, entry, ttl)
    except Exception:  # a cache outage slows authentication down; it must not break it
        logger.warning("key cache unavailable; not caching the API key", exc_info=True)


def _is_usable(api_key: ApiKey, user: User, now: datetime) -> bool:
    return (
        api_key.revoked_at is None
        and (api_key.expires_at is None or api_key.expires_at > now)
        and user.is_active
    )


def authenticate_api_key(raw: str) -> ApiKey | None:
    """The live key `raw` names (its `.user` loaded), or None: unknown, expired, revoked, or
    its user deactivated. For every caller that receives a raw key."""
    if not raw or not looks_like_api_key(raw):
        return None
    key_hash = hash_api_key(raw)
    entry_key, tombstone = _CACHE_PREFIX + key_hash, _TOMBSTONE_PREFIX + key_hash
    now = timezone.now()
    try:
        found = cache.get_many([entry_key, tombstone])
    except Exception:
        logger.warning("key cache unavailable; authenticating from the database", exc_info=True)
        found = {}
    if found.get(tombstone):
        return None
    entry = found.get(entry_key)
    api_key: ApiKey | None
    if entry is not None:
        user = from_cached_fields(User, entry["user"])
        api_key = from_cached_fields(ApiKey, entry["key"])
        api_key.user = user
        if not _is_usable(api_key, user, now):
            _drop([entry_key])
            return None
        if _touch(api_key, now):
            _cache_key(api_key, now)  # so other processes see the new last_used_at
        return api_key
    api_key = ApiKey.objects.select_related("user").filter(key_hash=key_hash).first()
    if api_key is None or not _is_usable(api_key, api_key.user, now):
        return None
    _touch(api_key, now)
    _cache_key(api_key, now)
    return api_key


def _touch(api_key: ApiKey, now: datetime) -> bool:
    """Record the use, at most once per LAST_USED_RESOLUTION_SECONDS; True if written."""
    last = api_key.last_used_at
    if last is not None and (now - last).total_seconds() < LAST_USED_RESOLUTION_SECONDS:
        return False
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    api_key.last_used_at = now
    return True


# ---- OpenAlgo's analyzer mode -------------------------------------------------------------


def set_analyzer_mode(*, api_key: ApiKey, enabled: bool) -> ApiKey:
    """Switch the key's analyzer mode (its orders go to the paper twin of its bound
    account). The cached copy is dropped so every process reads the new mode at once."""
    ApiKey.objects.filter(pk=api_key.pk).update(analyzer_mode=enabled)
    api_key.analyzer_mode = enabled
    _drop([_CACHE_PREFIX + api_key.key_hash])
    return api_key


# ---- revoking -------------------------------------------------------------------------------


def _drop(keys: list[str]) -> None:
    if not keys:
        return
    try:
        cache.delete_many(keys)
    except Exception:
        logger.warning("key cache unavailable; entries not dropped", exc_info=True)


def _forget_hashes(hashes: list[str]) -> None:
    if not hashes:
        return
    try:
        cache.delete_many([_CACHE_PREFIX + h for h in hashes])
        # Outlives any entry another process may be writing from a read just before.
        cache.set_many(
            {_TOMBSTONE_PREFIX + h: True for h in hashes}, settings.AUTH_TOKEN_CACHE_SECONDS + 5
        )
    except Exception:
        # The database already says revoked; a cache that is down is not being read either.
        logger.error("key cache unavailable while revoking API keys", exc_info=True)


def revoke_api_key(*, api_key: ApiKey) -> ApiKey:
    """End a key now: in the database and in the shared cache (so on every process). Open
    WebSockets opened with it close within WS_AUTH_RECHECK_SECONDS."""
    now = timezone.now()
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now)
    api_key.revoked_at = api_key.revoked_at or now
    _forget_hashes([api_key.key_hash])
    return api_key


def revoke_user_api_keys(*, user: User) -> int:
    """Revoke every live key of `user` (a password change, a deactivation)."""
    live = ApiKey.objects.filter(user=user, revoked_at__isnull=True)
    hashes = list(live.values_list("key_hash", flat=True))
    count = live.update(revoked_at=timezone.now())
    _forget_hashes(hashes)
    return count


def forget_cached_api_keys(*, user_id: int) -> None:
    """Drop cached entries of a user's keys so the next request re-reads the user (cached
    entries hold a copy of the user row)."""
    hashes = ApiKey.objects.filter(user_id=user_id, revoked_at__isnull=True).values_list(
        "key_hash", flat=True
    )
    _drop([_CACHE_PREFIX + h for h in hashes])
