"""Rejected orders: archive them (step 7), stage (step 8) and re-place (step 9) the ones a
strategy allows to be regenerated (SPEC 8, 12).

Rejected orders are never deleted: archiving sets `archived_at` and writes an OrderEvent.
Only the current trading day's orders are staged, each at most once; the order it is
re-placed as carries `regenerated_from` and `regeneration_count + 1`, so if that one is
rejected too it is regenerated in turn until the strategy's `max_regenerations`. A staged row whose placement
fails is marked FAILED with the reason and not retried (a retry every minute would repeat
the same failure); a placement the broker rejects is a PLACED row whose new order is
rejected, which the next cycles archive and regenerate under the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from accounts.models import EntryRegeneratePermission
from orders.domain.vocabulary import EventKind
from orders.models import Order, OrderLeg, RegenerationStage
from orders.services.audit import record_change
from orders.services.broker_calls import NOT_SENT_PREFIX
from orders.services.placement import place_batch, place_single_order
from orders.services.sync import MONITORING_ACTOR
from orders.validation import BracketOrderRequest, SingleOrderRequest, TargetSpec
from trading_site.core.errors import DomainError
from trading_site.core.market_hours import trading_day_start
from trading_site.core.prepared import PreparedRows

# Orders a client placed (API, web, an alert webhook, the OpenAlgo API) and was answered for.
CLIENT_SOURCES = (
    Order.Source.MANUAL,
    Order.Source.ALGO,
    Order.Source.BATCH,
    Order.Source.ALERT,
    Order.Source.OPENALGO,
)


class _Id(NamedTuple):
    id: int


# Read by every user's every cycle: compiled once (`PreparedRows`).
_REJECTED_UNARCHIVED = PreparedRows(
    _Id,
    lambda *, user_id: (
        Order.objects.filter(user_id=user_id, status=Order.Status.REJECTED, archived_at=None)
        .order_by("id")
        .values_list("id")
    ),
)
# The strategies of the user's enabled permission that are the user's own and allow
# regeneration: one read through the permission's strategy links.
_REGENERATION_STRATEGIES = PreparedRows(
    _Id,
    lambda *, user_id: (
        EntryRegeneratePermission.strategies.through.objects.filter(
            entryregeneratepermission__user_id=user_id,
            entryregeneratepermission__enabled=True,
            strategy__user_id=user_id,
            strategy__allow_regeneration=True,
        )
        .order_by("strategy_id")
        .values_list("strategy_id")
    ),
)


def archive_rejected_orders(*, user_id: int) -> list[int]:
    """Archive the user's rejected, not yet archived orders. Returns their ids."""
    archived: list[int] = []
    for (order_id,) in _REJECTED_UNARCHIVED(user_id=user_id):
        with transaction.atomic():
            order = (
                Order.objects.select_for_update()
                .filter(pk=order_id, archived_at=None, status=Order.Status.REJECTED)
                .first()
            )
            if order is None:  # archived meanwhile by a concurrent caller
                continue
            order.archived_at = timezone.now()
            order.save(update_fields=["archived_at", "updated_at"])
            record_change(
                order=order,
                kind=EventKind.ARCHIVED,
                actor=MONITORING_ACTOR,
                message="rejected order archived",
                before={"archived_at": None},
                after={"archived_at": order.archived_at.isoformat()},
                notify={"archived_at": order.archived_at.isoformat()},
            )
            archived.append(order.pk)
    return archived


def regeneration_strategy_ids(*, user_id: int) -> list[int]:
    """Strategies whose rejected orders may be regenerated: the user's permission is enabled,
    covers them, and the strategy itself allows regeneration. Empty means step 8 is skipped."""
    return [row.id for row in _REGENERATION_STRATEGIES(user_id=user_id)]


def regeneration_permitted(*, user_id: int) -> bool:
    return bool(regeneration_strategy_ids(user_id=user_id))


def stage_regenerations(*, user_id: int, cycle_key: str) -> list[RegenerationStage]:
    """Stage the user's archived rejected orders of permitted strategies under their limit,
    that were never staged before. Idempotent per (order, cycle)."""
    strategy_ids = regeneration_strategy_ids(user_id=user_id)
    if not strategy_ids:
        return []
    already_staged = RegenerationStage.objects.filter(source_order=OuterRef("pk"))
    # An order a client placed that never reached the broker was answered "not sent, send
    # it again": the client re-places it, so regenerating it too would place it twice.
    not_sent_to_a_client = OrderLeg.objects.filter(
        order=OuterRef("pk"),
        role=OrderLeg.Role.ENTRY,
        reject_reason__startswith=NOT_SENT_PREFIX,
    )
    candidates = (
        Order.objects.filter(
            user_id=user_id,
            status=Order.Status.REJECTED,
            archived_at__isnull=False,
            strategy_id__in=strategy_ids,
            regeneration_count__lt=F("strategy__max_regenerations"),
            account__is_active=True,
            # The day's own rejections only: an entry of an earlier day, at that day's
            # prices, is not an order the trader asked for today.
            created_at__gte=trading_day_start(),
        )
        .exclude(Exists(already_staged))
        .exclude(Exists(not_sent_to_a_client), source__in=CLIENT_SOURCES)
        .order_by("id")
    )
    staged: list[RegenerationStage] = []
    for order in candidates:
        try:
            with transaction.atomic():
                stage, _ = RegenerationStage.objects.get_or_create(
                    source_order=order, cycle_key=cycle_key
                )
        except IntegrityError:  # a concurrent duplicate of this cycle staged it
            stage = RegenerationStage.objects.get(source_order=order, cycle_key=cycle_key)
        staged.append(stage)
    return staged


@dataclass
class RegenerationResult:
    placed: list[int] = field(default_factory=list)  # new order ids
    errors: list[str] = field(default_factory=list)


def _regeneration_key(order: Order) -> str:
    """The idempotency key of an order's regeneration: placing it twice (a crash between
    the broker call and the stage mark, a redelivered task) returns the first order."""
    return f"regen-{order.pk}"


def _lots(quantity: int, lot_size: int) -> int:
    return quantity // max(1, lot_size)


def _bracket_request(order: Order) -> BracketOrderRequest:
    lot_size = order.instrument.lot_size
    return BracketOrderRequest(
        account_id=order.account_id,
        no_of_lots=_lots(order.quantity, lot_size),
        entry_price=order.limit_price,
        entry_stop_price=order.stop_price,
        sl_price=order.sl_price,
        sl_stop_price=order.sl_stop_price,
        order_side=order.side,
        product_type=order.product_type,
        trading_symbol=order.symbol,
        exchange_token=order.exchange_instrument_id,
        exchange_segment=order.exchange_segment,
        targets=[
            TargetSpec(price=Decimal(str(t["price"])), lots=_lots(int(t["quantity"]), lot_size))
            for t in order.targets or []
        ],
        strategy_name=order.strategy.name if order.strategy else "",
        client_order_id=_regeneration_key(order),
        external_id=_regeneration_key(order),
        regenerated_from_id=order.pk,
    )


def _place_single_again(order: Order) -> tuple[int, str]:
    """A rejected single order goes through the single path, then is linked to its source."""

    request = SingleOrderRequest(
        account_id=order.account_id,
        order_side=order.side,
        order_type=order.order_type,
        order_quantity=order.quantity,
        product_type=order.product_type,
        exchange_instrument_id=order.exchange_instrument_id,
        exchange_segment=order.exchange_segment,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        strategy_name=order.strategy.name if order.strategy else "",
        client_order_id=_regeneration_key(order),
        external_id=_regeneration_key(order),
    )
    result = place_single_order(
        user=order.user, request=request, source=Order.Source.REGENERATED, actor=MONITORING_ACTOR
    )
    Order.objects.filter(pk=result.order.pk, regenerated_from=None).update(
        regenerated_from=order, regeneration_count=order.regeneration_count + 1
    )
    return result.order.pk, ""


def place_regenerations(*, user_id: int) -> RegenerationResult:
    """Place every STAGED row of the user, brackets through the batch path (one batch per
    account), marking each row PLACED (with the new order) or FAILED (with the reason)."""

    result = RegenerationResult()
    stages = list(
        RegenerationStage.objects.filter(
            source_order__user_id=user_id, status=RegenerationStage.Status.STAGED
        )
        .select_related(
            "source_order",
            "source_order__user",
            "source_order__instrument",
            "source_order__strategy",
        )
        .order_by("id")
    )
    brackets: dict[int, list[RegenerationStage]] = {}
    for stage in stages:
        source = stage.source_order
        if source.kind == Order.Kind.BRACKET:
            brackets.setdefault(source.account_id, []).append(stage)
            continue
        try:
            new_order_id, _ = _place_single_again(source)
            _mark(stage, status=RegenerationStage.Status.PLACED, new_order_id=new_order_id)
            result.placed.append(new_order_id)
        except DomainError as exc:
            _fail(stage, exc.message, result)
    for account_id, account_stages in brackets.items():
        user = account_stages[0].source_order.user
        try:
            outcomes = place_batch(
                user=user,
                account_id=account_id,
                items=[_bracket_request(stage.source_order) for stage in account_stages],
                source=Order.Source.REGENERATED,
                actor=MONITORING_ACTOR,
            )
        except DomainError as exc:  # the whole batch refused (e.g. the account was deactivated)
            for stage in account_stages:
                _fail(stage, exc.message, result)
            continue
        for stage, outcome in zip(account_stages, outcomes, strict=True):
            if outcome.order_id is not None:
                # A broker rejection still made an order: the next cycles archive it and
                # regenerate it in turn, under the strategy's limit.
                _mark(stage, status=RegenerationStage.Status.PLACED, new_order_id=outcome.order_id)
                result.placed.append(outcome.order_id)
                if outcome.status != "success":
                    result.errors.append(
                        f"regenerated order {outcome.order_id} (from {stage.source_order_id}) "
                        f"rejected: {outcome.error}"
                    )
            else:
                _fail(stage, outcome.error or "not placed", result)
    return result


def _fail(stage: RegenerationStage, error: str, result: RegenerationResult) -> None:
    _mark(stage, status=RegenerationStage.Status.FAILED, error=error)
    result.errors.append(f"regenerating order {stage.source_order_id} failed: {error}")


def _mark(
    stage: RegenerationStage, *, status: str, new_order_id: int | None = None, error: str = ""
) -> None:
    stage.status = status
    stage.new_order_id = new_order_id
    stage.error = error[:2000]
    stage.save(update_fields=["status", "new_order", "error", "updated_at"])
