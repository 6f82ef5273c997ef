"""The pages that show several apps at once: the dashboard (accounts' money, today's PnL,
recent orders) and the settings home (accounts, strategies, the regenerate permission,
scheduled orders). They sit at the top so no app imports a higher one for them.
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts import services
from accounts.api_keys import live_api_keys
from accounts.http import AuthenticatedHttpRequest
from accounts.models import BrokerAccount, Strategy
from accounts.selectors import active_accounts_by_name
from accounts.two_factor import has_two_factor
from accounts.web_forms import BrokerAccountForm, RegeneratePermissionForm
from orders.brokers.streams.health import health_of
from orders.models import Order
from orders.scheduled.models import ScheduledOrder
from pnl.models import PnlDaily


def _dashboard_context(user) -> dict:
    today = timezone.localdate()
    accounts = list(active_accounts_by_name(user=user))
    today_rows = {
        row["account_id"]: row
        for row in PnlDaily.objects.filter(account__in=accounts, trading_date=today).values(
            "account_id", "realized", "unrealized", "fills"
        )
    }
    zero = Decimal("0.00")
    streams = health_of(accounts)
    for account in accounts:
        account.stream = streams[account.pk]
        row = today_rows.get(account.pk)
        account.today_pnl = (row["realized"] + row["unrealized"]) if row else zero
        account.today_fills = row["fills"] if row else 0
    # Paper and live money are never added together: one row of totals per kind.
    groups = []
    for money, label in (("paper", "Paper accounts"), ("live", "Live accounts")):
        chosen = [a for a in accounts if a.is_paper == (money == "paper")]
        if not chosen:
            continue
        groups.append(
            {
                "money": money,
                "label": label,
                "cash_available": sum((a.cash_available for a in chosen), zero),
                "margin_utilized": sum((a.margin_utilized for a in chosen), zero),
                "net_margin": sum((a.net_margin for a in chosen), zero),
                "realized": sum((a.realized_mtm for a in chosen), zero),
                "unrealized": sum((a.unrealized_mtm for a in chosen), zero),
                "total": sum((a.total_mtm for a in chosen), zero),
                "today": sum((a.today_pnl for a in chosen), zero),
            }
        )
    return {"accounts": accounts, "total_groups": groups, "today": today}


@login_required
def dashboard(request: AuthenticatedHttpRequest) -> HttpResponse:
    context = _dashboard_context(request.user)
    open_statuses = [
        Order.Status.PENDING,
        Order.Status.OPEN,
        Order.Status.PARTIALLY_FILLED,
        Order.Status.FILLED,
    ]
    context["open_orders"] = Order.objects.filter(
        user=request.user, status__in=open_statuses, archived_at__isnull=True
    ).count()
    context["recent_orders"] = list(
        Order.objects.filter(user=request.user)
        .select_related("account")
        .order_by("-created_at", "-id")[:8]
    )
    return render(request, "accounts/dashboard.html", context)


@login_required
def dashboard_accounts(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The dashboard's numbers alone, re-fetched by the page after each cycle."""
    return render(request, "accounts/_dashboard_numbers.html", _dashboard_context(request.user))


@login_required
def settings_home(request: AuthenticatedHttpRequest) -> HttpResponse:
    permission = services.get_or_create_regenerate_permission(user=request.user)
    accounts = list(
        BrokerAccount.objects.filter(user=request.user).order_by("-is_active", "account_name")
    )
    streams = health_of(accounts)
    for account in accounts:
        account.stream = streams[account.pk]
    context = {
        "accounts": accounts,
        "strategies": Strategy.objects.filter(user=request.user).order_by("name"),
        "permission": permission,
        "permission_form": RegeneratePermissionForm(
            user=request.user,
            initial={"enabled": permission.enabled, "strategies": permission.strategies.all()},
        ),
        "scheduled": ScheduledOrder.objects.filter(user=request.user)
        .select_related("account")
        .order_by("time_of_day", "name"),
        "account_form": BrokerAccountForm(),
        "two_factor_on": has_two_factor(request.user),
        "api_key_count": live_api_keys(user=request.user).count(),
    }
    return render(request, "accounts/settings.html", context)
