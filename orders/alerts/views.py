"""The alert webhook endpoints, and the strategy page's webhook buttons.

`POST /hooks/alerts/<webhook id>[/<secret>]` takes an alert (TradingView and similar);
`POST /strategy/webhook/<webhook id>[/<secret>]` OpenAlgo's strategy-webhook shape. The
secret may instead come in the `X-Webhook-Secret` header or the body's `secret` field
(TradingView can only set the URL and the body). No session, no CSRF: the secret is the
credential. The work is orders.alerts.services.receive_alert.
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from accounts.audit import user_actor
from accounts.http import AuthenticatedHttpRequest
from accounts.models import Strategy
from orders.alerts import services
from orders.alerts.forms import WebhookForm
from orders.alerts.models import AlertWebhook, ReceivedAlert
from trading_site.core.errors import METHOD_NOT_ALLOWED, DomainError

SECRET_HEADER = "X-Webhook-Secret"
logger = logging.getLogger(__name__)


def _answer(answer: services.AlertAnswer, public_id: str) -> JsonResponse:
    response = JsonResponse(answer.body, status=answer.status)
    for name, value in answer.headers.items():
        response[name] = value
    # Django would log "Bad Request: <path>" for a 4xx, and the path may carry the secret:
    # one line of our own instead, with the webhook id only.
    response._has_been_logged = True  # type: ignore[attr-defined]  # Django's own flag
    logger.log(
        logging.INFO if answer.status < 400 else logging.WARNING,
        "alert webhook answered",
        extra={"webhook": public_id, "status": answer.status, "outcome": answer.outcome},
    )
    return response


def _receive(request: HttpRequest, public_id: str, secret: str | None, shape: str):
    if request.method != "POST":
        response = JsonResponse(
            {"error": "Alerts are POSTed", "code": METHOD_NOT_ALLOWED, "details": {}},
            status=405,
        )
        response["Allow"] = "POST"
        return response
    # Read at most one byte past the limit: a huge body is refused without being buffered.
    raw = request.read(services.ALERT_MAX_BODY_BYTES + 1)
    answer = services.receive_alert(
        public_id=public_id,
        secret=secret or request.headers.get(SECRET_HEADER, ""),
        raw_body=raw,
        client_ip=request.META.get("REMOTE_ADDR") or None,
        shape=shape,
    )
    return _answer(answer, public_id)


@csrf_exempt
@never_cache
def receive_alert(request: HttpRequest, public_id: str, secret: str | None = None):
    return _receive(request, public_id, secret, ReceivedAlert.Shape.ALERT)


@csrf_exempt
@never_cache
def receive_openalgo_strategy_alert(
    request: HttpRequest, public_id: str, secret: str | None = None
):
    return _receive(request, public_id, secret, ReceivedAlert.Shape.OPENALGO)


# ---- the strategy page's buttons --------------------------------------------------------------


def _back_to(strategy: Strategy) -> HttpResponse:
    return redirect(reverse("strategy_edit", args=[strategy.pk]) + "#webhook")


@login_required
def webhook_save(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    strategy = get_object_or_404(Strategy, pk=pk, user=request.user)
    if request.method != "POST":
        return _back_to(strategy)
    form = WebhookForm(request.POST, user=request.user)
    if not form.is_valid():
        messages.error(request, "Choose one of your active accounts for the webhook.")
        return _back_to(strategy)
    try:
        services.save_webhook(
            strategy=strategy,
            account=form.cleaned_data["account"],
            default_product=form.cleaned_data["default_product"],
            enabled=form.cleaned_data["enabled"],
            actor=user_actor(request.user),
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Alert webhook of “{strategy.name}” saved.")
    return _back_to(strategy)


@login_required
def webhook_rotate(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    strategy = get_object_or_404(Strategy, pk=pk, user=request.user)
    if request.method == "POST":
        webhook = get_object_or_404(AlertWebhook, strategy=strategy)
        services.rotate_webhook_secret(webhook=webhook, actor=user_actor(request.user))
        messages.success(
            request, "New secret made: alerts still using the old URL or secret now get 404."
        )
    return _back_to(strategy)
