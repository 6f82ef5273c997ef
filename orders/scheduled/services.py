"""Scheduled orders: each enabled schedule is placed once per trading day at its time of day
in Asia/Kolkata (SPEC 8), through the ordinary placement services (source SCHEDULED).

Exactly once: the day's `ScheduledOrderRun` (unique per schedule and date) is claimed before
the broker is called, and the order carries the idempotency key `sched-<id>-<date>`, so a
second beat, a redelivered task or two workers racing place it once.

Late starts (decided): a schedule whose time passed while nothing was running is still
placed if it is at most SCHEDULED_ORDER_GRACE_MINUTES late; later than that the day is
recorded as MISSED and nothing is sent (an order meant for 09:30 placed at 14:00 is a
different trade).

Tried again, inside the grace: a day's run left STARTED, because the order provably never
reached the broker (not sent: no broker session, the outbound limit while Redis is down) or
because the worker placing it stopped (claimed more than STALE_CLAIM ago). The next beat
claims it again (compare-and-set on its claim time, so one worker does) and places with the
same key: an order already written under it is answered, never sent twice.

A placement that raised after its order was written (its broker answer not recorded, say)
leaves the run linked to that order, PLACED or REJECTED as the order is, the error kept:
the trader sees it and does not place it again by hand (the sync settles the order). A
schedule of a deactivated account records its day FAILED, once, and stays enabled.
"""

from __future__ import annotations

import logging
from dataclasses import fields
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from accounts.models import BrokerAccount, User
from orders.domain.identifiers import MAX_EXTERNAL_ID_LENGTH
from orders.domain.vocabulary import EventKind
from orders.models import Order, OrderEvent, ScheduledOrder, ScheduledOrderRun
from orders.openalgo.fields import unstorable_text
from orders.services.audit import record_account_event, record_account_setting_saved
from orders.services.placement import (
    OUTCOME_NOT_SENT,
    PlacementResult,
    place_bracket_order,
    place_single_order,
)
from orders.validation import (
    BracketOrderRequest,
    SingleOrderRequest,
    TargetSpec,
    resolve_account,
    validate_bracket_order,
    validate_single_order,
)
from trading_site.core import market_hours
from trading_site.core.errors import DomainError, MarketClosed, ValidationFailed
from trading_site.core.lock_conflicts import is_lock_conflict

logger = logging.getLogger(__name__)

ACTOR = "scheduler"
RunStatus = ScheduledOrderRun.Status
# A run still STARTED this long after its claim lost its worker: the next beat takes it over.
STALE_CLAIM = timedelta(minutes=2)
# The error of a run left STARTED to be tried again at the next beat.
NOT_SENT_RETRY = "not sent, tried again at the next beat: "
# The error of the day's run of a schedule whose account is deactivated (still enabled:
# it places again once the account is active again).
INACTIVE = "not placed: the account is inactive"

_DECIMAL_FIELDS = {
    "limit_price",
    "stop_price",
    "entry_price",
    "entry_stop_price",
    "sl_price",
    "sl_stop_price",
}

_INTEGER_FIELDS = {"order_quantity", "no_of_lots"}
# Passed on as given (the ORM takes 123 or "123"); every other field is text.
_ID_FIELDS = {"exchange_instrument_id", "exchange_token"}
# Text stored on the order as given (the others are looked up or are choices).
_STORED_TEXT_MAX = {"external_id": MAX_EXTERNAL_ID_LENGTH}


class TemplateError(ValueError):
    def __init__(self, details: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in details.items()))
        self.details = details


def _decimal(name: str, value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise TemplateError({name: ["must be a number"]}) from None
    if not number.is_finite():  # NaN would make the price checks raise (a 500)
        raise TemplateError({name: ["must be a number"]})
    return number


def _integer(name: str, value: Any) -> int | None:
    """Whole numbers only (JSON 50 or 50.0): the validators compare them with ints."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TemplateError({name: ["must be an integer"]})
    return value


def _check_text(name: str, value: str) -> None:
    """Text the database cannot take (NUL, a lone surrogate) or whose column is too short
    for it: accepted, it failed the schedule every day at its time."""
    problem = unstorable_text(value)
    limit = _STORED_TEXT_MAX.get(name)
    if problem is None and limit is not None and len(value) > limit:
        problem = f"must be at most {limit} characters"
    if problem is not None:
        raise TemplateError({name: [problem]})


def build_request(
    *, kind: str, account_id: int, template: dict, key: str = ""
) -> SingleOrderRequest | BracketOrderRequest:
    """The placement request a template describes: the fields of POST /api/orders (single)
    or POST /api/algo-orders (bracket; `tp_price` or `targets`)."""

    if not isinstance(template, dict):
        raise TemplateError({"template": ["must be an object"]})
    cls = BracketOrderRequest if kind == Order.Kind.BRACKET else SingleOrderRequest
    allowed = {f.name for f in fields(cls)} - {
        "account_id",
        "client_order_id",
        "targets_field",
        "regenerated_from_id",
        "targets",
    }
    unknown = sorted(set(template) - allowed - {"tp_price", "targets"})
    if unknown:
        raise TemplateError({name: ["unknown field"] for name in unknown})
    values: dict[str, Any] = {}
    for name, value in template.items():
        if name in _DECIMAL_FIELDS:
            values[name] = _decimal(name, value)
        elif name in _INTEGER_FIELDS:
            values[name] = _integer(name, value)
        elif name in allowed:
            if value is not None and name not in _ID_FIELDS and not isinstance(value, str):
                raise TemplateError({name: ["must be a string"]})
            if isinstance(value, str):
                _check_text(name, value)
            values[name] = value
    if cls is BracketOrderRequest:
        targets = []
        given = template.get("targets") or []
        if not isinstance(given, list):  # 5 or true: iterating it was a TypeError (a 500)
            raise TemplateError({"targets": ["must be a list of {price, lots|percent}"]})
        for target in given:
            if not isinstance(target, dict) or "price" not in target:
                raise TemplateError({"targets": ["each target needs a price"]})
            targets.append(
                TargetSpec(
                    # None (a blank price) is reported by placement's validation, as from the API
                    price=_decimal("targets", target["price"]),  # type: ignore[arg-type]
                    lots=_integer("targets", target.get("lots")),
                    percent=_decimal("targets", target.get("percent")),
                )
            )
        if not targets and template.get("tp_price") not in (None, ""):
            targets = [
                TargetSpec(
                    price=_decimal("tp_price", template["tp_price"]),  # type: ignore[arg-type]
                    percent=Decimal("100"),
                )
            ]
        values["targets"] = targets
    try:
        return cls(account_id=account_id, client_order_id=key, **values)
    except TypeError as exc:
        raise TemplateError({"template": [str(exc)]}) from None


def validate_template(*, user: User, kind: str, account_id: int, template: dict) -> None:
    """Raise the API errors placement would raise for this template now (the trading
    window aside: a schedule is usually created while the market is closed)."""

    try:
        request = build_request(kind=kind, account_id=account_id, template=template)
    except TemplateError as exc:
        raise ValidationFailed("Invalid order template", details=exc.details) from None
    try:
        if isinstance(request, BracketOrderRequest):  # kind == BRACKET
            validate_bracket_order(user=user, request=request)
        else:
            validate_single_order(user=user, request=request)
    except MarketClosed:
        pass


def _is_trading_day(day: date) -> bool:
    rules = market_hours.current_rules()
    if rules.always_open:
        return True
    return market_hours.is_trading_day(day, rules, market_hours.holidays_between(day, day))


WEEKDAYS_RULE = "must be a list of days, 0 (Monday) to 6 (Sunday)"


def weekdays_problem(weekdays: Any) -> str | None:
    """Why a schedule's weekdays are not days (None when they are): 5, "0,1", [7] or
    ["mon"], stored through the admin, made the beat raise or never run the schedule."""
    if not isinstance(weekdays, list) or not all(
        type(day) is int and 0 <= day <= 6 for day in weekdays
    ):
        return WEEKDAYS_RULE
    return None


def _runs_today(schedule: ScheduledOrder, day: date) -> bool:
    return not schedule.weekdays or day.weekday() in schedule.weekdays


def _key(schedule: ScheduledOrder, day: date) -> str:
    return f"sched-{schedule.pk}-{day.isoformat()}"


def _place(schedule: ScheduledOrder, day: date) -> PlacementResult:
    request = build_request(
        kind=schedule.kind,
        account_id=schedule.account_id,
        template=schedule.template,
        key=_key(schedule, day),
    )
    if isinstance(request, BracketOrderRequest):  # kind == BRACKET
        return place_bracket_order(
            user=schedule.user, request=request, source=Order.Source.SCHEDULED, actor=ACTOR
        )
    return place_single_order(
        user=schedule.user, request=request, source=Order.Source.SCHEDULED, actor=ACTOR
    )


def _claim(
    schedule: ScheduledOrder, day: date, status: str, error: str = ""
) -> ScheduledOrderRun | None:
    """Today's run of `schedule`, made; None when there is one already, or when the insert
    lost a lock conflict (the schedule's row held by another transaction: a trader's change
    being saved): the next beat claims it then, and the beat's other schedules go on (the
    conflict raised out of the beat, and no later schedule was placed)."""
    try:
        with transaction.atomic():
            return ScheduledOrderRun.objects.create(
                schedule=schedule, trading_date=day, status=status, error=error
            )
    except IntegrityError:
        return None
    except OperationalError as exc:
        if not is_lock_conflict(exc):
            raise
        logger.warning("scheduled order busy: left to the next beat", extra={"id": schedule.pk})
        return None


def _due_filter(local: datetime) -> Q:
    return Q(
        enabled=True,
        time_of_day__lte=local.time().replace(tzinfo=None),
        user__is_active=True,
    )


def _due(local: datetime, today: date) -> list[int]:
    """Enabled schedules of active users whose time has come today (an inactive account's
    too: its day is recorded FAILED, once): those not run today, and those whose run is to
    be tried again (left STARTED: not sent, or its worker gone).
    Each an EXISTS on the (schedule, date) unique index: no join with every past run. Those
    whose weekdays leave today out are left out here (not read again every beat)."""
    runs_today = ScheduledOrderRun.objects.filter(schedule=OuterRef("pk"), trading_date=today)
    retry = runs_today.filter(_retryable(), status=RunStatus.STARTED)
    listed = (
        ScheduledOrder.objects.filter(~Exists(runs_today) | Exists(retry), _due_filter(local))
        .order_by("time_of_day", "id")
        .values_list("pk", "weekdays")
    )
    return [
        pk
        for pk, weekdays in listed
        if weekdays_problem(weekdays) or not weekdays or today.weekday() in weekdays
    ]


def _still_due(schedule_id: int, local: datetime) -> ScheduledOrder | None:
    """The schedule as it is now: one switched off, edited or deleted while the beat placed
    the schedules before it is taken as the trader left it (it was placed as it had been
    listed, a switched-off schedule too)."""
    return (
        ScheduledOrder.objects.filter(_due_filter(local), pk=schedule_id)
        .select_related("user", "account")
        .first()
    )


def _retryable(prefix: str = "") -> Q:
    """A STARTED run to try again: not sent, or its worker gone (claimed long ago)."""
    return Q(**{f"{prefix}created_at__lt": timezone.now() - STALE_CLAIM}) | Q(
        **{f"{prefix}error__startswith": NOT_SENT_RETRY}
    )


def _reclaim(schedule: ScheduledOrder, day: date) -> ScheduledOrderRun | None:
    """Today's STARTED run of `schedule`, taken over for one more try (None when another
    worker is placing it or took it first, or it is no longer STARTED)."""
    run = ScheduledOrderRun.objects.filter(
        _retryable(), schedule=schedule, trading_date=day, status=RunStatus.STARTED
    ).first()
    if run is None:
        return None
    taken = ScheduledOrderRun.objects.filter(
        pk=run.pk, status=RunStatus.STARTED, created_at=run.created_at
    ).update(created_at=timezone.now())
    return run if taken else None


def _already_placed(schedule: ScheduledOrder, day: date) -> Order | None:
    """The order a stopped worker wrote under the day's key (it is settled by the sync)."""
    return Order.objects.filter(
        user_id=schedule.user_id, client_order_id=_key(schedule, day)
    ).first()


def place_due_scheduled_orders(*, now: datetime | None = None) -> list[ScheduledOrderRun]:
    """Place every enabled schedule due today and not yet run today; returns today's new runs
    (placed, rejected, failed or missed), and the runs tried again."""
    local = market_hours.market_now(now)
    today = local.date()
    if not _is_trading_day(today):
        return []
    grace = timedelta(minutes=int(settings.SCHEDULED_ORDER_GRACE_MINUTES))
    runs: list[ScheduledOrderRun] = []
    for schedule_id in _due(local, today):
        schedule = _still_due(schedule_id, local)
        if schedule is None:
            continue
        if problem := weekdays_problem(schedule.weekdays):  # recorded once a day, nothing sent
            if run := _claim(schedule, today, RunStatus.FAILED, f"weekdays {problem}"):
                runs.append(run)
            continue
        if not _runs_today(schedule, today):
            continue
        scheduled_at = datetime.combine(today, schedule.time_of_day, tzinfo=market_hours.MARKET_TZ)
        late = local - scheduled_at > grace
        run = _claim(schedule, today, RunStatus.MISSED if late else RunStatus.STARTED)
        if run is None:  # run today already: to be tried again, or another worker's
            run = _reclaim(schedule, today)
            if run is None:
                continue
            if (order := _already_placed(schedule, today)) is not None:
                runs.append(_finish(run, order=order, status=_status_of(order), error=""))
                continue
            if late:
                error = f"not placed: {local - scheduled_at} late (grace {grace}); {run.error}"
                runs.append(_finish(run, order=run.order, status=RunStatus.MISSED, error=error))
                continue
        elif late:
            error = f"not placed: {local - scheduled_at} late (grace {grace})"
            runs.append(_finish(run, order=None, status=RunStatus.MISSED, error=error))
            continue
        if not schedule.account.is_active:  # recorded once, so the trader sees why
            runs.append(_finish(run, order=run.order, status=RunStatus.FAILED, error=INACTIVE))
            continue
        runs.append(_run(schedule, run, today))
    return runs


def _status_of(order: Order) -> str:
    return RunStatus.REJECTED if order.status == Order.Status.REJECTED else RunStatus.PLACED


def _run(schedule: ScheduledOrder, run: ScheduledOrderRun, day: date) -> ScheduledOrderRun:
    order: Order | None = None
    try:
        result = _place(schedule, day)
        order, status, error = result.order, _status_of(result.order), ""
        if status == RunStatus.REJECTED:
            error = result.reject_reason
        send = result.send
        if result.outcome == OUTCOME_NOT_SENT and send is not None and not send.trading_locked:
            # Provably never reached the broker (its key given back): the next beat tries
            # again while the grace lasts; this attempt's order stays REJECTED "not sent".
            status, error = RunStatus.STARTED, NOT_SENT_RETRY + error
    except (DomainError, TemplateError) as exc:
        error = str(getattr(exc, "message", exc))
        order, status = _written_anyway(schedule, day)
    except Exception as exc:  # recorded on the run; the next schedules still run
        logger.exception("scheduled order failed", extra={"schedule_id": schedule.pk})
        error = f"{type(exc).__name__}: {exc}"
        order, status = _written_anyway(schedule, day)
    return _finish(run, order=order, status=status, error=error)


def _written_anyway(schedule: ScheduledOrder, day: date) -> tuple[Order | None, str]:
    """A run whose placement raised: the order it had already written under the day's key
    (the broker may hold it: a failure recording its answer), with the run's status from it,
    so the run shows it and the trader does not place it again by hand; else (None,
    FAILED)."""
    order = _already_placed(schedule, day)
    return (None, RunStatus.FAILED) if order is None else (order, _status_of(order))


def _finish(
    run: ScheduledOrderRun, *, order: Order | None, status: str, error: str
) -> ScheduledOrderRun:
    """The run's outcome written. A schedule deleted while it fired took its runs with it
    (the order stays, audited): nothing to write, and the beat's other schedules go on (a
    save of the vanished row raised and ended the beat's loop)."""
    run.order, run.status, run.error = order, status, error
    written = ScheduledOrderRun.objects.filter(pk=run.pk).update(
        order=order, status=status, error=error
    )
    if not written:
        logger.info("scheduled order deleted while it fired", extra={"run_id": run.pk})
    return run


# ---- CRUD (the /api/scheduled-orders endpoints, the settings pages, the admin) ------------
#
# Each is audited on the schedule's account (SCHEDULE_CREATED / _CHANGED / _DELETED): who did
# it, and the schedule before and after (`schedule_state`), in the change's transaction.


def schedule_state(schedule: ScheduledOrder) -> dict[str, Any]:
    """The audited view of a schedule (before/after in its OrderEvents): what it places,
    for which account, when, and whether it is on."""
    time_of_day = schedule.time_of_day
    return {
        "id": schedule.pk,
        "name": schedule.name,
        "account_id": schedule.account_id,
        "kind": str(schedule.kind),
        "template": schedule.template,
        # A time, or the text of one when the row was given as text and not read back.
        "time_of_day": time_of_day if isinstance(time_of_day, str) else time_of_day.isoformat(),
        "weekdays": list(schedule.weekdays),
        "enabled": schedule.enabled,
    }


def record_schedule_saved(
    *, schedule: ScheduledOrder, before: dict[str, Any] | None, actor: str
) -> OrderEvent | None:
    """The audit row of a schedule just saved: created (`before` None) or changed from
    `before` (the schedule as the writer read it ahead of the change); none when nothing
    the schedule does changed."""
    return record_account_setting_saved(
        schedule.account,
        what=f"scheduled order “{schedule.name}”",
        kinds=(EventKind.SCHEDULE_CREATED, EventKind.SCHEDULE_CHANGED),
        before=before,
        after=schedule_state(schedule),
        actor=actor,
    )


def check_time_for_account(account: BrokerAccount, time_of_day: time) -> None:
    """A live broker takes orders only inside the trading window: a schedule of a live
    account timed outside it (08:00, or 15:45) failed "market closed" every day it ran."""
    rules = market_hours.current_rules()
    if account.is_paper or rules.always_open or rules.opens <= time_of_day < rules.closes:
        return
    window = f"{rules.opens:%H:%M} to {rules.closes:%H:%M}"
    raise ValidationFailed(
        f"time_of_day: a live account's orders are placed from {window} IST",
        details={"time_of_day": [f"must be inside the trading window, {window} IST"]},
    )


def _account_of(*, user: User, account_id: int) -> BrokerAccount:
    return resolve_account(user=user, account_id=account_id)


def create_scheduled_order(
    *,
    user: User,
    actor: str,
    account_id: int,
    name: str,
    kind: str,
    template: dict,
    time_of_day: time,
    weekdays: list[int],
    enabled: bool = True,
) -> ScheduledOrder:
    account = _account_of(user=user, account_id=account_id)
    validate_template(user=user, kind=kind, account_id=account.pk, template=template)
    check_time_for_account(account, time_of_day)
    with transaction.atomic():
        schedule = ScheduledOrder.objects.create(
            user=user,
            account=account,
            name=name,
            kind=kind,
            template=template,
            time_of_day=time_of_day,
            weekdays=sorted(set(weekdays)),
            enabled=enabled,
        )
        record_schedule_saved(schedule=schedule, before=None, actor=actor)
    return schedule


def update_scheduled_order(
    *, schedule: ScheduledOrder, actor: str, **changes: Any
) -> ScheduledOrder:
    before = schedule_state(schedule)
    if "account_id" in changes:
        schedule.account = _account_of(user=schedule.user, account_id=changes.pop("account_id"))
    if "weekdays" in changes:
        changes["weekdays"] = sorted(set(changes["weekdays"]))
    for name, value in changes.items():
        setattr(schedule, name, value)
    after = schedule_state(schedule)
    if any(after[name] != before[name] for name in ("account_id", "time_of_day")):
        # A schedule only switched off or renamed is not refused for its old time.
        check_time_for_account(schedule.account, schedule.time_of_day)
    validate_template(
        user=schedule.user,
        kind=schedule.kind,
        account_id=schedule.account_id,
        template=schedule.template,
    )
    with transaction.atomic():
        schedule.save()
        record_schedule_saved(schedule=schedule, before=before, actor=actor)
    return schedule


def delete_scheduled_order(*, schedule: ScheduledOrder, actor: str) -> None:
    """Its runs go with it; the orders it placed stay (ScheduledOrderRun.order is SET_NULL
    from the order's side, and orders never reference schedules). The audit row keeps what
    it was."""
    with transaction.atomic():
        record_account_event(
            schedule.account,
            kind=EventKind.SCHEDULE_DELETED,
            actor=actor,
            message=f"scheduled order “{schedule.name}” deleted",
            before=schedule_state(schedule),
        )
        schedule.delete()
