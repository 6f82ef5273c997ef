"""Alert webhooks: set up, rotate, and turn a received alert into an order.

An alert goes through the one placement path (orders.services: write-ahead, then the
broker) on the webhook's account, attributed to its strategy. The alert's `id` becomes the
order's client_order_id (namespaced by webhook), so the same alert delivered twice places
once: the second delivery answers with the first order. Every alert that names a known
webhook leaves a ReceivedAlert row, written before anything is placed and updated with the
outcome; an unknown webhook or a wrong secret is a 404 that places nothing (and only the
known webhook's owner sees a wrong-secret row, without the body).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import BrokerAccount, Strategy, User
from orders.alerts import selectors
from orders.alerts.models import AlertWebhook, ReceivedAlert
from orders.alerts.parsing import (
    AlertInvalid,
    AlertOrder,
    parse_alert,
    parse_openalgo_strategy_alert,
)
from orders.domain.vocabulary import EventKind
from orders.models import Instrument, Order, ProductType
from orders.openalgo.fields import OpenAlgoInvalid
from orders.openalgo.mapping import (
    MappingError,
    change_to_target,
    exchange_of_segment,
    whole_lots,
)
from orders.openalgo.selectors import resolve_instrument, resolve_instrument_anywhere
from orders.services import place_bracket_order, place_single_order
from orders.services.audit import record_account_event, record_account_setting_saved
from orders.services.placement import (
    OUTCOME_NOT_SENT,
    OUTCOME_REJECTED,
    OUTCOME_REPLAYED,
    OUTCOME_UNKNOWN,
    PlacementResult,
    not_sent_details,
)
from orders.services.position_changes import change_position_live
from orders.validation import BracketOrderRequest, SingleOrderRequest, TargetSpec
from trading_site.core import safe_json
from trading_site.core.api.errors import http_status_of
from trading_site.core.api.ratelimit import take_group_token
from trading_site.core.errors import (
    BROKER_UNAVAILABLE,
    NOT_FOUND,
    PERMISSION_DENIED,
    RATE_LIMITED,
    TRADING_LOCKED,
    VALIDATION_ERROR,
    DomainError,
    TradingLocked,
    ValidationFailed,
)

logger = logging.getLogger(__name__)

# A TradingView alert is a few hundred bytes; more than this is not an alert.
ALERT_MAX_BODY_BYTES = 16 * 1024
ALERT_BODY_STORED_CHARS = 4096
SECRET_PLACEHOLDER = "[secret]"
BODY_SECRET_FIELD = "secret"
BROKER_REJECTED = "BROKER_REJECTED"
INTERNAL_ERROR = "INTERNAL_ERROR"

Outcome = ReceivedAlert.Outcome


# ---- set-up ---------------------------------------------------------------------------------


def _new_public_id() -> str:
    return secrets.token_urlsafe(12)  # 96 bits: not guessable, short enough for a URL


def _new_secret() -> str:
    return secrets.token_urlsafe(24)  # 192 bits


def _check_account(*, user: User, account: BrokerAccount) -> None:
    if account.user_id != user.pk or not account.is_active:
        raise ValidationFailed(
            "Choose one of your active broker accounts",
            details={"account": ["not one of your active broker accounts"]},
        )


def _check_product(product: str) -> None:
    if product not in ProductType.values:
        raise ValidationFailed(
            "Unknown product",
            details={"default_product": [f"must be one of {', '.join(ProductType.values)}"]},
        )


def _webhook_state(webhook: AlertWebhook) -> dict[str, Any]:
    """The audited view of a webhook (before/after): never its secret."""
    return {
        "id": webhook.pk,
        "strategy_id": webhook.strategy_id,
        "account_id": webhook.account_id,
        "default_product": webhook.default_product,
        "enabled": webhook.enabled,
    }


def _record_webhook_saved(
    webhook: AlertWebhook, *, strategy: Strategy, before: dict[str, Any] | None, actor: str
) -> None:
    record_account_setting_saved(
        webhook.account,
        what=f"alert webhook of strategy {strategy.name!r}",
        kinds=(EventKind.WEBHOOK_CREATED, EventKind.WEBHOOK_CHANGED),
        before=before,
        after=_webhook_state(webhook),
        actor=actor,
    )


def save_webhook(
    *,
    strategy: Strategy,
    account: BrokerAccount,
    actor: str,
    default_product: str = ProductType.MIS,
    enabled: bool = True,
) -> AlertWebhook:
    """Create the strategy's webhook, or change its account, product or state (the URL and
    secret stay), audited on its account with who did it (none when nothing changed). The
    first save inserts in a transaction of its own: two at once (two tabs, a double post)
    cannot both make one, and the one that lost the insert, its transaction over, changes
    the other's in the next (no lock held while asking for another, so no deadlock)."""
    _check_account(user=strategy.user, account=account)
    _check_product(default_product)
    if not AlertWebhook.objects.filter(strategy=strategy).exists():
        try:
            with transaction.atomic():
                webhook = AlertWebhook.objects.create(
                    user_id=strategy.user_id,
                    strategy=strategy,
                    account=account,
                    public_id=_new_public_id(),
                    secret=_new_secret(),
                    default_product=default_product,
                    enabled=enabled,
                )
                _record_webhook_saved(webhook, strategy=strategy, before=None, actor=actor)
                return webhook
        except IntegrityError:
            pass  # made at this moment by another save: that one is changed below
    with transaction.atomic():
        webhook = AlertWebhook.objects.select_for_update().get(strategy=strategy)
        before = _webhook_state(webhook)
        webhook.account = account
        webhook.default_product = default_product
        webhook.enabled = enabled
        webhook.save(update_fields=["account", "default_product", "enabled"])
        _record_webhook_saved(webhook, strategy=strategy, before=before, actor=actor)
    return webhook


def rotate_webhook_secret(*, webhook: AlertWebhook, actor: str) -> AlertWebhook:
    """A new secret: every URL or alert carrying the old one is a 404 from now on."""
    with transaction.atomic():
        webhook.secret = _new_secret()
        webhook.secret_rotated_at = timezone.now()
        webhook.save(update_fields=["secret", "secret_rotated_at"])
        record_account_event(
            webhook.account,
            kind=EventKind.WEBHOOK_SECRET_ROTATED,
            actor=actor,
            message=f"alert webhook {webhook.public_id}: new secret; the old one now gets 404",
        )
    return webhook


def purge_old_received_alerts(*, older_than_days: int | None = None) -> int:
    """Delete received alerts older than ALERT_RETENTION_DAYS (housekeeping); the orders
    they placed stay, with their own audit trail."""
    days = settings.ALERT_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = ReceivedAlert.objects.filter(received_at__lt=cutoff).delete()
    return deleted


# ---- receiving an alert ---------------------------------------------------------------------


@dataclass
class AlertAnswer:
    """What the webhook answers: an HTTP status and a JSON body."""

    status: int
    body: dict[str, Any]
    outcome: str
    headers: dict[str, str] = field(default_factory=dict)


def _error_answer(
    status: int,
    message: str,
    code: str,
    outcome: str,
    details: dict | None = None,
    **extra: Any,
) -> AlertAnswer:
    body = {"error": message, "code": code, "details": details or {}, "outcome": outcome}
    body.update(extra)
    return AlertAnswer(status=status, body=body, outcome=outcome)


def _not_found() -> AlertAnswer:
    # The same answer for an unknown webhook and a wrong secret: nothing to learn from it.
    return _error_answer(404, "Not found", NOT_FOUND, Outcome.BAD_SECRET)


def _parse_json_object(raw: bytes) -> dict | None:
    try:
        parsed = safe_json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return parsed if isinstance(parsed, dict) else None


def _secret_matches(webhook: AlertWebhook, presented: str) -> bool:
    return bool(presented) and hmac.compare_digest(
        presented.encode("utf-8", "replace"), webhook.secret.encode()
    )


def _stored_body(raw: bytes, secret: str) -> tuple[str, bool]:
    """The body to keep: decoded, the secret blanked wherever it appears, size-limited."""
    text = raw.decode("utf-8", "replace")
    if secret:
        text = text.replace(secret, SECRET_PLACEHOLDER)
    truncated = len(text) > ALERT_BODY_STORED_CHARS
    return text[:ALERT_BODY_STORED_CHARS], truncated


def client_order_id_for(webhook: AlertWebhook, alert_id: str) -> str:
    """The placement's idempotency key for an alert id: the same id on the same webhook is
    the same order; ids on different webhooks (or the API's own keys) never collide."""
    key = f"alert:{webhook.pk}:{alert_id}"
    if len(key) <= 64:
        return key
    return f"alert:{webhook.pk}:h:{hashlib.sha256(alert_id.encode()).hexdigest()[:40]}"


def receive_alert(
    *,
    public_id: str,
    secret: str,
    raw_body: bytes,
    client_ip: str | None,
    shape: str = ReceivedAlert.Shape.ALERT,
) -> AlertAnswer:
    """Authenticate, rate-limit, audit, parse and place one alert; never raises for the
    sender's mistakes (each is an answer with its status and an audit row)."""
    webhook = (
        AlertWebhook.objects.select_related("user", "strategy", "account")
        .filter(public_id=public_id)
        .first()
    )
    too_big = len(raw_body) > ALERT_MAX_BODY_BYTES
    parsed = None if too_big else _parse_json_object(raw_body)
    if not secret and parsed is not None:
        body_secret = parsed.get(BODY_SECRET_FIELD)
        secret = body_secret if isinstance(body_secret, str) else ""
    if webhook is None or not webhook.user.is_active:
        return _refuse_bad_secret(None, client_ip=client_ip, shape=shape)
    if not _secret_matches(webhook, secret):
        return _refuse_bad_secret(webhook, client_ip=client_ip, shape=shape)

    stored, truncated = _stored_body(raw_body, webhook.secret)
    alert = ReceivedAlert.objects.create(
        user_id=webhook.user_id,
        webhook=webhook,
        source_ip=client_ip or None,
        shape=shape,
        body=stored,
        body_truncated=truncated,
    )
    AlertWebhook.objects.filter(pk=webhook.pk).update(last_alert_at=alert.received_at)
    try:
        answer = _handle(webhook, alert, parsed=parsed, too_big=too_big, shape=shape)
    except Exception:
        logger.exception("alert webhook failed", extra={"alert": alert.pk})
        answer = _error_answer(500, "Internal error", INTERNAL_ERROR, Outcome.ERROR)
    _record(alert, answer)
    answer.body.setdefault("alert", alert.pk)
    return answer


def _refuse_bad_secret(
    webhook: AlertWebhook | None, *, client_ip: str | None, shape: str
) -> AlertAnswer:
    # Counted per address, so guessing is slow; right secrets never touch this bucket (alert
    # senders such as TradingView share a few addresses among all their users).
    result = take_group_token("webhook_bad_secret", f"webhook_bad_secret:{client_ip or '-'}")
    if webhook is not None and result.allowed:
        ReceivedAlert.objects.create(
            user_id=webhook.user_id,
            webhook=webhook,
            source_ip=client_ip or None,
            shape=shape,
            outcome=Outcome.BAD_SECRET,
            http_status=404,
            error="wrong or missing secret (body not kept)",
        )
    if not result.allowed:
        answer = _error_answer(429, "Too many requests", RATE_LIMITED, Outcome.RATE_LIMITED)
        answer.headers["Retry-After"] = str(max(1, math.ceil(result.retry_after)))
        return answer
    return _not_found()


def _record(alert: ReceivedAlert, answer: AlertAnswer) -> None:
    alert.outcome = answer.outcome
    alert.http_status = answer.status
    alert.order_id = answer.body.get("order_id")
    alert.error = answer.body.get("error", "")[:1000]
    details = answer.body.get("details") or {}
    alert.details = json.loads(json.dumps(details, default=str))
    alert.save(update_fields=["outcome", "http_status", "order", "error", "details", "alert_id"])


def _handle(
    webhook: AlertWebhook, alert: ReceivedAlert, *, parsed: dict | None, too_big: bool, shape: str
) -> AlertAnswer:
    if not webhook.enabled:
        return _error_answer(
            403, "This webhook is switched off", PERMISSION_DENIED, Outcome.REFUSED
        )
    if not webhook.account.is_active:
        # A deactivated account is no longer traded: not even the exits of its brackets
        # that OpenAlgo's strategy webhook would send (its placements check the account,
        # its exits alone did not), nor a read of its position at the broker.
        return _error_answer(
            403,
            "This webhook's broker account is deactivated: choose an active account for it "
            "on the strategy page",
            PERMISSION_DENIED,
            Outcome.REFUSED,
        )
    limit = take_group_token("webhook", f"webhook:{webhook.pk}")
    if not limit.allowed:
        answer = _error_answer(
            429, "Too many alerts for this webhook", RATE_LIMITED, Outcome.RATE_LIMITED
        )
        answer.headers["Retry-After"] = str(max(1, math.ceil(limit.retry_after)))
        return answer
    if too_big:
        return _error_answer(
            413,
            f"An alert is at most {ALERT_MAX_BODY_BYTES} bytes",
            VALIDATION_ERROR,
            Outcome.INVALID,
        )
    if parsed is None:
        return _error_answer(
            400, "The alert must be a JSON object", VALIDATION_ERROR, Outcome.INVALID
        )
    fields = {k: v for k, v in parsed.items() if str(k).strip().lower() != BODY_SECRET_FIELD}
    try:
        order = (
            parse_openalgo_strategy_alert(fields)
            if shape == ReceivedAlert.Shape.OPENALGO
            else parse_alert(fields)
        )
    except AlertInvalid as exc:
        return _error_answer(400, str(exc), VALIDATION_ERROR, Outcome.INVALID, exc.details)
    alert.alert_id = order.alert_id
    try:
        if order.target_position is not None:
            return _reach_target(webhook, order)
        result = _place(webhook, order)
    except AlertInvalid as exc:
        return _error_answer(400, str(exc), VALIDATION_ERROR, Outcome.INVALID, exc.details)
    except DomainError as exc:
        status = http_status_of(exc)
        outcome = Outcome.INVALID if status == 400 else Outcome.REFUSED
        details = _in_alert_words(exc.details)
        return _error_answer(status, exc.message, exc.code, outcome, details)
    return _placed_answer(result, order)


# The placement requests' field names -> the alert's, so errors name what the sender sent.
_ALERT_FIELD_NAMES = {
    "symbol": "symbol",
    "trading_symbol": "symbol",
    "exchange_segment": "exchange",
    "order_side": "action",
    "order_quantity": "quantity",
    "no_of_lots": "quantity",
    "limit_price": "price",
    "entry_price": "price",
    "stop_price": "trigger_price",
    "entry_stop_price": "trigger_price",
    "sl_price": "stop_loss",
    "targets": "target",
    "product_type": "product",
    "order_type": "order_type",
    "client_order_id": "id",
    "external_id": "id",
    "account_id": "account",
}


def _in_alert_words(details: Any) -> dict:
    if not isinstance(details, dict):
        return {}
    return {_ALERT_FIELD_NAMES.get(k, k): v for k, v in details.items()}


def _instrument_for(order: AlertOrder, segment: str) -> Instrument | None:
    """The instrument, only to turn lots into units (or back); validation names the
    problem when there is none or several."""
    found = Instrument.objects.filter(trading_symbol=order.symbol)
    if segment:
        found = found.filter(exchange_segment=segment)
    matches = list(found[:2])
    return matches[0] if len(matches) == 1 else None


def _split_lots(targets: tuple, lots: int) -> list[TargetSpec]:
    """The bracket's lots shared across the alert's targets as evenly as whole lots allow
    (the nearer targets take the remainder)."""
    if not targets:
        return []
    if lots < len(targets):
        raise AlertInvalid({"target": [f"{len(targets)} targets need at least as many lots"]})
    share, extra = divmod(lots, len(targets))
    return [
        TargetSpec(price=price, lots=share + (1 if n < extra else 0))
        for n, price in enumerate(targets)
    ]


def _place(webhook: AlertWebhook, order: AlertOrder) -> PlacementResult:
    segment = order.exchange_segment
    product = order.product or webhook.default_product
    key = client_order_id_for(webhook, order.alert_id) if order.alert_id else ""
    common: dict[str, Any] = {
        "account_id": webhook.account_id,
        "order_side": order.side,
        "product_type": product,
        "exchange_segment": segment,
        "strategy_name": webhook.strategy.name,
        "client_order_id": key,
        "external_id": order.alert_id,
    }
    instrument = _instrument_for(order, segment)
    actor = f"webhook:{webhook.public_id}"
    if order.is_bracket:
        lots = order.lots
        if lots is None and instrument is not None:
            assert order.quantity is not None  # an alert names its lots or its quantity
            try:
                lots = whole_lots(order.quantity, instrument.lot_size)
            except MappingError as exc:
                raise AlertInvalid({exc.field: [exc.message]}) from None
        lots = lots if lots is not None else order.quantity  # no instrument: validation says so
        assert lots is not None  # an alert names its lots or its quantity
        request = BracketOrderRequest(
            **common,
            no_of_lots=lots,
            entry_price=order.price,
            entry_stop_price=order.trigger_price if order.order_type == "STOPLIMIT" else None,
            sl_price=order.stop_loss,
            trading_symbol=order.symbol,
            targets=_split_lots(order.targets, lots),
            targets_field="target",
        )
        return place_bracket_order(
            user=webhook.user, request=request, source=Order.Source.ALERT, actor=actor
        )
    quantity = order.quantity
    if quantity is None:
        lot_size = instrument.lot_size if instrument is not None else 1
        assert order.lots is not None  # an alert names its lots or its quantity
        quantity = order.lots * lot_size
    single = SingleOrderRequest(
        **common,
        order_type=order.order_type,
        order_quantity=quantity,
        symbol=order.symbol,
        limit_price=order.price,
        stop_price=order.trigger_price,
    )
    return place_single_order(
        user=webhook.user, request=single, source=Order.Source.ALERT, actor=actor
    )


def _target_instrument(order: AlertOrder) -> Instrument:
    """The instrument of an OpenAlgo strategy alert: OpenAlgo's symbol (or the broker's) on
    the exchange it names, or wherever the symbol is unique."""
    try:
        if order.exchange_segment:
            return resolve_instrument(
                exchange=exchange_of_segment(order.exchange_segment), symbol=order.symbol
            )
        return resolve_instrument_anywhere(symbol=order.symbol)
    except OpenAlgoInvalid as exc:
        raise AlertInvalid(exc.details) from None


def _repeat_key(webhook: AlertWebhook, order: AlertOrder, product: str) -> str:
    """The idempotency key of an OpenAlgo strategy alert sent without an `id` (OpenAlgo's
    strategy module sends none): the same alert again within OPENALGO_IDEMPOTENCY_SECONDS (a
    relay's retry, a duplicate delivery) is the same order, as the same request is on the
    OpenAlgo API (orders.openalgo.idempotency). Its target is a state, not a trade: a copy
    arriving while the first order still worked read the position without it and placed the
    difference again (long 10 for a target of 5). The previous window's key is kept while
    its order is younger than a window, so a retry across a window's edge still finds it."""
    seconds = int(settings.OPENALGO_IDEMPOTENCY_SECONDS)
    if seconds <= 0:
        return ""
    prices = [p.normalize() if p is not None else None for p in (order.price, order.trigger_price)]
    content = repr(
        (order.symbol.upper(), order.exchange_segment, order.side, order.order_type, *prices)
        + (product, order.target_position)
    )
    digest = hashlib.sha256(content.encode()).hexdigest()[:24]
    now = timezone.now()
    window = int(now.timestamp() // seconds)
    previous = client_order_id_for(webhook, f"auto-{window - 1}-{digest}")
    if selectors.placed_with_key_since(
        user_id=webhook.user_id, client_order_id=previous, since=now - timedelta(seconds=seconds)
    ):
        return previous
    return client_order_id_for(webhook, f"auto-{window}-{digest}")


def _reach_target(webhook: AlertWebhook, order: AlertOrder) -> AlertAnswer:
    """OpenAlgo's strategy webhook: the order for the difference between the account's live
    position (this instrument and product) and the alert's target; none when it is there.
    Reductions exit brackets holding the position first; the position is read and changed
    under the account's exclusion, and a locked account refuses the alert as a whole
    (orders.services.position_changes.change_position_live)."""
    instrument = _target_instrument(order)
    product = order.product or webhook.default_product
    key = (
        client_order_id_for(webhook, order.alert_id)
        if order.alert_id
        else _repeat_key(webhook, order, product)
    )
    target = order.target_position
    assert target is not None  # a target-position alert names it
    live = change_position_live(
        account=webhook.account,
        instrument=instrument,
        product_type=product,
        decide=lambda current: change_to_target(target=target, current=current),
        user=webhook.user,
        actor=f"webhook:{webhook.public_id}",
        source=Order.Source.ALERT,
        strategy_name=webhook.strategy.name,
        order_type=order.order_type,
        limit_price=order.price,
        stop_price=order.trigger_price,
        client_order_id=key,
        external_id=order.alert_id,
    )
    body: dict[str, Any] = {
        "target_position": order.target_position,
        "current_position": live.current,
        "alert_id": order.alert_id,
    }
    if live.change is None:
        body.update(outcome=Outcome.NO_ACTION, detail="The position is already at the target.")
        return AlertAnswer(status=200, body=body, outcome=Outcome.NO_ACTION)
    result = live.result
    assert result is not None  # a decided change was made
    body.update(action=live.change.side, quantity=live.change.quantity)
    if result.exit_legs:
        body["exited_brackets"] = [o.pk for o in result.bracket_orders]
    # What the exits refused left: protected again at once, or not (square off by hand).
    protection = result.protection.words
    if result.placement is not None:
        answer = _placed_answer(result.placement, order)
        answer.body.update(body)
        if result.errors:  # the order was placed, part of the exit was not
            answer.body["errors"] = result.errors + protection
        return answer
    primary = result.primary_order
    if result.nothing_sent:
        # No exit reached the broker: the same alert sent again reads the position afresh.
        answer = _error_answer(
            503,
            "The exit was not sent to the broker, nothing was placed: "
            + "; ".join(result.errors)
            + ". Send the alert again.",
            BROKER_UNAVAILABLE,
            Outcome.NOT_SENT,
            {"sent": False, "retryable": True},
            order_id=primary.pk if primary else None,
            **body,
        )
        answer.headers["Retry-After"] = "1"
        return answer
    if result.errors:
        return _error_answer(
            422,
            "The broker rejected the exit: "
            + "; ".join(result.errors)
            + "".join(f". {words}" for words in protection),
            BROKER_REJECTED,
            Outcome.REJECTED,
            order_id=primary.pk if primary else None,
            **body,
        )
    assert primary is not None  # something was sent, without errors
    body.update(order_id=primary.pk, order_status=primary.status, outcome=Outcome.PLACED)
    if result.protection.sized_words:
        body["detail"] = result.protection.sized_words
    return AlertAnswer(status=201, body=body, outcome=Outcome.PLACED)


def _placed_answer(result: PlacementResult, order: AlertOrder) -> AlertAnswer:
    placed = result.order
    body = {
        "order_id": placed.pk,
        "order_status": placed.status,
        "kind": placed.kind,
        "alert_id": order.alert_id,
    }
    # What every refusal of a stored order names.
    about = {"order_id": placed.pk, "order_status": placed.status, "alert_id": order.alert_id}
    if result.outcome == OUTCOME_REPLAYED:
        body["outcome"] = Outcome.DUPLICATE
        body["detail"] = "This alert id was placed before; the first order is answered."
        return AlertAnswer(status=200, body=body, outcome=Outcome.DUPLICATE)
    if result.outcome == OUTCOME_NOT_SENT and result.send is not None:
        # Nothing reached the broker: the same alert (same id) may be sent again and places
        # the order once (its key was released).
        send = result.send
        details = {**not_sent_details(send), "reject_reason": send.rejected_reason}
        if send.trading_locked:
            return _error_answer(
                409,
                TradingLocked.default_message,
                TRADING_LOCKED,
                Outcome.REFUSED,
                details,
                **about,
            )
        answer = _error_answer(
            503,
            "The order was not sent to the broker, nothing was placed: "
            f"{send.rejected_reason.removeprefix('not sent: ')}. Send the alert again.",
            BROKER_UNAVAILABLE,
            Outcome.NOT_SENT,
            details,
            **about,
        )
        answer.headers["Retry-After"] = str(details.get("retry_after", 1))
        return answer
    if result.outcome == OUTCOME_REJECTED:
        reason = result.reject_reason
        return _error_answer(
            422,
            f"The broker rejected the order: {reason}",
            BROKER_REJECTED,
            Outcome.REJECTED,
            {"reject_reason": reason},
            **about,
        )
    if result.outcome == OUTCOME_UNKNOWN:
        body["outcome"] = Outcome.PENDING
        body["detail"] = (
            "The broker did not answer; the order is stored and will be settled from the "
            "broker's order book. It is never sent twice."
        )
        return AlertAnswer(status=202, body=body, outcome=Outcome.PENDING)
    body["outcome"] = Outcome.PLACED
    return AlertAnswer(status=201, body=body, outcome=Outcome.PLACED)
