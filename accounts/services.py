"""Accounts services: API session tokens (login, authenticate, revoke) and account changes.

Tokens: the raw token is returned once by `create_auth_session`; only its SHA-256 hash is
stored. Validation reads the shared cache first (Redis in full stack, so every process sees
the same entries) and falls back to the database. A revocation deletes the cache entry and
leaves a short-lived tombstone, so a process that read the row just before the revocation
cannot put the token back into the cache (accounts.cached_rows.CredentialCache, shared with
the API keys).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import authenticate as django_authenticate
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.api_keys import API_KEY_PREFIX
from accounts.audit import (
    permission_state,
    record_permission_deleted,
    record_permission_saved,
    record_strategy_deleted,
    record_strategy_saved,
    strategy_state,
)
from accounts.cached_rows import CredentialCache, credential_hash
from accounts.models import (
    CREDENTIAL_FIELDS,
    XTS_BROKERS,
    AuthSession,
    Broker,
    BrokerAccount,
    EntryRegeneratePermission,
    Strategy,
    User,
)
from accounts.selectors import user_id_by_login_name
from accounts.two_factor import has_two_factor, verify_second_factor
from orders.brokers.host_policy import BrokerHostNotAllowed, validate_base_url
from trading_site.core.api.ratelimit import take_group_token
from trading_site.core.errors import RateLimitExceeded, ValidationFailed

_USER_AGENT_MAX = 512
_CACHE = CredentialCache(
    model=AuthSession,
    hash_field="token_hash",
    kind="token",
    row_name="session",
    entry_prefix="auth:token:",
    tombstone_prefix="auth:revoked:",
)


def create_auth_session(
    *, user: User, client_ip: str | None, user_agent: str
) -> tuple[str, AuthSession]:
    """Start an API session for `user`; returns (raw token, row). The token is never stored."""
    token = secrets.token_urlsafe(32)
    while token.startswith(API_KEY_PREFIX):  # the prefix alone says "API key" (1 in 16.7M)
        token = secrets.token_urlsafe(32)
    now = timezone.now()
    session = AuthSession.objects.create(
        user=user,
        token_hash=credential_hash(token),
        expires_at=now + timedelta(seconds=settings.AUTH_TOKEN_TTL_SECONDS),
        client_ip=client_ip or None,
        user_agent=(user_agent or "")[:_USER_AGENT_MAX],
    )
    _CACHE.store(session, now)
    return token, session


def authenticate_token(token: str) -> tuple[User, AuthSession] | None:
    """The (user, session) a raw token belongs to, or None if unknown, expired or revoked."""
    if not token:
        return None
    session = _CACHE.authenticate(credential_hash(token))
    return (session.user, session) if session is not None else None


def revoke_auth_session(*, session: AuthSession) -> None:
    """End a session now: in the database and in the shared cache (so on every process)."""
    now = timezone.now()
    AuthSession.objects.filter(pk=session.pk, revoked_at__isnull=True).update(revoked_at=now)
    session.revoked_at = session.revoked_at or now
    _CACHE.forget_revoked([session.token_hash])


def forget_deleted_session(*, session: AuthSession) -> None:
    """A session row deleted rather than revoked (the admin's delete, its user's deletion):
    its copy in the shared cache would authenticate until it expired. Dropped, with a
    revocation's tombstone."""
    _CACHE.forget_revoked([session.token_hash])


def revoke_user_sessions(*, user: User) -> int:
    """Revoke every live API session of `user` (admin action, deactivation)."""
    now = timezone.now()
    live = AuthSession.objects.filter(user=user, revoked_at__isnull=True, expires_at__gt=now)
    hashes = list(live.values_list("token_hash", flat=True))
    count = live.update(revoked_at=now)
    _CACHE.forget_revoked(hashes)
    return count


def forget_cached_sessions(*, user_id: int) -> None:
    """Drop cached entries of a user's live sessions so the next request re-reads the user.

    Called when a user row changes (deactivation, password or staff change): cached entries
    hold a copy of the user.
    """
    hashes = AuthSession.objects.filter(
        user_id=user_id, revoked_at__isnull=True, expires_at__gt=timezone.now()
    ).values_list("token_hash", flat=True)
    _CACHE.drop(list(hashes))


def purge_expired_auth_sessions(*, older_than: timedelta = timedelta(days=7)) -> int:
    """Delete sessions that expired or were revoked more than `older_than` ago (clean-up job)."""
    cutoff = timezone.now() - older_than
    deleted, _ = AuthSession.objects.filter(
        Q(expires_at__lt=cutoff) | Q(revoked_at__lt=cutoff)
    ).delete()
    return deleted


class InvalidCredentials(Exception):
    """Wrong username or password, or an inactive user (indistinguishable on purpose)."""


class SecondFactorRequired(Exception):
    """The password was right; the user has two-factor login and sent no code."""


class SecondFactorInvalid(Exception):
    """The password was right; the code was wrong, expired or already used."""


class TwoFactorEnrolmentRequired(Exception):
    """A staff user without two-factor login: they must set it up (in the browser) first."""


@dataclass(frozen=True)
class LoginResult:
    token: str
    session: AuthSession
    user: User


def check_login_rate(*, username: str, client_ip: str | None) -> None:
    """Raise RateLimitExceeded when this username or this IP has guessed too often."""

    if not settings.RATE_LIMIT_ENABLED:
        return
    # One bucket per user the name finds (every spelling the database takes for it), else
    # per name: a login name's variants must not each get their own guesses.
    user_id = user_id_by_login_name(username.strip())
    username_key = (
        f"user-{user_id}"
        if user_id is not None
        else hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
    )
    for group, subject in (("login_user", username_key), ("login_ip", client_ip or "unknown")):
        result = take_group_token(group, f"{group}:{subject}")
        if not result.allowed:
            raise RateLimitExceeded(retry_after=result.retry_after, limit_headers=result.headers())


def login(
    *,
    username: str,
    password: str,
    client_ip: str | None,
    user_agent: str,
    otp: str = "",
) -> LoginResult:
    """Check the password and, for a user with two-factor login, the code `otp` (an
    authenticator code or a recovery code) in the same request; then start an API session.

    Each call is one attempt on the login limiter (per username and per IP), whichever part
    is wrong: guessing codes is throttled exactly like guessing passwords.
    """
    check_login_rate(username=username, client_ip=client_ip)
    user = django_authenticate(username=username, password=password)
    if user is None or not user.is_active:
        raise InvalidCredentials()
    if has_two_factor(user):
        if not otp:
            raise SecondFactorRequired()
        if verify_second_factor(user=user, code=otp) is None:
            raise SecondFactorInvalid()
    elif user.is_staff:
        raise TwoFactorEnrolmentRequired()
    token, session = create_auth_session(user=user, client_ip=client_ip, user_agent=user_agent)
    return LoginResult(token=token, session=session, user=user)


def logout(*, session: AuthSession) -> None:
    revoke_auth_session(session=session)


# Broker accounts.

XTS_REQUIRED_CREDENTIALS = ("app_key", "secret_key")


def validate_credentials(*, broker: str, credentials: dict[str, Any]) -> dict[str, str]:
    """The credentials a broker needs, cleaned; raises ValidationFailed naming the bad keys."""
    unknown = sorted(set(credentials) - set(CREDENTIAL_FIELDS))
    if unknown:
        raise ValidationFailed(
            "Unknown credential keys",
            details={"credentials": [f"unknown key: {key}" for key in unknown]},
        )
    cleaned: dict[str, str] = {}
    for key, value in credentials.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise ValidationFailed(
                f"credentials.{key} must be a string",
                details={"credentials": {key: ["must be a string"]}},
            )
        value = value.strip()
        if value:
            cleaned[key] = value
    if "base_url" in cleaned:
        _check_base_url(cleaned["base_url"])
    if broker in XTS_BROKERS:
        missing = [key for key in XTS_REQUIRED_CREDENTIALS if key not in cleaned]
        if missing:
            raise ValidationFailed(
                f"{broker} accounts need {', '.join(missing)}",
                details={"credentials": {key: ["this credential is required"] for key in missing}},
            )
    return cleaned


def _check_base_url(url: str) -> None:
    """Only broker hosts the operator allows (server-side request forgery)."""
    try:
        validate_base_url(url)
    except BrokerHostNotAllowed as exc:
        raise ValidationFailed(
            exc.message, details={"credentials": {"base_url": [exc.reason]}}
        ) from None


def _name_taken(what: str, field: str) -> ValidationFailed:
    return ValidationFailed(
        f"{what.capitalize()} with this name exists",
        details={field: [f"you already have {what} with this name"]},
    )


@contextmanager
def _under_a_free_name(rows: QuerySet, *, name: str, what: str, field: str) -> Iterator[None]:
    """The insert or save of a row named `name` among the user's `rows`. Two requests at once
    (a client retrying a create whose answer it lost) both pass the check that the name is
    free; the unique index refuses the second, which answers the check's 400, not a 500."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError:
        if not rows.filter(**{field: name}).exists():
            raise
        raise _name_taken(what, field) from None


def create_broker_account(
    *,
    user: User,
    account_name: str,
    broker: str,
    credentials: dict[str, Any] | None = None,
    confirm_live_orders: bool = True,
) -> BrokerAccount:
    if broker not in Broker.values:
        raise ValidationFailed("Unknown broker", details={"broker": [f"unknown broker: {broker}"]})
    cleaned = validate_credentials(broker=broker, credentials=credentials or {})
    mine = BrokerAccount.objects.filter(user=user)
    if mine.filter(account_name=account_name).exists():
        raise _name_taken("an account", "account_name")
    account = BrokerAccount(user=user, account_name=account_name, broker=broker)
    account.credentials, account.confirm_live_orders = cleaned, confirm_live_orders
    with _under_a_free_name(mine, name=account_name, what="an account", field="account_name"):
        account.save(force_insert=True)
    return account


def update_broker_account(
    *,
    account: BrokerAccount,
    account_name: str | None = None,
    credentials: dict[str, Any] | None = None,
    is_active: bool | None = None,
    confirm_live_orders: bool | None = None,
) -> BrokerAccount:
    """Change name, credentials (merged key by key; a blank value keeps the old one), state
    or whether its web order forms ask before a live order."""
    fields: list[str] = []
    if confirm_live_orders is not None and confirm_live_orders != account.confirm_live_orders:
        account.confirm_live_orders = confirm_live_orders
        fields.append("confirm_live_orders")
    others = BrokerAccount.objects.filter(user_id=account.user_id).exclude(pk=account.pk)
    if account_name is not None and account_name != account.account_name:
        if others.filter(account_name=account_name).exists():
            raise _name_taken("an account", "account_name")
        account.account_name = account_name
        fields.append("account_name")
    if credentials is not None:
        merged = {
            **(account.credentials or {}),
            **validate_credentials(broker=Broker.PAPER, credentials=credentials),
        }
        account.credentials = validate_credentials(broker=account.broker, credentials=merged)
        fields.append("credentials")
    if is_active is not None and is_active != account.is_active:
        account.is_active = is_active
        fields.append("is_active")
    if fields:
        with _under_a_free_name(
            others, name=account.account_name, what="an account", field="account_name"
        ):
            account.save(update_fields=[*fields, "updated_at"])
    return account


def remember_last_account(*, user: User, account_id: int) -> None:
    """The account of a successful web placement becomes the forms' default."""
    if user.last_used_account_id != account_id:
        User.objects.filter(pk=user.pk).update(last_used_account_id=account_id)
        user.last_used_account_id = account_id


def deactivate_broker_account(*, account: BrokerAccount) -> BrokerAccount:
    """Soft delete: the account stops being monitored and traded; its history stays."""
    if account.is_active:
        account.is_active = False
        account.save(update_fields=["is_active", "updated_at"])
    return account


PAPER_TWIN_SUFFIX = " (analyzer)"


def paper_twin_for(*, account: BrokerAccount) -> BrokerAccount:
    """The paper account standing in for `account` in OpenAlgo's analyzer mode: made on first
    use, owned by the same user, marked as the twin (`paper_twin_of`). It trades in its own
    paper book, so its money is never added to the live account's. Two first uses at once
    make one twin (the one-to-one column decides)."""
    twin = BrokerAccount.objects.filter(paper_twin_of=account).first()
    if twin is not None:
        return twin
    base = account.account_name[: 100 - len(PAPER_TWIN_SUFFIX) - 4] + PAPER_TWIN_SUFFIX
    starting_cash = Decimal(str(settings.PAPER_STARTING_CASH))
    for attempt in range(20):
        name = base if attempt == 0 else f"{base} {attempt + 1}"
        try:
            with transaction.atomic():
                return BrokerAccount.objects.create(
                    user_id=account.user_id,
                    account_name=name,
                    broker=Broker.PAPER,
                    paper_twin_of=account,
                    cash_available=starting_cash,
                    net_margin=starting_cash,
                )
        except IntegrityError:
            twin = BrokerAccount.objects.filter(paper_twin_of=account).first()
            if twin is not None:
                return twin  # made by a request running alongside this one
            # else the name is taken by another of the user's accounts: try the next one
    raise ValidationFailed(
        "Could not name the analyzer's paper account",
        details={"account": [f"rename your accounts named {base!r}..."]},
    )


# Strategies and the entry-regenerate permission. Each change is audited (accounts.audit): who
# did it (`actor`), the settings before and after.


def create_strategy(*, user: User, name: str, actor: str, **settings_fields: Any) -> Strategy:
    mine = Strategy.objects.filter(user=user)
    if mine.filter(name=name).exists():
        raise _name_taken("a strategy", "name")
    with _under_a_free_name(mine, name=name, what="a strategy", field="name"):
        strategy = Strategy.objects.create(user=user, name=name, **settings_fields)
        record_strategy_saved(strategy=strategy, before=None, actor=actor)
    return strategy


def strategy_named(*, user: User, name: str, actor: str) -> Strategy:
    """The user's strategy called `name`, created with the defaults on first use (programs
    that name strategies, such as OpenAlgo clients, get per-strategy regeneration rights and
    PnL attribution without setting them up first). A creation is audited as one through the
    API is (`strategy_created`, by `actor`: who made the request that named it), in its
    transaction: two first uses at once make one strategy and one audit row."""
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationFailed(
            "A strategy name is 1 to 100 characters",
            details={"strategy": ["must be 1 to 100 characters"]},
        )
    strategy = Strategy.objects.filter(user=user, name=name).first()
    if strategy is not None:
        return strategy
    try:
        with transaction.atomic():
            strategy = Strategy.objects.create(user=user, name=name)
            record_strategy_saved(strategy=strategy, before=None, actor=actor)
            return strategy
    except IntegrityError:  # created (and audited) by a request running alongside this one
        return Strategy.objects.get(user=user, name=name)


def update_strategy(*, strategy: Strategy, actor: str, **changes: Any) -> Strategy:
    before = strategy_state(strategy)
    name = changes.get("name")
    others = Strategy.objects.filter(user_id=strategy.user_id).exclude(pk=strategy.pk)
    if name and name != strategy.name and others.filter(name=name).exists():
        raise _name_taken("a strategy", "name")
    for field, value in changes.items():
        setattr(strategy, field, value)
    if changes:
        with _under_a_free_name(others, name=strategy.name, what="a strategy", field="name"):
            strategy.save(update_fields=[*changes, "updated_at"])
            record_strategy_saved(strategy=strategy, before=before, actor=actor)
    return strategy


def delete_strategy(*, strategy: Strategy, actor: str) -> None:
    """The regenerate permission stops covering it (its row in the permission goes with it)."""
    with transaction.atomic():
        record_strategy_deleted(strategy=strategy, actor=actor)
        strategy.delete()


def get_or_create_regenerate_permission(*, user: User) -> EntryRegeneratePermission:
    permission, _ = EntryRegeneratePermission.objects.get_or_create(user=user)
    return permission


@transaction.atomic
def set_regenerate_permission(
    *, user: User, enabled: bool, strategy_ids: list[int], actor: str
) -> EntryRegeneratePermission:
    """Replace the user's permission; every strategy must be the user's own."""
    wanted = set(strategy_ids)
    owned = set(Strategy.objects.filter(user=user, pk__in=wanted).values_list("pk", flat=True))
    foreign = sorted(wanted - owned)
    if foreign:
        raise ValidationFailed(
            "Unknown strategies",
            details={"strategy_ids": [f"no strategy with id {pk}" for pk in foreign]},
        )
    permission, _ = EntryRegeneratePermission.objects.select_for_update().get_or_create(user=user)
    before = permission_state(permission)
    permission.enabled = enabled
    permission.save(update_fields=["enabled", "updated_at"])
    permission.strategies.set(owned)
    record_permission_saved(permission=permission, before=before, actor=actor)
    return permission


def delete_regenerate_permission(*, permission: EntryRegeneratePermission, actor: str) -> None:
    """The admin's delete: the user's rejected entries are no longer re-placed (a trader
    switches the permission off instead, set_regenerate_permission)."""
    with transaction.atomic():
        record_permission_deleted(permission=permission, actor=actor)
        permission.delete()
