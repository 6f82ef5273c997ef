"""The positions page: positions with live MTM per account (and all accounts), Exit per
position and Exit all behind a confirmation, and delivery holdings."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.http import AuthenticatedHttpRequest
from accounts.models import BrokerAccount
from accounts.selectors import active_accounts_by_name
from orders.models import ExchangeSegment, ProductType
from orders.positions import holdings, selectors, services
from orders.services.audit import user_actor
from orders.validation import as_id, check_trading_window
from trading_site.core.errors import DomainError
from trading_site.core.form_keys import claim_form_key, posted_form_key


def _chosen_account(request: HttpRequest, accounts: list[BrokerAccount]) -> BrokerAccount | None:
    raw = request.GET.get("account")
    if not raw:
        return None
    account = next((a for a in accounts if str(a.pk) == raw), None)
    if account is None:
        raise Http404("No such account")
    return account


@login_required
@require_GET
def positions_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    accounts = list(active_accounts_by_name(user=request.user))
    account = _chosen_account(request, accounts)
    chosen = [account] if account else accounts
    book = selectors.position_book(accounts=chosen)
    context: dict[str, Any] = {
        "accounts": accounts,
        "account": account,
        "book": book,
        "paper_total": book.total(selectors.PAPER),
        "live_total": book.total(selectors.LIVE),
    }
    if request.headers.get("X-Requested-With") == "fetch":
        return render(request, "orders/_positions_body.html", context)
    context["holdings"] = [holdings.account_holdings(a) for a in chosen]
    return render(request, "orders/positions.html", context)


def _back(request: HttpRequest) -> HttpResponse:
    account = request.POST.get("return_account") or ""
    url = "positions"
    response = redirect(url)
    if account.isdigit():
        response["Location"] += f"?account={account}"
    return response


def _report(request: HttpRequest, result: services.ExitResult, what: str) -> None:
    if result.exit_order_ids or result.exit_legs:
        messages.success(
            request,
            f"Exit sent for {what}: {len(result.exit_legs)} market order"
            f"{'s' if len(result.exit_legs) != 1 else ''}.",
        )
    for error in result.errors:
        messages.error(request, error)
    if result.unprotected_words:
        messages.error(request, result.unprotected_words)
    if result.protected_words:
        messages.warning(request, result.protected_words)
    if result.sized_words:
        messages.warning(request, result.sized_words)
    if not result.exited and not result.errors:
        messages.info(request, "No open position to exit.")


def _account_from_post(request: HttpRequest) -> BrokerAccount:
    account_id = as_id(request.POST.get("account_id"))
    if account_id is None:
        raise Http404("No such account")
    return get_object_or_404(BrokerAccount, pk=account_id, user=request.user, is_active=True)


@login_required
@require_POST
def exit_position(request: AuthenticatedHttpRequest) -> HttpResponse:
    account = _account_from_post(request)
    segment = request.POST.get("exchange_segment", "")
    instrument_id = as_id(request.POST.get("exchange_instrument_id"))
    product = request.POST.get("product_type", "")
    if segment not in ExchangeSegment.values or instrument_id is None:
        messages.error(request, "That position is not one of yours.")
        return _back(request)
    if product not in ProductType.values:
        messages.error(request, "Unknown product type.")
        return _back(request)
    symbol = request.POST.get("symbol", "")[:100] or f"{segment}:{instrument_id}"
    if not claim_form_key(user_id=request.user.pk, key=posted_form_key(request.POST)):
        messages.info(request, f"The exit of {symbol} was already sent; nothing more was sent.")
        return _back(request)
    try:
        check_trading_window(account)
        result = services.exit_positions(
            account=account,
            actor=user_actor(request.user),
            keys={(segment, instrument_id, product)},
        )
    except DomainError as exc:
        messages.error(request, f"Could not exit {symbol}: {exc.message}")
    else:
        _report(request, result, f"{symbol} ({product})")
    return _back(request)


@login_required
@require_POST
def exit_all_positions(request: AuthenticatedHttpRequest) -> HttpResponse:
    account = _account_from_post(request)
    if not claim_form_key(user_id=request.user.pk, key=posted_form_key(request.POST)):
        messages.info(request, "That exit was already sent; nothing more was sent.")
        return _back(request)
    try:
        check_trading_window(account)
        result = services.exit_positions(account=account, actor=user_actor(request.user))
    except DomainError as exc:
        messages.error(
            request, f"Could not exit the positions of {account.account_name}: {exc.message}"
        )
    else:
        _report(request, result, f"every position of {account.account_name}")
    return _back(request)
