"""The PnL page: per-instrument summary, FIFO lots (matched and open), daily history chart."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.models import BrokerAccount
from orders.domain.vocabulary import Side
from pnl.models import PnlDaily, PnlLot
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


@login_required
def pnl_page(request: HttpRequest) -> HttpResponse:
    accounts = list(
        BrokerAccount.objects.filter(user=request.user).order_by("-is_active", "account_name")
    )
    account = None
    raw = request.GET.get("account")
    if raw:
        try:
            account = next(a for a in accounts if a.pk == int(raw))
        except (ValueError, StopIteration):
            raise Http404("No such account") from None
    elif accounts:
        account = accounts[0]
    context: dict = {"accounts": accounts, "account": account}
    if account is not None:
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
        for row in summary:
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
