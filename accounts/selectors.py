"""Reads of accounts data, always scoped to the user who asks."""

from __future__ import annotations

from django.db import router
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import (
    ApiKey,
    AuthSession,
    Broker,
    BrokerAccount,
    BrokerSession,
    Strategy,
    User,
)
from trading_site.core.errors import NotFound
from trading_site.core.prepared import PreparedModels, PreparedRows


def broker_accounts_for(*, user: User, active_only: bool = False) -> QuerySet[BrokerAccount]:
    accounts = BrokerAccount.objects.filter(user=user).order_by("id")
    return accounts.filter(is_active=True) if active_only else accounts


def active_accounts_by_name(*, user: User) -> QuerySet[BrokerAccount]:
    """The user's active accounts as the pages and forms list them (account names are
    unique per user)."""
    return BrokerAccount.objects.filter(user=user, is_active=True).order_by("account_name", "id")


# The active-account reads of every placement, cycle and broker event: compiled once
# (`PreparedModels`).
_ACTIVE_ACCOUNTS_OF_USER = PreparedModels(
    BrokerAccount,
    lambda *, user_id: BrokerAccount.objects.filter(user_id=user_id, is_active=True).order_by("id"),
)
_ACTIVE_ACCOUNT = PreparedModels(
    BrokerAccount,
    lambda *, account_id: BrokerAccount.objects.filter(pk=account_id, is_active=True),
)
_ACTIVE_ACCOUNT_OF_USER = PreparedModels(
    BrokerAccount,
    lambda *, account_id, user_id: BrokerAccount.objects.filter(
        pk=account_id, user_id=user_id, is_active=True
    ),
)


def active_accounts_of(*, user_id: int) -> list[BrokerAccount]:
    """The user's active accounts in id order (`broker_accounts_for(active_only=True)`, as
    a list read by a compiled query)."""
    return _ACTIVE_ACCOUNTS_OF_USER(user_id=user_id)


def active_account(*, account_id: int, user_id: int | None = None) -> BrokerAccount | None:
    """The active account `account_id` (of `user_id`, when given), or None."""
    if user_id is None:
        found = _ACTIVE_ACCOUNT(account_id=account_id)
    else:
        found = _ACTIVE_ACCOUNT_OF_USER(account_id=account_id, user_id=user_id)
    return found[0] if found else None


_ACCOUNT_COLUMNS = [field.attname for field in BrokerAccount._meta.concrete_fields]
_SESSION_COLUMNS = [field.attname for field in BrokerSession._meta.concrete_fields]
# A placement's account read: the row and its stored broker session (LEFT JOIN), one
# statement instead of two (the session was read again just before the broker call).
_ACTIVE_ACCOUNT_OF_USER_WITH_SESSION = PreparedRows(
    tuple,
    lambda *, account_id, user_id: BrokerAccount.objects.filter(
        pk=account_id, user_id=user_id, is_active=True
    ).values_list(
        *_ACCOUNT_COLUMNS,
        *[f"broker_session__{field.name}" for field in BrokerSession._meta.concrete_fields],
    ),
)


def active_account_with_session(*, account_id: int, user_id: int) -> BrokerAccount | None:
    """`active_account` of the user, read with its stored broker session in one statement:
    the session (or None, the account has none) is the account's `broker_session`, read
    without a query (orders.brokers.sessions.placing_client hands it to the broker call)."""
    found = _ACTIVE_ACCOUNT_OF_USER_WITH_SESSION(account_id=account_id, user_id=user_id)
    if not found:
        return None
    row = found[0]
    alias = router.db_for_read(BrokerAccount)
    width = len(_ACCOUNT_COLUMNS)
    account = BrokerAccount.from_db(alias, _ACCOUNT_COLUMNS, row[:width])
    session = None
    if row[width] is not None:  # the session's id: NULL when the LEFT JOIN found none
        session = BrokerSession.from_db(alias, _SESSION_COLUMNS, row[width:])
        BrokerSession.account.field.set_cached_value(session, account)
    BrokerAccount.broker_session.related.set_cached_value(account, session)
    return account


def default_account_id(*, user: User) -> int | None:
    """The account a web order form starts on: the user's last-used active account, else a
    paper one (never a live account because its name sorts first), else any active one."""
    active = BrokerAccount.objects.filter(user=user, is_active=True)
    if user.last_used_account_id and active.filter(pk=user.last_used_account_id).exists():
        return user.last_used_account_id
    for chosen in (active.filter(broker=Broker.PAPER), active):
        pk = chosen.order_by("account_name", "id").values_list("pk", flat=True).first()
        if pk is not None:
            return pk
    return None


def paper_account_ids(*, user: User) -> set[int]:
    return set(
        BrokerAccount.objects.filter(user=user, broker=Broker.PAPER).values_list("pk", flat=True)
    )


def broker_account_for(*, user: User, account_id: int) -> BrokerAccount:
    """The user's account; another user's (or no) account is a 404, never a 403."""
    return get_object_or_404(BrokerAccount, pk=account_id, user=user)


def active_broker_account_for(*, user: User, account_id: int | str) -> BrokerAccount:
    """One of the user's active accounts (404 otherwise)."""
    try:
        pk = int(account_id)
    except (TypeError, ValueError):
        raise NotFound("Account not found") from None
    account = active_account(account_id=pk, user_id=user.pk)
    if account is None:
        raise NotFound("Account not found", details={"account_id": pk})
    return account


def strategies_for(*, user: User) -> QuerySet[Strategy]:
    return Strategy.objects.filter(user=user).order_by("name", "id")


def strategy_for(*, user: User, strategy_id: int) -> Strategy:
    return get_object_or_404(Strategy, pk=strategy_id, user=user)


def live_auth_sessions_for(*, user: User) -> QuerySet[AuthSession]:
    from django.utils import timezone

    return AuthSession.objects.filter(
        user=user, revoked_at__isnull=True, expires_at__gt=timezone.now()
    ).order_by("-created_at")


def api_keys_for(*, user: User, include_revoked: bool = False) -> QuerySet[ApiKey]:
    """The user's keys, newest first (revoked ones only when asked: the page lists them
    a while so a trader sees what was revoked)."""
    keys = ApiKey.objects.filter(user=user).select_related("bound_account").order_by("-id")
    return keys if include_revoked else keys.filter(revoked_at__isnull=True)


def user_id_by_login_name(username: str) -> int | None:
    """The user a login name finds, compared as the database compares it when the login
    looks the user up: under its case- and accent-insensitive collation "Tàrget",
    "ｔａｒｇｅｔ" and "tar\u200bget" all find "target"."""
    return User.objects.filter(username=username).values_list("pk", flat=True).first()


def api_key_for(*, user: User, key_id: int) -> ApiKey:
    """One of the user's keys; another user's (or no) key is a 404."""
    return get_object_or_404(ApiKey.objects.select_related("bound_account"), pk=key_id, user=user)
