"""Placing orders: single, bracket and batch, all through one write-ahead path.

1. validate (nothing written on failure);
2. one transaction: take unique identifiers from the account's daily counter, insert the
   Order(s) as PENDING and their entry legs as PENDING_SUBMIT, audit, commit;
3. POST each entry leg to the broker once (never retried);
4. one transaction: write the broker's answers (OPEN with the broker id, REJECTED with the
   reason, or left PENDING_SUBMIT when the outcome is unknown), audit, notify on commit.

An order that provably never reached the broker (our outbound limit, no broker session, no
connection, the account locked meanwhile) is REJECTED "not sent" and gives its
Idempotency-Key back (broker_calls): the same key places it again, once. A locked account
(the kill switch: orders.services.trading_lock) refuses new orders before step 2, and step 2
itself re-checks under the account's row lock.

A bracket's stop-loss and targets are stored on the Order and sent later, for the filled
quantity, by `place_protective_legs` (monitoring step 4).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date
from decimal import Decimal
from typing import Any, cast

import orjson
from django.db import IntegrityError, transaction

from accounts.models import BrokerAccount, Strategy, User
from orders.domain.identifiers import MAX_EXTERNAL_ID_LENGTH
from orders.domain.vocabulary import EventKind
from orders.models import FairPrice, Instrument, Order, OrderLeg, OrderType
from orders.services.audit import new_event, record_changes, user_actor
from orders.services.broker_calls import (
    OUTCOME_ACCEPTED,
    OUTCOME_NOT_SENT,
    OUTCOME_REJECTED,
    OUTCOME_UNKNOWN,
    SendOutcome,
    count_metric,
    submit_legs,
)
from orders.services.identifiers import ensure_daily_counter, next_unique_identifiers
from orders.services.lifecycle import INITIAL_STATUS
from orders.services.trading_lock import ensure_trading_allowed, refuse_if_locked
from orders.validation import (
    BracketOrderRequest,
    InstrumentResolver,
    SingleOrderRequest,
    ValidatedBracket,
    ValidatedSingle,
    resolve_account,
    validate_bracket_order,
    validate_single_order,
)
from trading_site.core.bulk_rows import insert_rows, new_row
from trading_site.core.errors import (
    BROKER_UNAVAILABLE,
    TRADING_LOCKED,
    Conflict,
    DomainError,
    ValidationFailed,
)
from trading_site.core.market_hours import trading_date

MAX_BATCH_ITEMS = 500

OUTCOME_REPLAYED = "replayed"


@dataclass
class PlacementResult:
    order: Order
    created: bool
    outcome: str  # accepted | rejected | not_sent | unknown | replayed
    # The broker call's answer (None for a replay).
    send: SendOutcome | None = None

    @property
    def reject_reason(self) -> str:
        entry = self.order.legs.order_by("id").first()
        return entry.reject_reason if entry else ""


@dataclass
class BatchItemError:
    """An item that could not even be parsed; passed through to its result."""

    external_id: str
    message: str
    details: dict = field(default_factory=dict)


@dataclass
class BatchItemResult:
    external_id: str
    status: str  # "success" | "error"
    order_id: int | None = None
    order_status: str | None = None
    error: str | None = None
    code: str | None = None
    details: dict | None = None

    def as_dict(self) -> dict:
        """The answer's fields, `details` as given (asdict would deep-copy it, 500 times)."""
        return {name: getattr(self, name) for name in _RESULT_FIELDS}


_RESULT_FIELDS = tuple(item.name for item in fields(BatchItemResult))


@dataclass
class OrderPlan:
    """A validated order ready to be written ahead."""

    user_id: int
    account: BrokerAccount
    instrument: Instrument
    strategy: Strategy | None
    kind: str
    source: str
    side: str
    product_type: str
    quantity: int
    order_type: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    sl_price: Decimal | None = None
    sl_stop_price: Decimal | None = None
    targets: list = field(default_factory=list)
    external_id: str = ""
    # Set for a client's own external_id: unique per account and trading day.
    external_id_day: date | None = None
    client_order_id: str | None = None
    fingerprint: str = ""
    regenerated_from_id: int | None = None
    regeneration_count: int = 0
    leg_role: str = OrderLeg.Role.ENTRY


# ---- idempotency ----------------------------------------------------------------------------


def request_fingerprint(request: SingleOrderRequest | BracketOrderRequest) -> str:
    """sha256 of the canonical request (key excluded): same order asked again = same hash."""
    try:
        body = _fields_of(request, plain=True)
    except _NotPlain:
        body, plain = _fields_of(request), False
    else:
        plain = True
    body.pop("client_order_id", None)
    body["__kind__"] = type(request).__name__
    canonical = _orjson_canonical(body) if plain else None
    if canonical is None:
        canonical = json.dumps(
            body, sort_keys=True, default=_canonical, separators=(",", ":")
        ).encode()
    return hashlib.sha256(canonical).hexdigest()


def _orjson_canonical(body: dict) -> bytes | None:
    """The canonical JSON of a plain body (`_fields_of(..., plain=True)`: texts, ints,
    booleans and nulls in dicts and lists) written by orjson, where that is byte for byte
    what `json.dumps(body, sort_keys=True, separators=(",", ":"))` writes: ASCII without
    DEL (the standard library escapes both, orjson does not), every integer within 64 bits
    and every key a text. None otherwise: the standard library writes it. A batch
    fingerprints 500 requests; orjson takes a fraction of the standard library's CPU."""
    try:
        text = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, a key that is not a text
        return None
    if not text.isascii() or b"\x7f" in text:
        return None
    return text


class _NotPlain(Exception):
    """A value `_fields_of(..., plain=True)` does not take (see `_orjson_canonical`)."""


def _fields_of(value: Any, *, plain: bool = False) -> Any:
    """`asdict`'s shape (dataclasses in lists as dicts) without its deep copies: the
    canonical JSON, and so every stored fingerprint, stays the same at a fraction of the
    CPU (a batch takes 500). A dataclass's scalar fields are taken in its own loop (a
    request's dozen and more), only its lists and nested dataclasses recursed into. With
    `plain`, every value left is a str, int, bool or None exactly (a Decimal as its
    canonical text, a str subclass as its text): anything else (a float, a date, an int
    subclass) raises `_NotPlain`."""
    kind = type(value)
    if kind is Decimal:
        # Its canonical text here: json.dumps then needs no Python callback per price.
        return _canonical(value)
    if kind in _PLAIN_SCALARS:
        return value
    names = _dataclass_field_names(cast(Hashable, kind))
    if names is not None:
        shaped = {}
        for name in names:
            item = getattr(value, name)
            item_kind = type(item)
            if item_kind is Decimal:
                shaped[name] = format(item.normalize(), "f")  # _canonical
            elif item_kind in _PLAIN_SCALARS:
                shaped[name] = item
            else:
                shaped[name] = _fields_of(item, plain=plain)
        return shaped
    if isinstance(value, list | tuple):
        return [_fields_of(item, plain=plain) for item in value]
    if isinstance(value, dict):
        return {key: _fields_of(item, plain=plain) for key, item in value.items()}
    if plain:
        if isinstance(value, str):
            # A subclass (a choices member): the standard library writes its text.
            return str.__str__(value)
        raise _NotPlain
    return value


_PLAIN_SCALARS = frozenset({str, int, bool, type(None)})


@functools.cache
def _dataclass_field_names(kind: Hashable) -> tuple[str, ...] | None:
    """A dataclass's field names (asdict's order), None for any other type."""
    if isinstance(kind, type) and is_dataclass(kind):
        return tuple(item.name for item in fields(kind))
    return None


def _canonical(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return str(value)


def _check_same_request(existing: Order, *, key: str, fingerprint: str) -> None:
    if existing.request_fingerprint != fingerprint:
        raise Conflict(
            "This idempotency key was already used for a different order",
            details={"client_order_id": key, "order_id": existing.pk},
        )


class DuplicateExternalId(Conflict):
    """The client's external_id was already used on this account this trading day."""

    def __init__(self, *, external_id: str, order_id: int):
        super().__init__(
            f"external_id {external_id!r} was already used on this account today "
            f"(order {order_id}); nothing was placed",
            details={
                "external_id": [f"already used today by order {order_id}"],
                "order_id": order_id,
            },
        )


def client_external_id_day(external_id: str, *, day: date | None = None) -> date | None:
    """The trading day a client's own external_id is held for (None: it has none): `day`
    when the caller read it already (a batch, once), else today's."""
    if not external_id:
        return None
    return day or trading_date()


def ensure_external_id_free(*, user: User, plan: OrderPlan) -> PlacementResult | None:
    """DuplicateExternalId when the plan's external_id is taken today (the database's
    unique constraint settles a race between two requests), unless it is taken by this very
    request (its Idempotency-Key, placed a moment ago by a concurrent copy): that order's
    replay."""
    if plan.external_id_day is None:
        return None
    holder = (
        Order.objects.filter(
            account_id=plan.account.pk,
            external_id_day=plan.external_id_day,
            external_id=plan.external_id[:MAX_EXTERNAL_ID_LENGTH],
        )
        .values_list("pk", "client_order_id")
        .first()
    )
    if holder is None:
        return None
    if plan.client_order_id and holder[1] == plan.client_order_id:
        return _replay(user=user, key=plan.client_order_id, fingerprint=plan.fingerprint)
    raise DuplicateExternalId(external_id=plan.external_id, order_id=holder[0])


def _replay(*, user: User, key: str, fingerprint: str) -> PlacementResult | None:
    existing = Order.objects.filter(user=user, client_order_id=key).first()
    if existing is None:
        return None
    _check_same_request(existing, key=key, fingerprint=fingerprint)
    return PlacementResult(order=existing, created=False, outcome=OUTCOME_REPLAYED)


# ---- the write-ahead path ---------------------------------------------------------------------


def _entry_leg_fields(plan: OrderPlan) -> dict:
    return {
        "role": plan.leg_role,
        "order_type": plan.order_type,
        "side": plan.side,
        "quantity": plan.quantity,
        "limit_price": plan.limit_price,
        "stop_price": plan.stop_price,
    }


def write_ahead(*, plans: list[OrderPlan], actor: str) -> list[Order]:
    """Insert the orders (PENDING) and entry legs (PENDING_SUBMIT) of one account, with
    their identifiers and audit events, in one transaction. Returns the orders, each with
    `entry_leg` set. Raises IntegrityError when a client_order_id is taken."""
    if not plans:
        return []
    account = plans[0].account
    ensure_daily_counter(account_id=account.pk)
    with transaction.atomic():
        if any(plan.leg_role != OrderLeg.Role.EXIT for plan in plans):
            # A new position: not on a locked account (exits, the kill switch's own, go).
            refuse_if_locked(account.pk)
        identifiers = next_unique_identifiers(account_id=account.pk, count=len(plans))
        orders = [
            new_row(
                Order,
                user_id=plan.user_id,
                account=account,
                instrument=plan.instrument,
                symbol=plan.instrument.trading_symbol,
                exchange_segment=plan.instrument.exchange_segment,
                exchange_instrument_id=plan.instrument.exchange_instrument_id,
                side=plan.side,
                product_type=plan.product_type,
                quantity=plan.quantity,
                kind=plan.kind,
                source=plan.source,
                strategy=plan.strategy,
                external_id=plan.external_id[:MAX_EXTERNAL_ID_LENGTH],
                external_id_day=plan.external_id_day,
                client_order_id=plan.client_order_id or None,
                request_fingerprint=plan.fingerprint,
                status=Order.Status.PENDING,
                order_type=plan.order_type,
                limit_price=plan.limit_price,
                stop_price=plan.stop_price,
                sl_price=plan.sl_price,
                sl_stop_price=plan.sl_stop_price,
                targets=plan.targets,
                regenerated_from_id=plan.regenerated_from_id,
                regeneration_count=plan.regeneration_count,
            )
            for plan in plans
        ]
        _show_fair_prices(orders)
        insert_rows(Order, orders)
        legs = [
            new_row(
                OrderLeg,
                order=order,
                account=account,
                unique_identifier=identifier,
                status=INITIAL_STATUS,
                **_entry_leg_fields(plan),
            )
            for order, plan, identifier in zip(orders, plans, identifiers, strict=True)
        ]
        insert_rows(OrderLeg, legs)
        # Every new order and leg starts so: one dict for all, converted to JSON once.
        created = {"order": {"status": Order.Status.PENDING}, "leg": {"status": INITIAL_STATUS}}
        events = []
        for order, leg in zip(orders, legs, strict=True):
            order.entry_leg = leg
            events.append(
                new_event(
                    order=order,
                    leg=leg,
                    kind=EventKind.ORDER_CREATED,
                    actor=actor,
                    message=f"{order.kind} {order.side} {order.quantity} {order.symbol} "
                    f"({order.source}); entry {leg.unique_identifier} written ahead",
                    after=created,
                )
            )
        record_changes(events)
    return orders


def _show_fair_prices(orders: list[Order]) -> None:
    """The instrument's current fair prices and LTP on each new order, as the monitoring
    sync would copy them: its first run then finds them current and writes nothing. The
    instruments validation read came with their prices (a moment ago); others are read."""
    by_instrument: dict[int, tuple | None] = {}
    for order in orders:
        instrument = order.instrument
        if Instrument.fair_price.is_cached(instrument):
            fair = getattr(instrument, "fair_price", None)
            by_instrument[instrument.pk] = None if fair is None else _fair_row(fair)
    missing = {order.instrument_id for order in orders} - set(by_instrument)
    if missing:
        for fair in FairPrice.objects.filter(instrument_id__in=missing):
            by_instrument[fair.instrument_id] = _fair_row(fair)
    for order in orders:
        prices = by_instrument.get(order.instrument_id)
        if prices is not None:
            order.buy_fair_price, order.sell_fair_price, order.avg_fair_price, order.ltp = prices


def _fair_row(fair: FairPrice) -> tuple:
    return (
        fair.buy_fair_price,
        fair.sell_fair_price,
        fair.avg_fair_price,
        fair.last_traded_price,
    )


def submit_and_record(
    *, account: BrokerAccount, orders: list[Order], actor: str
) -> list[SendOutcome]:
    """Send each new order's entry leg once (none once the account's trading is locked),
    then write the answers (broker_calls). Returns each order's outcome."""
    outcomes = submit_legs(
        account=account,
        pairs=[(order.entry_leg, order) for order in orders],
        actor=actor,
        new_orders=True,
        unless_trading_locked=True,
    )
    results = [outcome.result for outcome in outcomes]
    accepted = results.count(OUTCOME_ACCEPTED) + results.count(OUTCOME_UNKNOWN)
    rejected = results.count(OUTCOME_REJECTED) + results.count(OUTCOME_NOT_SENT)
    if accepted:
        count_metric("orders_placed_total", accepted, broker=account.broker)
    if rejected:
        count_metric("orders_rejected_total", rejected, broker=account.broker)
    return outcomes


# ---- single and bracket -----------------------------------------------------------------------


def _place_one(*, user: User, plan: OrderPlan, actor: str) -> PlacementResult:
    if replay := ensure_external_id_free(user=user, plan=plan):
        return replay
    try:
        [order] = write_ahead(plans=[plan], actor=actor)
    except IntegrityError:
        # Someone placed the same key a moment ago (20 identical requests at once): the
        # unique constraint chose the winner; everyone else answers with its order.
        if plan.client_order_id:
            replay = _replay(user=user, key=plan.client_order_id, fingerprint=plan.fingerprint)
            if replay is not None:
                return replay
        # The same external_id placed a moment ago.
        if replay := ensure_external_id_free(user=user, plan=plan):
            return replay
        raise
    [outcome] = submit_and_record(account=plan.account, orders=[order], actor=actor)
    return PlacementResult(order=order, created=True, outcome=outcome.result, send=outcome)


def _replay_of_request(
    *, user: User, request: SingleOrderRequest | BracketOrderRequest
) -> tuple[str, PlacementResult | None]:
    """The request's fingerprint, and the order already placed under its client_order_id
    (None when it has no key or the key is new)."""
    fingerprint = request_fingerprint(request)
    key = request.client_order_id or None
    return fingerprint, (_replay(user=user, key=key, fingerprint=fingerprint) if key else None)


def _order_plan(
    *,
    user: User,
    request: SingleOrderRequest | BracketOrderRequest,
    valid: ValidatedSingle | ValidatedBracket,
    source: str,
    fingerprint: str,
    regeneration_counts: dict[int, int] | None = None,
    day: date | None = None,
) -> OrderPlan:
    """The plan of a validated request. Who, what, how many and the client's identifiers
    are taken the same way for every kind; then the kind's own prices (a bracket's entry,
    stop-loss, targets and regeneration). `regeneration_counts` and `day` (the trading day
    an external_id is held for): place_batch's, read once for the whole batch; read here
    for a lone order."""
    kind_fields: dict[str, Any]
    if isinstance(valid, ValidatedSingle):
        kind_fields = dict(
            kind=Order.Kind.SINGLE,
            order_type=valid.order_type,
            limit_price=valid.limit_price,
            stop_price=valid.stop_price,
        )
    else:
        assert isinstance(request, BracketOrderRequest)  # what validated as a bracket
        regenerated_from = request.regenerated_from_id
        if regeneration_counts is None:
            regeneration_counts = _regeneration_counts(user, [request])
        kind_fields = dict(
            kind=Order.Kind.BRACKET,
            order_type=valid.entry_type,
            limit_price=valid.entry_price,
            stop_price=valid.entry_stop_price if valid.entry_type == OrderType.STOPLIMIT else None,
            sl_price=valid.sl_price,
            sl_stop_price=valid.sl_stop_price,
            targets=valid.targets,
            regenerated_from_id=regenerated_from,
            regeneration_count=(
                regeneration_counts.get(regenerated_from, 0) + 1 if regenerated_from else 0
            ),
        )
    return OrderPlan(
        user_id=user.pk,
        account=valid.account,
        instrument=valid.instrument,
        strategy=valid.strategy,
        source=source,
        side=valid.side,
        product_type=valid.product_type,
        quantity=valid.quantity,
        external_id=request.external_id,
        external_id_day=client_external_id_day(request.external_id, day=day),
        client_order_id=request.client_order_id or None,
        fingerprint=fingerprint,
        **kind_fields,
    )


def _regeneration_counts(user: User, requests: Sequence[BracketOrderRequest]) -> dict[int, int]:
    ids = {r.regenerated_from_id for r in requests if r.regenerated_from_id}
    if not ids:
        return {}
    return dict(Order.objects.filter(user=user, pk__in=ids).values_list("pk", "regeneration_count"))


def _place_request(
    *,
    user: User,
    request: SingleOrderRequest | BracketOrderRequest,
    source: str,
    actor: str | None,
) -> PlacementResult:
    """One order from one request: the order its client_order_id placed already (nothing
    validated again), or else the request validated, its account's trading allowed, and
    its plan written ahead and sent."""
    actor = actor or user_actor(user)
    fingerprint, replay = _replay_of_request(user=user, request=request)
    if replay:
        return replay
    valid: ValidatedSingle | ValidatedBracket
    if isinstance(request, SingleOrderRequest):
        valid = validate_single_order(user=user, request=request)
    else:
        valid = validate_bracket_order(user=user, request=request)
    ensure_trading_allowed(valid.account)
    plan = _order_plan(
        user=user, request=request, valid=valid, source=source, fingerprint=fingerprint
    )
    return _place_one(user=user, plan=plan, actor=actor)


def place_single_order(
    *,
    user: User,
    request: SingleOrderRequest,
    source: str = Order.Source.MANUAL,
    actor: str | None = None,
) -> PlacementResult:
    """POST /api/orders and scheduled single orders."""
    return _place_request(user=user, request=request, source=source, actor=actor)


def place_bracket_order(
    *,
    user: User,
    request: BracketOrderRequest,
    source: str = Order.Source.ALGO,
    actor: str | None = None,
) -> PlacementResult:
    """POST /api/algo-orders and scheduled brackets: the entry goes to the broker now."""
    return _place_request(user=user, request=request, source=source, actor=actor)


# ---- batch --------------------------------------------------------------------------------------


def place_batch(
    *,
    user: User,
    account_id: int,
    items: Sequence[BracketOrderRequest | BatchItemError],
    source: str = Order.Source.BATCH,
    actor: str | None = None,
) -> list[BatchItemResult]:
    """Up to 500 brackets for one account. Each item is validated and placed on its own
    (a bad item never blocks the rest); the results follow the input order. The valid
    items are written ahead together and their entries sent concurrently."""
    if len(items) > MAX_BATCH_ITEMS:
        raise ValidationFailed(
            f"a batch holds at most {MAX_BATCH_ITEMS} orders",
            details={"orders": [f"{len(items)} given; at most {MAX_BATCH_ITEMS}"]},
        )
    actor = actor or user_actor(user)
    account = resolve_account(user=user, account_id=account_id)
    ensure_trading_allowed(account)  # the whole batch: nothing written
    resolver = InstrumentResolver()
    results: list[BatchItemResult | None] = [None] * len(items)
    plans: list[tuple[int, OrderPlan]] = []
    keyed: list[tuple[int, OrderPlan]] = []
    requests = [item for item in items if isinstance(item, BracketOrderRequest)]
    counts = _regeneration_counts(user, requests)
    today = trading_date()  # one trading day for the whole batch's external_ids
    keys = [r.client_order_id for r in requests if r.client_order_id]
    existing = (
        {o.client_order_id: o for o in Order.objects.filter(user=user, client_order_id__in=keys)}
        if keys
        else {}
    )
    for index, item in enumerate(items):
        if isinstance(item, BatchItemError):
            results[index] = BatchItemResult(
                external_id=item.external_id,
                status="error",
                error=item.message,
                code="VALIDATION_ERROR",
                details=item.details,
            )
            continue
        item.account_id = account.pk
        fingerprint = request_fingerprint(item)
        try:
            if item.client_order_id and item.client_order_id in existing:
                found = existing[item.client_order_id]
                _check_same_request(found, key=item.client_order_id, fingerprint=fingerprint)
                results[index] = _success(item.external_id, found)
                continue
            valid = validate_bracket_order(
                user=user, request=item, account=account, resolver=resolver
            )
        except DomainError as exc:
            results[index] = _failure(item.external_id, exc)
            continue
        plan = _order_plan(
            user=user,
            request=item,
            valid=valid,
            source=source,
            fingerprint=fingerprint,
            regeneration_counts=counts,
            day=today,
        )
        (keyed if plan.client_order_id else plans).append((index, plan))

    plans = _external_ids_free(plans, results=results, items=items)
    placed: list[tuple[int, Order]] = []
    if plans:
        try:
            orders = write_ahead(plans=[plan for _, plan in plans], actor=actor)
        except IntegrityError:
            # An external_id taken meanwhile by another request: one by one, so only that
            # item fails.
            keyed = sorted(plans + keyed, key=lambda pair: pair[0])
        else:
            placed.extend(zip([index for index, _ in plans], orders, strict=True))
    for index, plan in keyed:
        # Keyed items go one by one so a taken key fails only its own item.
        try:
            if replay := ensure_external_id_free(user=user, plan=plan):
                results[index] = _success(items[index].external_id, replay.order)
                continue
            try:
                [order] = write_ahead(plans=[plan], actor=actor)
                placed.append((index, order))
            except IntegrityError:
                # Taken meanwhile, or by an earlier item of this batch. A Conflict raised here
                # must stay this item's error: the orders written ahead above are still to
                # be sent below.
                replay = (
                    _replay(user=user, key=plan.client_order_id, fingerprint=plan.fingerprint)
                    if plan.client_order_id
                    else None
                )
                if replay is None:
                    replay = ensure_external_id_free(user=user, plan=plan)
                if replay is None:
                    raise
                results[index] = _success(items[index].external_id, replay.order)
        except DomainError as exc:
            results[index] = _failure(items[index].external_id, exc)
    if placed:
        outcomes = submit_and_record(
            account=account, orders=[order for _, order in placed], actor=actor
        )
        for (index, order), outcome in zip(placed, outcomes, strict=True):
            if outcome.not_sent or outcome.result == OUTCOME_REJECTED:
                results[index] = _refused(items[index].external_id, order, outcome)
            else:
                results[index] = _success(items[index].external_id, order)
    return cast(list[BatchItemResult], results)  # every index was answered above


def _external_ids_free(
    plans: list[tuple[int, OrderPlan]], *, results: list, items: Sequence
) -> list[tuple[int, OrderPlan]]:
    """The unkeyed plans whose external_id is free today and not repeated by an earlier
    item; the others fail alone (DuplicateExternalId)."""
    wanted = {
        plan.external_id[:MAX_EXTERNAL_ID_LENGTH] for _, plan in plans if plan.external_id_day
    }
    taken: dict[str, int] = {}
    if wanted:
        account_id = plans[0][1].account.pk
        day = next(plan.external_id_day for _, plan in plans if plan.external_id_day)
        taken = dict(
            Order.objects.filter(
                account_id=account_id, external_id_day=day, external_id__in=wanted
            ).values_list("external_id", "pk")
        )
    free = []
    first_in_batch: dict[str, int] = {}
    for index, plan in plans:
        external_id = plan.external_id[:MAX_EXTERNAL_ID_LENGTH]
        if plan.external_id_day is not None:
            holder = taken.get(external_id)
            if holder is None and external_id in first_in_batch:
                results[index] = _failure(
                    items[index].external_id,
                    Conflict(
                        f"external_id {external_id!r} is repeated in this batch (item "
                        f"{first_in_batch[external_id] + 1}); nothing was placed for this item",
                        details={"external_id": ["repeated in this batch"]},
                    ),
                )
                continue
            if holder is not None:
                results[index] = _failure(
                    items[index].external_id,
                    DuplicateExternalId(external_id=external_id, order_id=holder),
                )
                continue
            first_in_batch[external_id] = index
        free.append((index, plan))
    return free


def not_sent_details(outcome: SendOutcome) -> dict:
    """What an answer says of an order that never reached the broker: nothing was sent,
    the same request (and Idempotency-Key) may be sent again, after `retry_after`."""
    details: dict = {"sent": False, "retryable": not outcome.trading_locked}
    if outcome.retry_after is not None and not outcome.trading_locked:
        details["retry_after"] = max(1, math.ceil(outcome.retry_after))
    return details


def _failure(external_id: str, exc: DomainError) -> BatchItemResult:
    return BatchItemResult(
        external_id=external_id,
        status="error",
        error=exc.message,
        code=exc.code,
        details=exc.details,
    )


def _refused(external_id: str, order: Order, outcome: SendOutcome) -> BatchItemResult:
    """An item written ahead whose entry the broker rejected, or that never reached it."""
    if outcome.not_sent:
        code = TRADING_LOCKED if outcome.trading_locked else BROKER_UNAVAILABLE
    else:
        code = "BROKER_REJECTED"
    return BatchItemResult(
        external_id=external_id,
        status="error",
        order_id=order.pk,
        order_status=order.status,
        error=order.entry_leg.reject_reason,
        code=code,
        details=not_sent_details(outcome) if outcome.not_sent else None,
    )


def _success(external_id: str, order: Order) -> BatchItemResult:
    return BatchItemResult(
        external_id=external_id, status="success", order_id=order.pk, order_status=order.status
    )
