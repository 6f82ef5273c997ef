"""The trade book page (every fill, filtered by account, day and instrument) and the CSV
downloads of the trade book and of the order list, with their pages' filters."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.http import AuthenticatedHttpRequest
from accounts.models import BrokerAccount
from orders.tradebook import csv_export, selectors
from trading_site.core.market_hours import validate_nameable_day

TRADES_PER_PAGE = 100


class TradeFilterForm(forms.Form):
    account = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, choices=())
    date = forms.DateField(
        required=False,
        label="Day",
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[validate_nameable_day],
    )
    symbol = forms.CharField(required=False, max_length=100, label="Instrument")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        account = self.fields["account"]
        assert isinstance(account, forms.ChoiceField)
        account.choices = [
            ("", "All accounts"),
            *(
                (a.pk, a.account_name)
                for a in BrokerAccount.objects.filter(user=user).order_by("account_name")
            ),
        ]

    def filters(self) -> selectors.TradeFilters:
        if not self.is_bound:
            return selectors.TradeFilters()
        if not self.is_valid():
            return selectors.TradeFilters(account_id=-1)  # a bad filter shows nothing
        data = self.cleaned_data
        return selectors.TradeFilters(
            account_id=data.get("account"),
            since=data.get("date"),
            until=data.get("date"),
            symbol=(data.get("symbol") or "").strip(),
        )


@login_required
@require_GET
def trade_book(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = TradeFilterForm(request.GET or None, user=request.user)
    trades = selectors.trade_list(user=request.user, filters=form.filters())
    page = Paginator(trades, TRADES_PER_PAGE).get_page(request.GET.get("page"))
    rows = list(page)
    owners = selectors.owners_of(rows)
    values = selectors.values_of(rows)
    for trade in rows:
        trade.owner = owners.get((trade.account_id, trade.broker_order_id))
        trade.value = values[trade.pk]
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "orders/trades.html",
        {"form": form, "page": page, "trades": rows, "query": query.urlencode()},
        status=400 if form.is_bound and not form.is_valid() else 200,
    )


@login_required
@require_GET
def trade_book_csv(request: AuthenticatedHttpRequest) -> HttpResponse | StreamingHttpResponse:
    form = TradeFilterForm(request.GET or None, user=request.user)
    refused = csv_export.refused_filters(form)
    if refused is not None:
        return refused
    trades = selectors.trade_list(user=request.user, filters=form.filters())
    return csv_export.csv_response(
        csv_export.trade_rows(trades), filename=csv_export.export_name("trades")
    )
