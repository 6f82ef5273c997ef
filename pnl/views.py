"""The PnL page: per-instrument summary, FIFO lots (matched and open), daily history chart."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone

from accounts.audit import user_actor
from accounts.http import AuthenticatedHttpRequest
from accounts.models import BrokerAccount
from accounts.selectors import default_account_id
from orders.domain.vocabulary import Side
from pnl import selectors, services
from pnl.curve import line_chart
from pnl.models import BrokeragePlanSetting, PnlDaily, PnlLot
from pnl.web_forms import BrokeragePlanForm
from trading_site.core.errors import Conflict
from trading_site.core.market_hours import MARKET_TZ, is_nameable_day
from trading_site.core.templatetags.desk import inr

HISTORY_DAYS = 60
LOTS_SHOWN = 200


@dataclass(frozen=True)
class ChartBar:
    x: float
    y: float
    width: float
    height: float
    positive: bool
    label: str
    title: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    zero_y: float
    bars: list[ChartBar]
    top_label: str
    bottom_label: str


def build_daily_chart(days: list[PnlDaily], *, width: int = 720, height: int = 220) -> Chart | None:
    """Bars of each day's realized + unrealized PnL, scaled around a zero line (server SVG)."""

    if not days:
        return None
    values = [d.realized + d.unrealized for d in days]
    top = max(max(values), Decimal("0"))
    bottom = min(min(values), Decimal("0"))
    span = (top - bottom) or Decimal("1")
    pad_top, pad_bottom, pad_left = 14, 22, 4
    plot_h = height - pad_top - pad_bottom
    zero_y = pad_top + float((top / span) * plot_h)
    slot = (width - pad_left) / len(days)
    bar_w = min(max(2.0, slot * 0.7), 36.0)  # one day alone must not fill the chart
    bars = []
    every = max(1, len(days) // 8)
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        h = float(abs(value) / span * plot_h)
        y = zero_y - h if value >= 0 else zero_y
        bars.append(
            ChartBar(
                x=round(pad_left + i * slot + (slot - bar_w) / 2, 2),
                y=round(y, 2),
                width=round(bar_w, 2),
                height=round(max(h, 1.0), 2),
                positive=value >= 0,
                label=day.trading_date.strftime("%d %b") if i % every == 0 else "",
                title=f"{day.trading_date:%d %b %Y}: {inr(value)}",
            )
        )
    return Chart(
        width=width,
        height=height,
        zero_y=round(zero_y, 2),
        bars=bars,
        top_label=inr(top),
        bottom_label=inr(bottom),
    )


def _day_of(request: HttpRequest) -> date:
    raw = request.GET.get("day")
    if not raw:
        return timezone.localdate(timezone.now(), MARKET_TZ)
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise Http404("No such day") from None
    if not is_nameable_day(day):
        raise Http404("No such day")
    return day


def _chart(report: selectors.DayReport):
    return line_chart(
        report.points,
        drawdown=report.drawdown,
        money=inr,
        clock=lambda at: timezone.localtime(at, MARKET_TZ).strftime("%H:%M"),
    )


def _report_context(accounts: list[BrokerAccount], day: date) -> dict:
    report = selectors.day_report(accounts=accounts, day=day)
    return {"report": report, "curve": _chart(report)}


def _all_accounts_context(accounts: list[BrokerAccount], day: date) -> dict:
    """Per kind of money (paper and live are never added): the summed curve and figures, and
    each account's own figures."""
    groups = []
    for money, label in (("paper", "Paper accounts"), ("live", "Live accounts")):
        chosen = [a for a in accounts if (a.broker == "PAPER") == (money == "paper")]
        if not chosen:
            continue
        rows = [
            {"account": a, "report": selectors.day_report(accounts=[a], day=day)} for a in chosen
        ]
        groups.append(
            {"money": money, "label": label, "rows": rows, **_report_context(chosen, day)}
        )
    return {"groups": groups}


@login_required
def pnl_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    accounts = list(
        BrokerAccount.objects.filter(user=request.user).order_by("-is_active", "account_name")
    )
    account = None
    show_all = False
    raw = request.GET.get("account")
    if raw == "all":
        show_all = True
    elif raw:
        try:
            account = next(a for a in accounts if a.pk == int(raw))
        except (ValueError, StopIteration):
            raise Http404("No such account") from None
    elif accounts:
        # The trader's last-used account, else a paper one: never the alphabet's first.
        preferred = default_account_id(user=request.user)
        account = next((a for a in accounts if a.pk == preferred), accounts[0])
    day = _day_of(request)
    context: dict = {
        "accounts": accounts,
        "account": account,
        "show_all": show_all,
        "day": day,
        "curve_days": selectors.sample_days(accounts=[account] if account else accounts),
    }
    if show_all:
        context.update(_all_accounts_context(accounts, day))
    elif account is not None:
        context.update(_report_context([account], day))
        context["plan"] = selectors.brokerage_plan_for(account)
    if account is not None and not show_all:
        lots = PnlLot.objects.filter(account=account)
        summary = (
            lots.values("exchange_segment", "exchange_instrument_id", "trading_symbol")
            .annotate(
                realized=Sum("realized_pnl", filter=Q(kind=PnlLot.Kind.MATCHED)),
                unrealized=Sum("unrealized_pnl", filter=Q(kind=PnlLot.Kind.OPEN)),
                matched_qty=Sum("quantity", filter=Q(kind=PnlLot.Kind.MATCHED)),
                open_long=Sum("quantity", filter=Q(kind=PnlLot.Kind.OPEN, entry_side=Side.BUY)),
                open_short=Sum("quantity", filter=Q(kind=PnlLot.Kind.OPEN, entry_side=Side.SELL)),
                lots=Count("id"),
            )
            .order_by("trading_symbol")
        )
        rows = []
        zero = Decimal("0")
        for values in summary:
            row: dict[str, Any] = dict(values)
            row["realized"] = row["realized"] or zero
            row["unrealized"] = row["unrealized"] or zero
            row["total"] = row["realized"] + row["unrealized"]
            row["open_qty"] = (row["open_long"] or 0) - (row["open_short"] or 0)
            rows.append(row)
        since = timezone.localdate() - timedelta(days=HISTORY_DAYS)
        days = list(
            PnlDaily.objects.filter(account=account, trading_date__gte=since).order_by(
                "trading_date"
            )
        )
        charges = selectors.charges_by_day(
            account=account, first=since, last=timezone.localdate(timezone.now(), MARKET_TZ)
        )
        for day_row in days:
            day_charges = charges.get(day_row.trading_date)
            day_row.charges = day_charges.charges.total if day_charges else Decimal("0")
            day_row.net = day_row.realized + day_row.unrealized - day_row.charges
        context.update(
            {
                "summary": rows,
                "summary_total": {
                    "realized": sum((r["realized"] for r in rows), zero),
                    "unrealized": sum((r["unrealized"] for r in rows), zero),
                    "total": sum((r["total"] for r in rows), zero),
                },
                "matched_lots": list(
                    lots.filter(kind=PnlLot.Kind.MATCHED).order_by("-exit_time", "-id")[:LOTS_SHOWN]
                ),
                "open_lots": list(
                    lots.filter(kind=PnlLot.Kind.OPEN).order_by("trading_symbol", "entry_time")[
                        :LOTS_SHOWN
                    ]
                ),
                "days": list(reversed(days)),
                "chart": build_daily_chart(days),
            }
        )
    template = (
        "pnl/_pnl_body.html"
        if request.headers.get("X-Requested-With") == "fetch"
        else "pnl/pnl.html"
    )
    return render(request, template, context)


@login_required
def brokerage_plan(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """The account's brokerage plan (estimated charges on the PnL page)."""
    account = get_object_or_404(BrokerAccount, pk=pk, user=request.user)
    plan = BrokeragePlanSetting.objects.filter(account=account).first() or BrokeragePlanSetting(
        account=account
    )
    form = BrokeragePlanForm(request.POST or None, instance=plan)
    back_url = f"{reverse('pnl')}?account={account.pk}"  # the account's PnL page
    status = 400 if request.method == "POST" else 200
    if request.method == "POST" and form.is_valid():
        fields = BrokeragePlanForm.Meta.fields
        try:
            services.save_brokerage_plan(
                account=account,
                actor=user_actor(request.user),
                **{name: form.cleaned_data[name] for name in fields},
            )
        except Conflict as exc:  # the plan deleted (by an admin) while this save ran
            form.add_error(None, exc.message)
            status = 409
        else:
            messages.success(request, f"Brokerage plan of “{account.account_name}” saved.")
            return redirect(back_url)
    return render(
        request,
        "pnl/brokerage_plan.html",
        {"form": form, "account": account, "back_url": back_url},
        status=status,
    )
