"""`insert_rows`: the raw multi-row INSERT the batches write through stores exactly what the
ORM's own save would, and hands every row its id in input order."""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.db.models.signals import post_init
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.brokers.paper.book import book_for_account
from orders.brokers.paper.models import PaperOrder
from orders.domain.vocabulary import EventKind
from orders.models import Order, OrderEvent, OrderLeg
from tests.factories import (
    make_account,
    make_instrument,
    make_order,
    make_strategy,
    order_instrument_fields,
)
from trading_site.core.bulk_rows import bulk_update_rows, insert_rows, new_row

pytestmark = pytest.mark.django_db
D = Decimal

# Set by the database or the clock, so never equal between two rows.
_OWN = {"id", "created_at", "updated_at"}


def _stored(model, pk: int) -> dict:
    row = model.objects.filter(pk=pk).values().get()
    return {name: value for name, value in row.items() if name not in _OWN}


def _order(account, instrument, strategy, **fields) -> Order:
    return Order(**_order_values(account, instrument, strategy, **fields))


def _order_values(account, instrument, strategy, **fields) -> dict:
    """Every column of an order set (the related ones as objects), `fields` on top."""
    values = dict(
        user=account.user,
        account=account,
        **order_instrument_fields(instrument),
        side="SELL",
        product_type="NRML",
        quantity=30,
        kind=Order.Kind.BRACKET,
        source=Order.Source.BATCH,
        strategy=strategy,
        external_id="ext-1",
        external_id_day=date(2026, 11, 30),
        client_order_id=None,
        request_fingerprint="f" * 64,
        status=Order.Status.PENDING,
        order_type="STOPLIMIT",
        limit_price=D("101.25"),
        stop_price=D("101.5"),
        sl_price=D("104.0000"),
        sl_stop_price=None,
        targets=[{"price": "95.0000", "quantity": 10}, {"price": "90", "quantity": 20}],
        ltp=D("100.05"),
        buy_fair_price=D("100.1"),
        sell_fair_price=D("100"),
        avg_fair_price=D("100.05"),
        regeneration_count=2,
        archived_at=datetime(2026, 11, 29, 10, 15, 30, 123456, tzinfo=UTC),
    )
    values.update(fields)
    return values


def _unsaved_leg(order: Order, uid: str, *, side: str = "BUY", quantity: int = 1) -> OrderLeg:
    """An entry leg of `order`, not saved (insert_rows writes it)."""
    return OrderLeg(**_leg_values(order, uid, side=side, quantity=quantity))


def _leg_values(order: Order, uid: str, *, side: str, quantity: int) -> dict:
    """The columns of a LIMIT entry leg of `order` (the related ones as objects)."""
    return dict(
        order=order,
        account=order.account,
        role=OrderLeg.Role.ENTRY,
        order_type="LIMIT",
        side=side,
        quantity=quantity,
        unique_identifier=uid,
    )


def test_an_inserted_order_stores_every_column_as_save_does():
    account = make_account()
    instrument, strategy = make_instrument(), make_strategy(user=account.user)
    saved = _order(account, instrument, strategy, client_order_id="key-a")
    saved.save(force_insert=True)
    rows = [
        _order(account, instrument, strategy, client_order_id="key-b", external_id="ext-2"),
        _order(account, instrument, strategy, client_order_id="key-c", external_id_day=None),
    ]

    insert_rows(Order, rows)

    expected = _stored(Order, saved.pk)
    assert _stored(Order, rows[0].pk) == {
        **expected,
        "client_order_id": "key-b",
        "external_id": "ext-2",
    }
    assert _stored(Order, rows[1].pk) == {
        **expected,
        "client_order_id": "key-c",
        "external_id_day": None,
    }
    stored = Order.objects.get(pk=rows[0].pk)
    assert stored.created_at is not None and stored.updated_at is not None
    assert abs(stored.created_at - timezone.now()) < timedelta(minutes=1)
    assert not rows[0]._state.adding and rows[0]._state.db == "default"


def test_inserted_audit_events_keep_their_json_and_text():
    order = make_order(account=make_account())
    events = [
        OrderEvent(
            order=order,
            account_id=order.account_id,
            user_id=order.user_id,
            actor="user:1",
            kind=EventKind.ORDER_CREATED,
            message=f"event {n} ünïcode 'quoted' %s",
            before=None if n == 0 else {"status": "PENDING", "n": n},
            after={"leg": {"status": "OPEN", "prices": ["1.5", None, 2]}},
            broker_response={"AppOrderID": 1000 + n, "ok": True},
        )
        for n in range(3)
    ]

    insert_rows(OrderEvent, events)

    stored = {event.pk: event for event in OrderEvent.objects.filter(order=order)}
    for n, event in enumerate(events):
        row = stored[event.pk]
        assert row.message == f"event {n} ünïcode 'quoted' %s"
        assert row.before == (None if n == 0 else {"status": "PENDING", "n": n})
        assert row.after == {"leg": {"status": "OPEN", "prices": ["1.5", None, 2]}}
        assert row.broker_response == {"AppOrderID": 1000 + n, "ok": True}
        assert row.kind == EventKind.ORDER_CREATED


def test_inserted_paper_orders_keep_booleans_and_defaults():
    account = make_account()
    book = book_for_account(account.pk)
    instrument = make_instrument()
    rows = [
        PaperOrder(
            book=book,
            unique_identifier=f"U{n}",
            instrument=instrument,
            exchange_segment="NSECM",
            exchange_instrument_id=instrument.exchange_instrument_id,
            trading_symbol=instrument.trading_symbol,
            side="BUY",
            order_type="LIMIT",
            product_type="MIS",
            quantity=5,
            limit_price=D("99.05"),
            triggered=bool(n),
        )
        for n in range(2)
    ]

    insert_rows(PaperOrder, rows)

    stored = PaperOrder.objects.in_bulk([row.pk for row in rows])
    assert [stored[row.pk].triggered for row in rows] == [False, True]
    assert stored[rows[0].pk].time_in_force == "DAY"
    assert stored[rows[0].pk].filled_quantity == 0
    assert stored[rows[0].pk].limit_price == D("99.05")
    assert stored[rows[0].pk].app_order_id is None


def test_every_row_gets_its_own_id_in_input_order_across_batches():
    order = make_order(account=make_account())
    legs = [_unsaved_leg(order, f"IR{n}", quantity=n + 1) for n in range(5)]

    with CaptureQueriesContext(connection) as queries:
        insert_rows(OrderLeg, legs, batch_size=2)

    assert len(queries.captured_queries) == 3
    ids = [leg.pk for leg in legs]
    assert len(set(ids)) == 5 and ids == sorted(ids)
    stored = dict(OrderLeg.objects.filter(pk__in=ids).values_list("pk", "unique_identifier"))
    assert [stored[leg.pk] for leg in legs] == [f"IR{n}" for n in range(5)]


def test_a_related_row_saved_after_assignment_gives_its_id():
    account = make_account()
    instrument, strategy = make_instrument(), make_strategy(user=account.user)
    order = _order(account, instrument, strategy, external_id="")
    leg = _unsaved_leg(order, "IR-late", side="SELL", quantity=30)
    insert_rows(Order, [order])

    insert_rows(OrderLeg, [leg])

    assert OrderLeg.objects.get(pk=leg.pk).order_id == order.pk


def test_an_unsaved_related_row_is_refused():
    account = make_account()
    order = _order(account, make_instrument(), None)
    leg = _unsaved_leg(order, "IR-unsaved", side="SELL", quantity=30)

    with pytest.raises(ValueError, match="unsaved related object 'order'"):
        insert_rows(OrderLeg, [leg])
    assert not OrderLeg.objects.filter(unique_identifier="IR-unsaved").exists()


def test_an_expression_is_refused_not_written():
    account = make_account()
    order = _order(account, make_instrument(), None, quantity=F("regeneration_count"))

    with pytest.raises(TypeError, match="plain values only"):
        insert_rows(Order, [order])
    assert order.pk is None


def test_the_rows_of_one_statement_are_stamped_with_one_instant():
    order = make_order(account=make_account())
    legs = [_unsaved_leg(order, f"ST{n}") for n in range(3)]
    before = timezone.now()

    insert_rows(OrderLeg, legs)

    created, updated = {leg.created_at for leg in legs}, {leg.updated_at for leg in legs}
    assert len(created) == 1 and len(updated) == 1
    assert before <= created.pop() <= timezone.now()
    stored = OrderLeg.objects.filter(pk__in=[leg.pk for leg in legs])
    assert {(leg.created_at, leg.updated_at) for leg in stored} == {
        (legs[0].created_at, legs[0].updated_at)
    }


def _fields(row) -> dict:
    return {name: value for name, value in vars(row).items() if name != "_state"}


def test_new_row_is_the_row_the_model_constructor_builds():
    account = make_account()
    instrument, strategy = make_instrument(), make_strategy(user=account.user)
    values = _order_values(account, instrument, strategy, regenerated_from_id=None)

    built, expected = new_row(Order, **values), Order(**values)

    assert _fields(built) == _fields(expected)
    assert built._state.adding and built._state.db is None and built.pk is None
    # The related objects are the ones given (no query to read them back).
    assert built.account is account and built.instrument is instrument
    assert built.strategy is strategy and built.user is account.user


def test_new_rows_do_not_share_a_default_made_per_row():
    first = new_row(OrderEvent, account_id=1, actor="a", kind=EventKind.ORDER_CREATED)
    second = new_row(OrderEvent, account_id=1, actor="a", kind=EventKind.ORDER_CREATED)
    assert _fields(first) == _fields(
        OrderEvent(account_id=1, actor="a", kind=EventKind.ORDER_CREATED)
    )
    order = new_row(Order, quantity=1)
    assert order.targets == [] and new_row(Order, quantity=1).targets is not order.targets
    assert first.order is None and second.leg is None


def test_new_row_takes_an_unsaved_related_row_whose_id_insert_rows_reads_later():
    account = make_account()
    order = _order(account, make_instrument(), None, external_id="")
    leg = new_row(OrderLeg, **_leg_values(order, "NR1", side="SELL", quantity=30))
    insert_rows(Order, [order])

    insert_rows(OrderLeg, [leg])

    assert OrderLeg.objects.get(pk=leg.pk).order_id == order.pk


def test_new_row_refuses_what_is_not_a_field_and_a_related_row_of_another_model():
    account = make_account()
    with pytest.raises(TypeError, match="unexpected fields: colour"):
        new_row(OrderLeg, account=account, colour="red")
    with pytest.raises(ValueError, match="OrderLeg.order must be a Order"):
        new_row(OrderLeg, order=account)


def test_a_column_empty_in_every_row_is_left_out_and_stored_null():
    account = make_account()
    instrument = make_instrument()
    rows = [
        _order(account, instrument, None, stop_price=None, archived_at=None, external_id="e1"),
        _order(
            account, instrument, None, stop_price=D("101.5"), archived_at=None, external_id="e2"
        ),
    ]

    with CaptureQueriesContext(connection) as queries:
        insert_rows(Order, rows)

    [insert] = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    columns = insert.split(") VALUES")[0]
    assert "`archived_at`" not in columns and "`strategy_id`" not in columns
    assert "`stop_price`" in columns
    stored = {o.pk: o for o in Order.objects.filter(pk__in=[row.pk for row in rows])}
    assert stored[rows[0].pk].archived_at is None and stored[rows[0].pk].strategy_id is None
    assert stored[rows[0].pk].stop_price is None
    assert stored[rows[1].pk].stop_price == D("101.5")


def test_bulk_update_rows_gives_each_row_its_own_values_and_only_the_named_fields():
    order = make_order(account=make_account())
    legs = [_unsaved_leg(order, f"BU{n}", quantity=n + 1) for n in range(3)]
    insert_rows(OrderLeg, legs)
    answers = [
        ("OPEN", "1001", D("99.5"), "it's open"),
        ("REJECTED", "", None, 'no "margin"'),
        ("FILLED", "1003", D("100.0500"), ""),
    ]
    for leg, (status, broker_id, price, reason) in zip(legs, answers, strict=True):
        leg.status, leg.broker_order_id, leg.average_price = status, broker_id, price
        leg.reject_reason, leg.quantity = reason, 99  # quantity is not among the fields

    with CaptureQueriesContext(connection) as queries:
        bulk_update_rows(
            OrderLeg, legs, ["status", "broker_order_id", "average_price", "reject_reason"]
        )

    assert len(queries.captured_queries) == 1
    stored = OrderLeg.objects.in_bulk([leg.pk for leg in legs])
    assert [
        (
            stored[leg.pk].status,
            stored[leg.pk].broker_order_id,
            stored[leg.pk].average_price,
            stored[leg.pk].reject_reason,
            stored[leg.pk].quantity,
        )
        for leg in legs
    ] == [(*answer, n + 1) for n, answer in enumerate(answers)]


def test_rows_given_the_same_values_are_updated_by_one_plain_update():
    order = make_order(account=make_account())
    legs = [_unsaved_leg(order, f"BS{n}", quantity=n + 1) for n in range(3)]
    insert_rows(OrderLeg, legs)
    for leg in legs:
        leg.status, leg.average_price = "OPEN", D("99.5")

    with CaptureQueriesContext(connection) as queries:
        bulk_update_rows(OrderLeg, legs, ["status", "average_price"])

    [update] = [q["sql"] for q in queries.captured_queries]
    assert " IN (" in update and "JOIN" not in update
    stored = OrderLeg.objects.filter(pk__in=[leg.pk for leg in legs]).order_by("pk")
    assert [(leg.status, leg.average_price, leg.quantity) for leg in stored] == [
        ("OPEN", D("99.5"), n + 1) for n in range(3)
    ]
    # One row apart: the rows are joined to their own values.
    legs[2].status = "FILLED"
    bulk_update_rows(OrderLeg, legs, ["status", "average_price"])
    assert OrderLeg.objects.get(pk=legs[2].pk).status == "FILLED"
    assert OrderLeg.objects.get(pk=legs[0].pk).status == "OPEN"


def test_a_column_given_one_value_in_every_row_is_set_once_not_joined():
    """The joined UPDATE's derived table carries only the columns whose values differ from
    row to row; a column given one value in every row (a batch's legs going OPEN at one
    instant) is set in the SET clause, escaped as the driver escapes it, NULL included."""
    order = make_order(account=make_account())
    legs = [_unsaved_leg(order, f"BC{n}", quantity=n + 1) for n in range(3)]
    for leg in legs:
        leg.average_price = D("99.5")
    insert_rows(OrderLeg, legs)
    reason = 'it\'s 50% "done" %s \\'
    for n, leg in enumerate(legs):
        leg.status, leg.broker_order_id = "OPEN", f"20{n}"
        leg.reject_reason, leg.average_price = reason, None

    with CaptureQueriesContext(connection) as queries:
        bulk_update_rows(
            OrderLeg, legs, ["status", "broker_order_id", "reject_reason", "average_price"]
        )

    [update] = [q["sql"] for q in queries.captured_queries]
    assert "WITH v (`__pk`, `broker_order_id`) AS (VALUES" in update
    stored = OrderLeg.objects.filter(pk__in=[leg.pk for leg in legs]).order_by("pk")
    assert [
        (leg.status, leg.broker_order_id, leg.reject_reason, leg.average_price, leg.quantity)
        for leg in stored
    ] == [("OPEN", f"20{n}", reason, None, n + 1) for n in range(3)]


# Texts the escaping must keep as they are: quotes, backslashes, a NUL, a newline, what
# looks like a parameter or a comment, non-ASCII; the same text twice (escaped once).
_AWKWARD = ["it's", 'a "b"', "back\\slash\\'", "nul\x00end", "two\nlines", "%s %(x)s", "-- x"]
_AWKWARD += ["ünïcode ₹ 🚀", "it's", ""]


def test_values_written_as_escaped_literals_are_stored_exactly():
    order = make_order(account=make_account())
    prices = [D("99.05"), D("99.0500"), D("1E+2"), D("-0.05"), D("99.05"), None]
    legs = [
        _unsaved_leg(order, f"LT{n}", quantity=n + 1) for n in range(len(_AWKWARD) + len(prices))
    ]
    for n, leg in enumerate(legs):
        leg.reject_reason = _AWKWARD[n % len(_AWKWARD)]
        leg.limit_price = prices[n % len(prices)]

    insert_rows(OrderLeg, legs)

    stored = OrderLeg.objects.in_bulk([leg.pk for leg in legs])
    assert [stored[leg.pk].reject_reason for leg in legs] == [leg.reject_reason for leg in legs]
    assert [stored[leg.pk].limit_price for leg in legs] == [leg.limit_price for leg in legs]
    # The same texts and prices the other way round, through the joined UPDATE.
    for leg, text, price in zip(legs, reversed(_AWKWARD * 2), reversed(prices * 3), strict=False):
        leg.reject_reason, leg.limit_price = text, price
    bulk_update_rows(OrderLeg, legs, ["reject_reason", "limit_price"])
    stored = OrderLeg.objects.in_bulk([leg.pk for leg in legs])
    assert [(stored[leg.pk].reject_reason, stored[leg.pk].limit_price) for leg in legs] == [
        (leg.reject_reason, leg.limit_price) for leg in legs
    ]


def test_an_insert_of_many_rows_sends_no_parameters():
    """Its values are in the statement, escaped once each by the driver (not 30 parameters
    a row, each a Python call of the driver's)."""
    order = make_order(account=make_account())
    legs = [_unsaved_leg(order, f"NP{n}") for n in range(3)]
    sent = []

    def watch(execute, sql, params, many, context):
        sent.append(params)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        insert_rows(OrderLeg, legs)

    assert sent == [None]
    assert OrderLeg.objects.filter(unique_identifier__startswith="NP").count() == 3


def test_new_row_runs_the_constructor_when_an_init_signal_listens():
    account = make_account()
    values = dict(account=account, actor="a", kind=EventKind.ORDER_CREATED, after={"n": 1})
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance)

    post_init.connect(receiver, sender=OrderEvent)
    try:
        built = new_row(OrderEvent, **values)
    finally:
        post_init.disconnect(receiver, sender=OrderEvent)

    assert seen == [built]
    assert _fields(built) == _fields(OrderEvent(**values))
    assert built.account is account


def test_new_row_refuses_a_relation_given_both_as_object_and_as_id():
    account = make_account()
    with pytest.raises(TypeError, match="unexpected fields: account_id"):
        new_row(OrderLeg, account=account, account_id=account.pk)


def test_new_paper_orders_and_legs_are_the_rows_their_constructors_build():
    account = make_account()
    order = make_order(account=account)
    book = book_for_account(account.pk)
    leg_values = dict(order=order, account=account, side="SELL", quantity=3, unique_identifier="C1")
    paper_values = dict(
        book=book,
        unique_identifier="C1",
        instrument=order.instrument,
        side="BUY",
        quantity=5,
        limit_price=D("99.05"),
    )

    assert _fields(new_row(OrderLeg, **leg_values)) == _fields(OrderLeg(**leg_values))
    assert _fields(new_row(PaperOrder, **paper_values)) == _fields(PaperOrder(**paper_values))


def test_columns_of_one_type_are_stored_exactly():
    """Ids, Decimals of several exponents, one text in every row: each converted for the
    whole column at once."""
    order = make_order(account=make_account())
    prices = [D("99.05"), D("99.0500"), D("1E+2"), D("-0.05"), D("0E-4")]
    legs = [_unsaved_leg(order, f"OT{n}", quantity=n + 1) for n in range(len(prices))]
    for leg, price in zip(legs, prices, strict=True):
        leg.limit_price, leg.reject_reason = price, "it's \\ the same"

    insert_rows(OrderLeg, legs)

    stored = OrderLeg.objects.in_bulk([leg.pk for leg in legs])
    assert [
        (stored[leg.pk].limit_price, stored[leg.pk].reject_reason, stored[leg.pk].quantity)
        for leg in legs
    ] == [(price, "it's \\ the same", n + 1) for n, price in enumerate(prices)]


def test_a_price_that_is_not_a_finite_number_is_refused_as_save_refuses_it():
    order = make_order(account=make_account())
    leg = _unsaved_leg(order, "NF1")
    leg.limit_price = D("NaN")

    with pytest.raises(ValidationError):
        insert_rows(OrderLeg, [leg])
    assert leg.pk is None


def test_rows_sharing_related_rows_saved_after_assignment_each_get_their_own_ids():
    account = make_account()
    instrument = make_instrument()
    first = _order(account, instrument, None, external_id="s1")
    second = _order(account, instrument, None, external_id="s2")
    legs = [
        _unsaved_leg(first, "SH1"),
        _unsaved_leg(first, "SH2"),
        _unsaved_leg(second, "SH3"),
        _unsaved_leg(first, "SH4"),
    ]
    insert_rows(Order, [first, second])

    insert_rows(OrderLeg, legs)

    stored = dict(
        OrderLeg.objects.filter(pk__in=[leg.pk for leg in legs]).values_list(
            "unique_identifier", "order_id"
        )
    )
    assert stored == {"SH1": first.pk, "SH2": first.pk, "SH3": second.pk, "SH4": first.pk}


# ---- hostile values: the raw statements store or refuse exactly as the ORM does ----------

# (field of OrderLeg, value): texts built to close a quoted literal early or end on an
# escape, characters the driver escapes or the server's charset must take, texts past the
# column, numbers past their columns or not numbers at all, times with and without a zone.
_HOSTILE = [
    ("reject_reason", "x'); DELETE FROM orders_orderleg; -- "),
    ("reject_reason", 'x"); DELETE FROM orders_orderleg; -- '),
    ("reject_reason", "ends in a backslash\\"),
    ("reject_reason", "\\'"),
    ("reject_reason", "\\"),
    ("reject_reason", "`backticks` and \"double\" and 'single'"),
    ("reject_reason", "nul\x00, ctrl-z\x1a, cr\r, tab\t, bell\x07"),
    ("reject_reason", "%s %% %(name)s {0} {}"),
    ("reject_reason", "¿' ＇ ʼ ’ 🚀 ₹ ünïcode"),  # multi-byte lead bytes before a quote
    ("reject_reason", "x" * 70_000),  # past TEXT's 65,535 bytes
    ("reject_reason", "lone \ud800 surrogate"),  # no UTF-8 form: the driver refuses it
    ("reject_reason", b"bytes'"),
    ("broker_status", "🚀" * 32),  # 32 characters of 4 bytes: fits utf8mb4
    ("broker_status", "🚀" * 33),
    ("broker_status", "y" * 33),
    ("limit_price", D("-0")),
    ("limit_price", D("1.123456789")),
    ("limit_price", D("1E+30")),
    ("limit_price", D("1E-30")),
    ("limit_price", D("NaN")),
    ("limit_price", D("-Infinity")),
    ("limit_price", 1.1),
    ("limit_price", "12.5"),
    ("limit_price", "1 or 1=1"),
    ("quantity", 2**70),
    ("quantity", 2**32),
    ("quantity", -1),
    ("quantity", True),
    ("quantity", "7"),
    ("quantity", "1 or 1=1"),
    ("target_index", 70_000),
    ("submitted_at", datetime(2026, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)),
    ("submitted_at", datetime(2026, 1, 1, 10, 0, tzinfo=timezone.get_fixed_timezone(330))),
    ("submitted_at", "2026-01-01 10:00'"),
    ("submitted_at", datetime(1, 1, 1, tzinfo=timezone.get_fixed_timezone(330))),
]
_SQL_MODES = [
    "STRICT_TRANS_TABLES",  # settings.py's
    "STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES",  # a backslash is a plain character
    "ANSI,STRICT_TRANS_TABLES",  # ANSI_QUOTES: a double quote quotes names
    "",  # not strict: too long or out of range is cut with a warning, not refused
]


def _outcome(write, rows: list[OrderLeg], field: str) -> tuple:
    """What a write did (the error it raised, or none) and the rows' stored values of the
    field after it (none inserted, or the old ones kept, when it was refused)."""
    error = None
    try:
        with transaction.atomic():
            write(rows)
    except Exception as exc:  # compared with the ORM's, whatever it is
        error = type(exc).__name__
    uids = [row.unique_identifier for row in rows]
    stored = OrderLeg.objects.filter(unique_identifier__in=uids).order_by("pk")
    return error, list(stored.values_list(field, flat=True))


def _insert(rows: list[OrderLeg], field: str, *, by_orm: bool) -> None:
    if by_orm:
        OrderLeg.objects.bulk_create(rows)
    else:
        insert_rows(OrderLeg, rows)


def _update(rows: list[OrderLeg], field: str, *, by_orm: bool) -> None:
    if by_orm:
        OrderLeg.objects.bulk_update(rows, [field])
    else:
        bulk_update_rows(OrderLeg, rows, [field])


@pytest.mark.parametrize("sql_mode", _SQL_MODES)
def test_hostile_values_are_stored_or_refused_as_the_orm_stores_or_refuses_them(sql_mode):
    """Each value in a first row beside an ordinary second one, inserted (insert_rows
    against bulk_create) and written over existing rows (bulk_update_rows' joined UPDATE
    against Django's bulk_update): the same values stored, or the same error and nothing
    written."""
    order = make_order(account=make_account())
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION sql_mode = %s", [sql_mode])
    try:
        differences = []
        for n, (field, value) in enumerate(_HOSTILE):
            # Inserted; written over one of two rows (the joined UPDATE); over both (one
            # plain UPDATE with parameters).
            for write, rows_given in ((_insert, 1), (_update, 1), (_update, 2)):
                outcomes = []
                for by_orm in (True, False):
                    tag = f"H{n}{write.__name__[1]}{rows_given}{by_orm:d}"
                    rows = [_unsaved_leg(order, f"{tag}{k}") for k in "ab"]
                    if write is _update:
                        OrderLeg.objects.bulk_create(rows)
                    for row in rows[:rows_given]:
                        setattr(row, field, value)
                    outcomes.append(
                        _outcome(functools.partial(write, field=field, by_orm=by_orm), rows, field)
                    )
                if outcomes[0] != outcomes[1]:
                    differences.append((write.__name__, rows_given, field, value, *outcomes))
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION sql_mode = 'STRICT_TRANS_TABLES'")
    assert differences == []


def test_a_text_ending_in_a_backslash_beside_another_stays_two_values_in_every_sql_mode():
    """The classic break-out: a value ending in a backslash escapes the closing quote when
    the server reads backslashes as plain (or the other way round), and the next value is
    read as SQL. The driver's escaping follows the session's sql_mode."""
    order = make_order(account=make_account())
    texts = ["a\\", ", (SELECT 'injected')) -- ", "\\'", "'; --"]
    for sql_mode in ("STRICT_TRANS_TABLES,NO_BACKSLASH_ESCAPES", "STRICT_TRANS_TABLES"):
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION sql_mode = %s", [sql_mode])
        legs = [_unsaved_leg(order, f"BS{sql_mode[-3:]}{n}") for n in range(len(texts))]
        for leg, text in zip(legs, texts, strict=True):
            leg.reject_reason = leg.broker_status = text
        insert_rows(OrderLeg, legs)
        for leg, text in zip(legs, reversed(texts), strict=True):
            leg.reject_reason = text
        bulk_update_rows(OrderLeg, legs, ["reject_reason"])

        stored = OrderLeg.objects.in_bulk([leg.pk for leg in legs])
        assert [(stored[leg.pk].broker_status, stored[leg.pk].reject_reason) for leg in legs] == [
            (text, back) for text, back in zip(texts, reversed(texts), strict=True)
        ]
