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

import secrets
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.cached_rows import CredentialCache, credential_hash
from accounts.models import ApiKey, BrokerAccount, User
from trading_site.core.errors import ValidationFailed

API_KEY_PREFIX = "tdk_"
API_KEY_NAME_MAX = 100
# A runaway script creating keys in a loop stops here.
MAX_LIVE_API_KEYS = 25
_DISPLAY_CHARS = 8
_CACHE = CredentialCache(
    model=ApiKey,
    hash_field="key_hash",
    kind="key",
    row_name="key",
    entry_prefix="auth:apikey:",
    tombstone_prefix="auth:apikey-revoked:",
)


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
    with transaction.atomic():
        # The user's row locked: keys made at the same moment (two tabs) are counted one
        # after the other, so together they cannot pass MAX_LIVE_API_KEYS.
        User.objects.select_for_update().filter(pk=user.pk).exists()
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
            key_hash=credential_hash(raw),
            expires_at=expires_at,
            created_ip=client_ip or None,
        )
    return raw, api_key


def live_api_keys(*, user: User):
    now = timezone.now()
    return ApiKey.objects.filter(user=user, revoked_at__isnull=True).exclude(expires_at__lte=now)


# ---- authenticating -------------------------------------------------------------------------


def authenticate_api_key(raw: str) -> ApiKey | None:
    """The live key `raw` names (its `.user` loaded), or None: unknown, expired, revoked, or
    its user deactivated. For every caller that receives a raw key."""
    if not raw or not looks_like_api_key(raw):
        return None
    return _CACHE.authenticate(credential_hash(raw))


# ---- OpenAlgo's analyzer mode -------------------------------------------------------------


def set_analyzer_mode(*, api_key: ApiKey, enabled: bool) -> ApiKey:
    """Switch the key's analyzer mode (its orders go to the paper twin of its bound
    account). The cached copy is dropped so every process reads the new mode at once."""
    ApiKey.objects.filter(pk=api_key.pk).update(analyzer_mode=enabled)
    api_key.analyzer_mode = enabled
    _CACHE.drop([api_key.key_hash])
    return api_key


# ---- revoking -------------------------------------------------------------------------------


def revoke_api_key(*, api_key: ApiKey) -> ApiKey:
    """End a key now: in the database and in the shared cache (so on every process). Open
    WebSockets opened with it close within WS_AUTH_RECHECK_SECONDS."""
    now = timezone.now()
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now)
    api_key.revoked_at = api_key.revoked_at or now
    _CACHE.forget_revoked([api_key.key_hash])
    return api_key


def forget_deleted_api_key(*, api_key: ApiKey) -> None:
    """A key row deleted rather than revoked (the admin's delete, its user's deletion): its
    copy in the shared cache would authenticate until it expired. Dropped, with a
    revocation's tombstone."""
    _CACHE.forget_revoked([api_key.key_hash])


def revoke_user_api_keys(*, user: User) -> int:
    """Revoke every live key of `user` (a password change, a deactivation)."""
    live = ApiKey.objects.filter(user=user, revoked_at__isnull=True)
    hashes = list(live.values_list("key_hash", flat=True))
    count = live.update(revoked_at=timezone.now())
    _CACHE.forget_revoked(hashes)
    return count


def forget_cached_api_keys(*, user_id: int) -> None:
    """Drop cached entries of a user's keys so the next request re-reads the user (cached
    entries hold a copy of the user row)."""
    hashes = ApiKey.objects.filter(user_id=user_id, revoked_at__isnull=True).values_list(
        "key_hash", flat=True
    )
    _CACHE.drop(list(hashes))
