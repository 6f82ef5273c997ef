"""Reads of orders for the API, the web UI and the admin (no writes here)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Prefetch, QuerySet

from accounts.models import BrokerAccount, Strategy
from orders.models import Order, OrderEvent, OrderLeg
from trading_site.api.errors import NotFound

# The columns the order list shows; the legs it needs for entry/sl/tp statuses.
_LIST_LEG_FIELDS = ("id", "order_id", "role", "status", "broker_order_id", "reject_reason")


def order_list(
    *,
    user,
    account_id: int | None = None,
    statuses: list[str] | None = None,
    symbol: str | None = None,
    strategy: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[Order]:
    """The user's orders, newest first. Filters start from the user so every query uses an
    index that begins with user_id ((user, -created_at, -id), (user, status, -created_at),
    (user, symbol, -created_at)); the page's legs come in one extra query (prefetch), and
    only the columns the list shows are read."""
    queryset = Order.objects.filter(user=user)
    if account_id is not None:
        queryset = queryset.filter(account_id=account_id)
    if statuses:
        queryset = (
            queryset.filter(status=statuses[0])
            if len(statuses) == 1
            else queryset.filter(status__in=statuses)
        )
    if symbol:
        queryset = queryset.filter(symbol=symbol)
    if strategy:
        # Resolve the name to ids first: a join on strategies would defeat the user index.
        ids = list(Strategy.objects.filter(user=user, name=strategy).values_list("pk", flat=True))
        queryset = queryset.filter(strategy_id__in=ids or [0])
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    if until is not None:
        queryset = queryset.filter(created_at__lt=until)
    return (
        queryset.select_related("strategy")
        .prefetch_related(
            Prefetch(
                "legs",
                queryset=OrderLeg.objects.only(*_LIST_LEG_FIELDS).order_by("id"),
            )
        )
        .order_by("-created_at", "-id")
    )


def order_for_user(*, user, order_id) -> Order:
    """One of the user's orders (404 for anyone else's)."""
    try:
        pk = int(order_id)
    except (TypeError, ValueError):
        raise NotFound("Order not found") from None
    order = (
        Order.objects.filter(pk=pk, user=user)
        .select_related("account", "instrument", "strategy")
        .first()
    )
    if order is None:
        raise NotFound("Order not found", details={"order_id": pk})
    return order


def order_detail(*, user, order_id) -> Order:
    order = order_for_user(user=user, order_id=order_id)
    order.detail_legs = list(order.legs.order_by("id"))
    order.detail_events = list(OrderEvent.objects.filter(order=order).order_by("created_at", "id"))
    return order


def account_for_user(*, user, account_id) -> BrokerAccount:
    """One of the user's active accounts (404 otherwise)."""
    try:
        pk = int(account_id)
    except (TypeError, ValueError):
        raise NotFound("Account not found") from None
    account = BrokerAccount.objects.filter(pk=pk, user=user, is_active=True).first()
    if account is None:
        raise NotFound("Account not found", details={"account_id": pk})
    return account
