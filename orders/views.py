"""Web pages of the orders app: the live order table, an order's page, place (single and
bracket), batch CSV, modify/cancel, instrument search, and the broker actions of the
settings page (connect an account, the kill switch).

Views parse a form and call one of H4's services (orders.services) or validation functions;
the rules live there. Every query is filtered by the signed-in user: another user's order is
a 404.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, time, timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Prefetch, Q
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.http import AuthenticatedHttpRequest
from accounts.models import BrokerAccount
from accounts.selectors import active_accounts_by_name, default_account_id
from accounts.services import remember_last_account
from accounts.web_forms import KillSwitchForm, add_service_errors
from orders import selectors, services
from orders.audit_words import describe_events
from orders.brokers.base import BrokerError
from orders.brokers.messages import trader_message
from orders.brokers.sessions import connect_account
from orders.domain.ticket import MARGIN_RATES, OPTION_SELL_RATE, instrument_class
from orders.models import BrokerTrade, Instrument, Order, OrderLeg, Side
from orders.services.audit import user_actor
from orders.services.kill_switch import kill_switch
from orders.services.placement import OUTCOME_REPLAYED, BatchItemError
from orders.services.trading_lock import unlock_trading
from orders.tradebook import csv_export
from orders.validation import BracketOrderRequest, InstrumentResolver, as_id, validate_bracket_order
from orders.web_forms import (
    BATCH_COLUMNS,
    KIND_BRACKET,
    BatchForm,
    BatchRow,
    ModifyOrderForm,
    OrderFilterForm,
    OrderTicketForm,
    parse_batch_csv,
)
from trading_site.core.errors import Conflict, DomainError, TradingLocked
from trading_site.core.form_keys import claim_form_key, new_form_key, posted_form_key

ORDERS_PER_PAGE = 50
SEARCH_LIMIT = 20
# A web form's key becomes its orders' Idempotency-Key under this prefix (a batch row's
# adds its CSV line): the same rendered form posted again replays its first result.
WEB_KEY_PREFIX = "web:"
BATCH_RESULTS_KEPT = 3


def _is_fragment(request: HttpRequest) -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


# ---- the order table ------------------------------------------------------------------


def _with_legs(queryset):
    return queryset.select_related("account", "strategy").prefetch_related(
        Prefetch("legs", queryset=OrderLeg.objects.order_by("id"))
    )


def leg_statuses(order: Order) -> dict[str, str]:
    """The entry / SL / TP leg status of an order for the table (the API's
    entry_order_status, sl_order_status, tp_order_status)."""
    by_role: dict[str, list[OrderLeg]] = {}
    for leg in order.legs.all():
        by_role.setdefault(leg.role, []).append(leg)
    result: dict[str, str] = {}
    for role, key in (
        (OrderLeg.Role.ENTRY, "entry"),
        (OrderLeg.Role.STOP_LOSS, "sl"),
        (OrderLeg.Role.TAKE_PROFIT, "tp"),
    ):
        legs = by_role.get(role, [])
        statuses = {leg.status for leg in legs}
        # Several targets: show the one most worth a look (working before finished).
        for status in (
            OrderLeg.Status.PARTIALLY_FILLED,
            OrderLeg.Status.OPEN,
            OrderLeg.Status.PENDING_SUBMIT,
            OrderLeg.Status.REJECTED,
            OrderLeg.Status.FILLED,
            OrderLeg.Status.CANCELLED,
            OrderLeg.Status.UNKNOWN,
        ):
            if status in statuses:
                result[key] = status
                break
    return result


def _decorate(orders: list[Order]) -> list[Order]:
    for order in orders:
        order.leg_status = leg_statuses(order)
    return orders


def _filtered_orders(request: AuthenticatedHttpRequest, form: OrderFilterForm):
    qs = Order.objects.filter(user=request.user)
    if form.is_bound and not form.is_valid():
        return qs.none()  # a bad filter shows nothing (as the trade book), never every order
    if form.is_valid():
        d = form.cleaned_data
        if d.get("account"):
            qs = qs.filter(account_id=d["account"])
        if d.get("status"):
            qs = qs.filter(status=d["status"])
        if d.get("symbol"):
            qs = qs.filter(symbol__istartswith=d["symbol"].strip())
        if d.get("strategy"):
            qs = qs.filter(strategy__name=d["strategy"])
        tz = timezone.get_current_timezone()
        if d.get("since"):
            qs = qs.filter(created_at__gte=datetime.combine(d["since"], time.min, tzinfo=tz))
        if d.get("until"):
            end = datetime.combine(d["until"] + timedelta(days=1), time.min, tzinfo=tz)
            qs = qs.filter(created_at__lt=end)
    return qs.order_by("-created_at", "-id")


class _CountedPaginator(Paginator):
    """A Paginator told its list's count (the user's kept order count) instead of asking
    the database for a COUNT."""

    def __init__(self, object_list, per_page: int, *, count: int) -> None:
        super().__init__(object_list, per_page)
        self._known_count = count

    @cached_property
    def count(self) -> int:
        return self._known_count


@login_required
@require_GET
def order_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = OrderFilterForm(request.GET or None, user=request.user)
    filtered = _filtered_orders(request, form)
    # The page's ids first, then its rows (orders.selectors.order_list_page says why); the
    # total of an unfiltered list is the user's kept count, not a count of every order.
    total = selectors.order_total(filtered, user=request.user)
    ids = filtered.values_list("id", flat=True)
    page = _CountedPaginator(ids, ORDERS_PER_PAGE, count=total).get_page(request.GET.get("page"))
    orders = _decorate(
        list(_with_legs(Order.objects.filter(pk__in=list(page))).order_by("-created_at", "-id"))
    )
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("fragment", None)
    context = {
        "form": form,
        "page": page,
        "orders": orders,
        "query": query.urlencode(),
    }
    status = 400 if form.is_bound and not form.is_valid() else 200
    if request.GET.get("fragment") == "rows":
        return render(request, "orders/_order_rows.html", context, status=status)
    return render(request, "orders/order_list.html", context, status=status)


@login_required
@require_GET
def order_list_csv(request: AuthenticatedHttpRequest) -> HttpResponse | StreamingHttpResponse:
    """The order list as CSV, with the page's filters (all pages)."""
    form = OrderFilterForm(request.GET or None, user=request.user)
    refused = csv_export.refused_filters(form)
    if refused is not None:
        return refused
    return csv_export.csv_response(
        csv_export.order_rows(_filtered_orders(request, form)),
        filename=csv_export.export_name("orders"),
    )


@login_required
@require_GET
def order_row(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """One table row, re-rendered when an order_update arrives."""
    order = get_object_or_404(_with_legs(Order.objects.filter(user=request.user)), pk=pk)
    _decorate([order])
    template = (
        "orders/_order_row_compact.html" if request.GET.get("compact") else "orders/_order_row.html"
    )
    return render(request, template, {"order": order})


# ---- one order ------------------------------------------------------------------------


def _order_context(request: AuthenticatedHttpRequest, pk: int) -> dict:
    order = get_object_or_404(
        Order.objects.filter(user=request.user).select_related("account", "strategy", "instrument"),
        pk=pk,
    )
    legs = list(order.legs.order_by("id"))
    broker_ids = [leg.broker_order_id for leg in legs if leg.broker_order_id]
    fills = (
        list(
            BrokerTrade.objects.filter(
                account_id=order.account_id, broker_order_id__in=broker_ids
            ).order_by("traded_at", "id")
        )
        if broker_ids
        else []
    )
    leg_by_broker_id = {leg.broker_order_id: leg for leg in legs}
    for fill in fills:
        fill.leg = leg_by_broker_id.get(fill.broker_order_id)
    events = describe_events(
        list(order.events.select_related("leg").order_by("created_at", "id")),
        viewer=request.user,
    )
    open_legs = [leg for leg in legs if leg.status in OrderLeg.OPEN_STATUSES]
    return {
        "order": order,
        "legs": legs,
        "fills": fills,
        "events": events,
        "open_legs": open_legs,
        "can_change": bool(open_legs)
        and order.status
        not in (Order.Status.CANCELLED, Order.Status.REJECTED, Order.Status.COMPLETED),
    }


def _modify_forms(context: dict, *, posted: ModifyOrderForm | None = None) -> list:
    """One pre-filled form per working leg the broker knows (the one just posted, with its
    errors, in its place)."""
    order = context["order"]
    if not context["can_change"]:
        return []
    forms_ = []
    for leg in context["open_legs"]:
        if not leg.broker_order_id or leg.status == OrderLeg.Status.PENDING_SUBMIT:
            continue
        if posted is not None and posted.leg.pk == leg.pk:
            forms_.append(posted)
        else:
            forms_.append(ModifyOrderForm(leg=leg, order=order))
    return forms_


@login_required
@require_GET
def order_detail(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    context = _order_context(request, pk)
    if _is_fragment(request):
        part = {"status": "orders/_order_status.html", "trail": "orders/_order_trail.html"}
        return render(
            request, part.get(request.GET.get("part", ""), "orders/_order_live.html"), context
        )
    context["modify_forms"] = _modify_forms(context)
    return render(request, "orders/order_detail.html", context)


@login_required
@require_POST
def order_cancel(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order, pk=pk, user=request.user)
    if not claim_form_key(user_id=request.user.pk, key=posted_form_key(request.POST)):
        messages.info(request, f"This cancel of order {order.pk} was already sent; nothing more.")
        return redirect("order_detail", pk=order.pk)
    try:
        services.cancel_order(order=order, actor=user_actor(request.user))
    except DomainError as exc:
        messages.error(request, f"Could not cancel order {order.pk}: {exc.message}")
    else:
        messages.success(request, f"Cancel sent for order {order.pk}.")
    return redirect("order_detail", pk=order.pk)


@login_required
@require_POST
def order_modify(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    context = _order_context(request, pk)
    order = context["order"]
    leg_id = as_id(request.POST.get("leg_id"))
    if leg_id is None and context["legs"]:  # a form without leg_id changes the entry
        leg_id = context["legs"][0].pk
    leg = next((leg for leg in context["open_legs"] if leg.pk == leg_id), None)
    if leg is None:
        messages.error(request, "That leg is no longer working; nothing was changed.")
        return redirect("order_detail", pk=order.pk)
    form = ModifyOrderForm(request.POST, leg=leg, order=order)
    if not claim_form_key(user_id=request.user.pk, key=posted_form_key(request.POST)):
        messages.info(request, "This change was already sent; nothing more was changed.")
        return redirect("order_detail", pk=order.pk)
    if form.is_valid():
        changes = form.changes()
        if not changes:
            form.add_error(None, "Nothing changed. Give a new price or a new quantity.")
        else:
            try:
                services.modify_order(
                    order=order, actor=user_actor(request.user), leg_id=leg.pk, **changes
                )
            except DomainError as exc:
                add_service_errors(form, exc.details, fallback=exc.message)
            else:
                messages.success(request, f"Order {order.pk}: {form.title.lower()} modified.")
                return redirect("order_detail", pk=order.pk)
    context["modify_forms"] = _modify_forms(context, posted=form)
    return render(request, "orders/order_detail.html", context, status=400)


# ---- placing orders -------------------------------------------------------------------


def ticket_context(form: OrderTicketForm, *, user) -> dict:
    """What the ticket partial needs beside its form: the instrument facts of the symbol the
    form holds (so a failed submit keeps LTP, lot and tick in view), which accounts are paper
    (their margin is the paper exchange's flat rate), and the search and facts URLs."""
    facts = None
    symbol = (form["symbol"].value() or "").strip() if form["symbol"].value() else ""
    instrument_id = as_id(form["exchange_instrument_id"].value())
    segment = (form["exchange_segment"].value() or "").strip().upper()
    found = Instrument.objects.select_related("fair_price")
    instrument = None
    if instrument_id is not None:
        filters: dict[str, object] = {"exchange_instrument_id": instrument_id}
        if segment:
            filters["exchange_segment"] = segment
        instrument = found.filter(**filters).first()
    elif symbol:
        instrument = found.filter(trading_symbol__iexact=symbol).first()
    if instrument is not None:
        facts = _instrument_json(instrument)
    paper = list(
        BrokerAccount.objects.filter(user=user, is_active=True, broker="PAPER").values_list(
            "pk", flat=True
        )
    )
    return {
        "form": form,
        "selected_account": _selected_account(form, user=user),
        "kind": form.current_kind.lower(),
        "search_url": reverse("instrument_search"),
        "facts_url": reverse("instrument_facts"),
        "facts_json": json.dumps(facts) if facts else "",
        "paper_accounts": ",".join(str(pk) for pk in paper),
        "paper_margin_rate": settings.PAPER_MARGIN_RATE,
        "margin_rates": json.dumps(
            {f"{cls}:{product}": str(rate) for (cls, product), rate in MARGIN_RATES.items()}
            | {"OPTIONS:SELL": str(OPTION_SELL_RATE)}
        ),
    }


def _selected_account(form, *, user) -> BrokerAccount | None:
    """The account the form shows (posted or preselected): its PAPER / LIVE badge."""
    pk = as_id(form["account_id"].value())
    if pk is None:
        return None
    return BrokerAccount.objects.filter(pk=pk, user=user).first()


def needs_live_confirmation(request: HttpRequest, account: BrokerAccount | None) -> bool:
    """A live account whose web forms ask first, and the trader has not said yes yet."""
    return (
        account is not None
        and not account.is_paper
        and account.confirm_live_orders
        and request.POST.get("confirm_live") != "yes"
    )


def confirm_live_page(
    request: HttpRequest, *, account: BrokerAccount, summary: list[str], posted: list
) -> HttpResponse:
    """The step before a live order: what will be placed, on which real-money account; the
    same fields (and form key) posted again with confirm_live=yes place it."""
    return render(
        request,
        "orders/confirm_live.html",
        {"account": account, "summary": summary, "posted": posted, "action": request.path},
    )


def _posted_fields(request: HttpRequest) -> list[tuple[str, str]]:
    skip = {"csrfmiddlewaretoken", "confirm_live"}
    return [
        (name, value)
        for name, values in request.POST.lists()
        if name not in skip
        for value in values
    ]


def _ticket_summary(form: OrderTicketForm) -> list[str]:
    d = form.cleaned_data
    symbol = d.get("symbol") or f"instrument {d.get('exchange_instrument_id')}"
    if d["kind"] == KIND_BRACKET:
        lines = [
            f"{d['order_side']} {d['no_of_lots']} lot(s) of {symbol}, bracket, {d['product_type']}",
            f"Entry {d['entry_type'] or 'LIMIT'} at {d['entry_price']}"
            + (f" (trigger {d['entry_stop_price']})" if d.get("entry_stop_price") else ""),
            f"Stop-loss {d['sl_price']}",
        ]
        lines += [
            f"Target {t.price}" + (f" for {t.lots} lot(s)" if t.lots else "")
            for t in form.target_specs
        ]
        return lines
    price = f" at {d['limit_price']}" if d.get("limit_price") is not None else ""
    trigger = f" (trigger {d['stop_price']})" if d.get("stop_price") is not None else ""
    return [
        f"{d['order_side']} {d['order_quantity']} {symbol}, {d['order_type']}{price}{trigger}, "
        f"{d['product_type']}"
    ]


@login_required
@require_http_methods(["GET", "POST"])
def place_order(request: AuthenticatedHttpRequest) -> HttpResponse:
    initial: dict = {}
    if request.method == "GET":
        initial["account_id"] = default_account_id(user=request.user)
        initial["kind"] = (request.GET.get("kind") or "single").upper()
        if request.GET.get("symbol"):
            initial["symbol"] = request.GET["symbol"][:100]
        if request.GET.get("side", "").upper() in Side.values:
            initial["order_side"] = request.GET["side"].upper()
    form = OrderTicketForm(
        request.POST if request.method == "POST" else None, user=request.user, initial=initial
    )
    status = 200
    if request.method == "POST":
        account = _selected_account(form, user=request.user)
        if form.is_valid() and account is not None and needs_live_confirmation(request, account):
            if request.POST.get("confirm_live") != "back":
                return confirm_live_page(
                    request,
                    account=account,
                    summary=_ticket_summary(form),
                    posted=_posted_fields(request),
                )
            # "Back to the form": the ticket again as it was, nothing placed.
            return render(
                request, "orders/place_order.html", ticket_context(form, user=request.user)
            )
        if form.is_valid():
            placing: Callable[..., services.PlacementResult] = (
                services.place_bracket_order
                if form.cleaned_data["kind"] == KIND_BRACKET
                else services.place_single_order
            )
            placement = form.to_request()
            key = posted_form_key(request.POST)
            if key:
                placement.client_order_id = WEB_KEY_PREFIX + key
            try:
                order = placing(
                    user=request.user,
                    request=placement,
                    source=Order.Source.MANUAL,
                    actor=user_actor(request.user),
                )
            except TradingLocked as exc:
                form.add_error(None, exc.message)
                status = 409
            except Conflict as exc:
                first = (exc.details or {}).get("order_id")
                if first and (exc.details or {}).get("client_order_id"):
                    # The same rendered form sent again with other values: its order stands.
                    messages.info(
                        request,
                        f"This form already placed order {first}; nothing new was placed.",
                    )
                    return redirect("order_detail", pk=first)
                form.add_error(None, exc.message)
                status = 409
            except DomainError as exc:
                form.add_rule_errors(exc.details, fallback=exc.message)
            else:
                if order.send is not None and order.send.not_sent:
                    # Nothing reached the broker: say so on the form, ready to submit again.
                    form.add_error(
                        None,
                        f"Order {order.order.pk} was not sent to the broker, nothing was "
                        f"placed ({order.send.rejected_reason}). Submit again to place it.",
                    )
                    return render(
                        request,
                        "orders/place_order.html",
                        ticket_context(form, user=request.user),
                        status=409 if order.send.trading_locked else 503,
                    )
                if order.outcome == OUTCOME_REPLAYED:
                    messages.info(
                        request,
                        f"Order {order.order.pk} was already placed from this form; nothing "
                        "new was placed.",
                    )
                    return redirect("order_detail", pk=order.order.pk)
                placed = order.order
                remember_last_account(user=request.user, account_id=placed.account_id)
                messages.success(
                    request, f"Order {placed.pk} placed: {placed.get_status_display()}."
                )
                return redirect("order_detail", pk=placed.pk)
        else:
            form.collect_rule_errors()
        status = status if status != 200 else 400
    return render(
        request,
        "orders/place_order.html",
        ticket_context(form, user=request.user),
        status=status,
    )


@login_required
@require_GET
def instrument_search(request: AuthenticatedHttpRequest) -> JsonResponse:
    """Instruments whose symbol starts with (then contains) `q`, with lot and tick size."""
    q = (request.GET.get("q") or "").strip()[:50]
    if not q:
        return JsonResponse({"instruments": []})
    base = Instrument.objects.select_related("fair_price")
    found = list(
        base.filter(trading_symbol__istartswith=q).order_by("trading_symbol")[:SEARCH_LIMIT]
    )
    if len(found) < SEARCH_LIMIT:
        seen = [i.pk for i in found]
        found += list(
            base.filter(Q(trading_symbol__icontains=q) | Q(name__icontains=q))
            .exclude(pk__in=seen)
            .order_by("trading_symbol")[: SEARCH_LIMIT - len(found)]
        )
    return JsonResponse({"instruments": [_instrument_json(i) for i in found]})


@login_required
@require_GET
def instrument_facts(request: AuthenticatedHttpRequest) -> JsonResponse:
    """One instrument's facts and its latest LTP (the ticket polls it while open)."""
    instrument_id = as_id(request.GET.get("id"))
    segment = (request.GET.get("segment") or "").strip().upper()[:10]
    if instrument_id is None or not segment:
        return JsonResponse({"error": "give segment and id"}, status=400)
    instrument = (
        Instrument.objects.select_related("fair_price")
        .filter(exchange_segment=segment, exchange_instrument_id=instrument_id)
        .first()
    )
    if instrument is None:
        return JsonResponse({"error": "unknown instrument"}, status=404)
    return JsonResponse(_instrument_json(instrument))


def _plain(value) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def _instrument_json(instrument: Instrument) -> dict:
    fair = getattr(instrument, "fair_price", None)
    ltp = fair.last_traded_price if fair is not None else None
    return {
        "id": instrument.exchange_instrument_id,
        "pk": instrument.pk,
        "symbol": instrument.trading_symbol,
        "name": instrument.name or instrument.trading_symbol,
        "segment": instrument.exchange_segment,
        "exchange_instrument_id": instrument.exchange_instrument_id,
        "lot_size": instrument.lot_size,
        "tick_size": _plain(instrument.tick_size),
        "freeze_quantity": instrument.freeze_quantity,
        "band_low": _plain(instrument.price_band_low),
        "band_high": _plain(instrument.price_band_high),
        "multiplier": instrument.multiplier,
        "strike": _plain(instrument.strike_price),
        "instrument_class": instrument_class(
            segment=instrument.exchange_segment,
            instrument_type=instrument.instrument_type,
            series=instrument.series,
            option_type=instrument.option_type,
        ),
        "ltp": str(ltp) if ltp is not None else None,
    }


# ---- batch ----------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def batch_orders(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = BatchForm(
        request.POST or None,
        request.FILES or None,
        user=request.user,
        initial={"account_id": default_account_id(user=request.user)},
    )
    context: dict = {
        "form": form,
        "columns": BATCH_COLUMNS,
        "selected_account": _selected_account(form, user=request.user),
    }
    if request.method != "POST" or not form.is_valid():
        return render(
            request, "orders/batch.html", context, status=400 if request.method == "POST" else 200
        )
    action = request.POST.get("action", "preview")
    account_id = form.cleaned_data["account_id"]
    rows, problems = parse_batch_csv(form.cleaned_data["csv_text"], account_id=account_id)
    context.update({"rows": rows, "problems": problems, "csv_text": form.cleaned_data["csv_text"]})
    if not rows:
        return render(request, "orders/batch.html", context, status=400)

    account = context["selected_account"]
    if action == "place" and needs_live_confirmation(request, account):
        if request.POST.get("confirm_live") != "back":
            valid = [row for row in rows if row.ok]
            return confirm_live_page(
                request,
                account=account,
                summary=[
                    f"{len(valid)} bracket order(s) from the CSV "
                    f"({len(rows) - len(valid)} invalid row(s) not placed)",
                    *(
                        f"Line {row.line}: {row.values.get('order_side') or 'BUY'} "
                        f"{row.values.get('no_of_lots')} lot(s) "
                        f"{row.values.get('trading_symbol')} at {row.values.get('entry_price')}, "
                        f"SL {row.values.get('sl_price')}"
                        for row in valid[:20]
                    ),
                ],
                posted=[
                    ("account_id", str(account_id)),
                    ("csv_text", form.cleaned_data["csv_text"]),
                    ("action", "place"),
                    ("form_key", posted_form_key(request.POST)),
                ],
            )
        action = "preview"  # "Back to the form": shown again as a preview, nothing placed

    if action == "place":
        key = posted_form_key(request.POST)
        # Rows that could not be parsed go in as BatchItemError so every row gets a result.
        items: list[BracketOrderRequest | BatchItemError] = []
        for row in rows:
            if not row.ok or row.request is None:
                items.append(
                    BatchItemError(
                        external_id=row.external_id, message="invalid row", details=row.errors
                    )
                )
                continue
            if key:
                row.request.client_order_id = f"{WEB_KEY_PREFIX}{key}:{row.line}"
            items.append(row.request)
        try:
            outcomes = services.place_batch(
                user=request.user,
                account_id=account_id,
                items=items,
                source=Order.Source.BATCH,
                actor=user_actor(request.user),
            )
        except TradingLocked as exc:
            form.add_error(None, exc.message)
            return render(request, "orders/batch.html", context, status=409)
        except DomainError as exc:
            add_service_errors(
                form, exc.details, fallback=exc.message, field_map={"orders": "csv_text"}
            )
            return render(request, "orders/batch.html", context, status=400)
        for row, outcome in zip(rows, outcomes, strict=True):
            _apply_outcome(row, outcome)
        if any(row.status == "success" for row in rows):
            remember_last_account(user=request.user, account_id=account_id)
        # Post/redirect/get: the results page is a GET; reloading it places nothing.
        token = key or new_form_key()
        kept = dict(list(request.session.get("batch_results", {}).items())[-BATCH_RESULTS_KEPT:])
        kept[token] = {
            "account_id": account_id,
            "rows": [
                {
                    "line": row.line,
                    "values": row.values,
                    "status": row.status,
                    "order_id": row.order_id,
                    "error": row.error,
                }
                for row in rows
            ],
        }
        request.session["batch_results"] = dict(list(kept.items())[-BATCH_RESULTS_KEPT:])
        return redirect("batch_results", key=token)

    # Preview: H4's validation per row (one instrument cache for the batch), nothing written.
    resolver = InstrumentResolver()
    for row in rows:
        if row.request is None:
            continue
        try:
            validate_bracket_order(user=request.user, request=row.request, resolver=resolver)
        except DomainError as exc:
            row.errors = {
                k: [str(m) for m in (v if isinstance(v, list) else [v])]
                for k, v in (exc.details or {"row": [exc.message]}).items()
            }
    context["previewed"] = True
    context["valid_count"] = sum(1 for r in rows if r.ok)
    return render(request, "orders/batch.html", context)


@login_required
@require_GET
def batch_results(request: AuthenticatedHttpRequest, key: str) -> HttpResponse:
    """The results of one placed batch (the redirect after placing): reading it again
    places nothing. A fresh, empty form above it starts the next batch."""
    stored = request.session.get("batch_results", {}).get(key)
    form = BatchForm(
        user=request.user, initial={"account_id": default_account_id(user=request.user)}
    )
    context: dict = {"form": form, "columns": BATCH_COLUMNS}
    if stored is None:
        messages.info(request, "Those batch results are no longer kept; see the order list.")
        return redirect("batch_orders")
    rows = [
        BatchRow(
            line=item["line"],
            values=item["values"],
            status=item["status"],
            order_id=item["order_id"],
            error=item["error"],
        )
        for item in stored["rows"]
    ]
    context.update(
        {
            "rows": rows,
            "placed": True,
            "placed_count": sum(1 for row in rows if row.status == "success"),
            "selected_account": BrokerAccount.objects.filter(
                pk=stored["account_id"], user=request.user
            ).first(),
        }
    )
    return render(request, "orders/batch.html", context)


def _apply_outcome(row, outcome) -> None:
    """One BatchItemResult (in input order) -> the row's status, order id and error text."""
    row.status = outcome.status
    row.order_id = outcome.order_id
    if outcome.status != "success":
        details = outcome.details or {}
        row.errors = (
            {
                str(k): [str(m) for m in (v if isinstance(v, list) else [v])]
                for k, v in details.items()
            }
            if isinstance(details, dict)
            else {}
        )
        row.error = outcome.error or "error"
        if row.errors:
            row.error = "; ".join(f"{k}: {', '.join(v)}" for k, v in row.errors.items())


# ---- broker account actions (buttons of the settings page) ----------------------------


@login_required
@require_POST
def account_connect(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(BrokerAccount, pk=pk, user=request.user)
    if not account.is_active:
        messages.error(request, f"“{account.account_name}” is deactivated.")
        return redirect("settings")
    try:
        broker_session = connect_account(account)
    except (BrokerError, DomainError) as exc:
        reason = trader_message(exc, account_id=account.pk)
        messages.error(request, f"Could not connect “{account.account_name}”: {reason}")
    else:
        expires = timezone.localtime(broker_session.expires_at).strftime("%d %b %H:%M IST")
        messages.success(
            request, f"Connected “{account.account_name}”; the session is valid until {expires}."
        )
    return redirect("settings")


@login_required
@require_GET
def kill_switch_chooser(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The navigation's kill switch: straight to the confirmation of the trader's one active
    account, else a choice of account (each confirmation names its account)."""
    accounts = list(active_accounts_by_name(user=request.user))
    if len(accounts) == 1:
        return redirect("account_kill_switch", pk=accounts[0].pk)
    return render(request, "accounts/kill_switch_choose.html", {"accounts": accounts})


@login_required
@require_http_methods(["GET", "POST"])
def account_kill_switch(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(BrokerAccount, pk=pk, user=request.user, is_active=True)
    form = KillSwitchForm(request.POST or None, account_name=account.account_name)
    if request.method == "POST" and form.is_valid():
        try:
            result = kill_switch(account=account, actor=user_actor(request.user))
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.warning(request, f"Kill switch on “{account.account_name}”: {result.summary}")
            return redirect("settings")
    return render(request, "accounts/kill_switch.html", {"form": form, "account": account})


@login_required
@require_POST
def account_enable_trading(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """The settings page's "Re-enable trading" after the kill switch (audited)."""
    account = get_object_or_404(BrokerAccount, pk=pk, user=request.user, is_active=True)
    if unlock_trading(account=account, actor=user_actor(request.user)):
        messages.success(
            request, f"Trading re-enabled on “{account.account_name}”: new orders are accepted."
        )
    else:
        messages.info(request, f"Trading was not locked on “{account.account_name}”.")
    return redirect("settings")
