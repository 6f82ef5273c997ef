"""Account endpoints that act on the broker: connect now, the kill switch, and re-enabling
trading after it.

They are the accounts API's (paths under /api/accounts/<id>/), but the work is the orders
app's (a broker login through orders.brokers.sessions; cancelling and squaring off through
orders.services): the one place the accounts app reaches up, allowed in .importlinter.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors
from accounts.api.serializers import (
    EnableTradingResponseSerializer,
    EnableTradingSerializer,
    KillSwitchResponseSerializer,
    KillSwitchSerializer,
)
from accounts.models import BrokerAccount
from orders.brokers.base import BrokerUnavailable, OrderRejected, RateLimited, SessionExpired
from orders.brokers.messages import trader_message
from orders.brokers.sessions import connect_account
from orders.services.audit import user_actor
from orders.services.kill_switch import kill_switch
from orders.services.trading_lock import unlock_trading
from trading_site.core.errors import BrokerRejectedError, BrokerUnavailableError, Conflict, NotFound


class AccountConnectView(APIView):
    """Log the broker account in now; answers the session's expiry (never the token)."""

    rate_limit_group = "default"

    @extend_schema(
        request=None,
        responses={
            200: inline_serializer(
                "AccountConnectResult",
                {
                    "account_id": serializers.IntegerField(),
                    "broker": serializers.CharField(),
                    "connected": serializers.BooleanField(),
                    "expires_at": serializers.DateTimeField(),
                    "broker_user_id": serializers.CharField(),
                    "is_investor_client": serializers.BooleanField(),
                },
            ),
            409: OpenApiResponse(description="CONFLICT: the account is deactivated"),
            422: OpenApiResponse(description="BROKER_REJECTED: the broker refused the login"),
            503: OpenApiResponse(description="BROKER_UNAVAILABLE: the broker did not answer"),
        },
    )
    def post(self, request, pk: int):
        account = BrokerAccount.objects.filter(pk=pk, user=request.user).first()
        if account is None:
            raise NotFound("Account not found")
        if not account.is_active:
            raise Conflict("The account is deactivated", details={"account_id": pk})
        try:
            session = connect_account(account)
        except OrderRejected as exc:
            raise BrokerRejectedError(
                trader_message(exc, account_id=pk), details={"account_id": pk}
            ) from exc
        except (BrokerUnavailable, SessionExpired, RateLimited) as exc:
            raise BrokerUnavailableError(
                trader_message(exc, account_id=pk), details={"account_id": pk}
            ) from exc
        return Response(
            {
                "account_id": account.pk,
                "broker": account.broker,
                "connected": True,
                "expires_at": session.expires_at,
                "broker_user_id": session.broker_user_id,
                "is_investor_client": session.is_investor_client,
            }
        )


def _confirmed_account(
    request, account_id: int, confirmation: type[serializers.Serializer]
) -> BrokerAccount:
    """The caller's active account (404 otherwise), once the body carries the typed
    confirmation (`confirmation`, a 400 without it)."""
    account = selectors.active_broker_account_for(user=request.user, account_id=account_id)
    confirmation(data=request.data).is_valid(raise_exception=True)
    return account


class KillSwitchView(APIView):
    """POST {"confirm": "KILL"}: lock the account's trading, cancel every working leg and
    square off every position with MARKET exits. 200 with what was done (`summary` in plain
    words); `complete` is false and `errors` lists what could not be done (e.g. a leg the
    broker has not acknowledged yet, or positions the broker could not report): run it
    again after the next sync. A bracket whose position was not squared off keeps its
    stop-loss and targets (or gets them back at once): `protected_order_ids`;
    `unprotected_order_ids` are those whose stop-loss could not be placed (act at the broker).
    New orders on the account answer 409 TRADING_LOCKED until
    POST /api/accounts/{id}/enable-trading."""

    rate_limit_group = "orders"

    @extend_schema(request=KillSwitchSerializer, responses=KillSwitchResponseSerializer)
    def post(self, request, account_id: int):
        account = _confirmed_account(request, account_id, KillSwitchSerializer)
        result = kill_switch(account=account, actor=user_actor(request.user))
        return Response(
            {
                "complete": result.complete,
                "summary": result.summary,
                "trading_locked": result.trading_locked,
                "cancelled_order_ids": result.cancelled_order_ids,
                "squared_off": result.squared_off,
                "cancelled_legs": result.cancelled_legs,
                "exit_legs": result.exit_legs,
                "exit_order_ids": result.exit_order_ids,
                "protected_order_ids": result.protected_order_ids,
                "unprotected_order_ids": result.unprotected_order_ids,
                "errors": result.errors,
            }
        )


class EnableTradingView(APIView):
    """POST {"confirm": "ENABLE"}: the trader lifts the kill switch's trading lock; new
    orders are accepted again. Audited (OrderEvent trading_unlocked)."""

    rate_limit_group = "orders"

    @extend_schema(request=EnableTradingSerializer, responses=EnableTradingResponseSerializer)
    def post(self, request, account_id: int):
        account = _confirmed_account(request, account_id, EnableTradingSerializer)
        changed = unlock_trading(account=account, actor=user_actor(request.user))
        return Response({"account_id": account.pk, "trading_locked": False, "changed": changed})
