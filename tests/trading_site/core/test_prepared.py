"""`PreparedRows`: a read compiled once returns exactly its queryset's rows (converters
included), binds every new value, compiles once per shape and thread, and refuses a
parameter the ORM would rewrite or write into the SQL text."""

from __future__ import annotations

import threading
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import BrokerAccount
from orders.models import Order
from tests.factories import make_account, make_instrument, make_order, make_user
from trading_site.core.prepared import NotPreparable, PreparedRows

pytestmark = pytest.mark.django_db
D = Decimal


class OrderBits(NamedTuple):
    id: int
    status: str
    limit_price: Decimal | None
    created_at: datetime
    targets: list
    symbol: str


_FIELDS = list(OrderBits._fields)


def _orders(*, account_ids, statuses):
    return (
        Order.objects.filter(account_id__in=account_ids, status__in=statuses, kind="SINGLE")
        .order_by("id")
        .values_list(*_FIELDS)
    )


class AccountBits(NamedTuple):
    id: int
    account_name: str
    credentials: dict


def _builds(build):
    """The build function, counting how often it is called (= compiled)."""
    calls = []

    def counted(**params):
        calls.append(params)
        return build(**params)

    return counted, calls


def test_rows_equal_the_querysets_own_for_each_new_value_and_list_length():
    instrument = make_instrument()
    first, second = make_account(), make_account()
    made = [
        make_order(account=first, instrument=instrument, targets=[{"price": "101.5"}]),
        make_order(account=first, instrument=instrument, status=Order.Status.REJECTED),
        make_order(account=second, instrument=instrument, limit_price=D("12.35")),
        make_order(account=second, instrument=instrument, order_type="MARKET", limit_price=None),
    ]
    build, calls = _builds(_orders)
    read = PreparedRows(OrderBits, build)
    cases = [
        ([first.pk], ["OPEN"]),
        ([second.pk], ["OPEN"]),  # the same shape: new values bound into the same SQL
        ([first.pk, second.pk], ["OPEN", "REJECTED"]),
        ([second.pk, first.pk], ["REJECTED", "OPEN"]),
        ([first.pk], ["REJECTED"]),
        ([first.pk], [Order.Status.REJECTED]),  # a choices member is its str
    ]
    for account_ids, statuses in cases:
        expected = [OrderBits(*row) for row in _orders(account_ids=account_ids, statuses=statuses)]
        assert read(account_ids=account_ids, statuses=statuses) == expected
        assert expected  # every case reads something
    # Two shapes: (1 id, 1 status) and (2, 2); the others are cached.
    assert len(calls) == 2
    row = read(account_ids=[first.pk], statuses=["OPEN"])[0]
    assert row.id == made[0].pk
    assert row.limit_price == D("99.00") and isinstance(row.limit_price, Decimal)
    assert row.created_at == Order.objects.get(pk=made[0].pk).created_at
    assert row.created_at.tzinfo is not None  # aware, as the ORM returns it
    assert row.targets == [{"price": "101.5"}]  # JSON decoded
    assert read(account_ids=[second.pk], statuses=["OPEN"])[1].limit_price is None


def test_an_encrypted_field_is_decrypted_as_the_orm_does():
    account = make_account(credentials={"api_key": "k-1", "secret": "s-1"})
    read = PreparedRows(
        AccountBits,
        lambda *, user_id: BrokerAccount.objects.filter(user_id=user_id).values_list(
            *AccountBits._fields
        ),
    )
    assert read(user_id=account.user_id) == [
        AccountBits(account.pk, account.account_name, {"api_key": "k-1", "secret": "s-1"})
    ]


def test_one_query_per_read_and_none_for_an_empty_list():
    account = make_account()
    make_order(account=account)
    read = PreparedRows(OrderBits, _orders)
    read(account_ids=[account.pk], statuses=["OPEN"])  # compiled
    with CaptureQueriesContext(connection) as queries:
        assert len(read(account_ids=[account.pk], statuses=["OPEN"])) == 1
        assert read(account_ids=[], statuses=["OPEN"]) == []
    assert len(queries) == 1


def test_a_string_scalar_and_a_constant_of_the_queryset_are_both_bound():
    user = make_user()
    account = make_account(user=user, name="alpha")
    make_account(user=user, name="beta")
    read = PreparedRows(
        AccountBits,
        lambda *, user_id, name: BrokerAccount.objects.filter(
            user_id=user_id, account_name=name, is_active=True
        ).values_list(*AccountBits._fields),
    )
    assert [row.id for row in read(user_id=user.pk, name="alpha")] == [account.pk]
    assert read(user_id=user.pk, name="gamma") == []
    BrokerAccount.objects.filter(pk=account.pk).update(is_active=False)
    assert read(user_id=user.pk, name="alpha") == []  # the constant True is still bound


@pytest.mark.django_db(transaction=True)  # the other threads' connections see the rows
def test_each_thread_compiles_its_own_and_reads_its_own_values():
    accounts = [make_account() for _ in range(3)]
    for account in accounts:
        make_order(account=account)
    build, calls = _builds(_orders)
    read = PreparedRows(OrderBits, build)
    read(account_ids=[accounts[0].pk], statuses=["OPEN"])
    seen: dict[int, list[int]] = {}
    errors = []

    def in_thread(account):
        try:
            seen[account.pk] = [row.id for row in read(account_ids=[account.pk], statuses=["OPEN"])]
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=in_thread, args=(a,)) for a in accounts[1:]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for account in accounts[1:]:
        assert seen[account.pk] == list(
            Order.objects.filter(account=account).values_list("id", flat=True)
        )
    assert len(calls) == 3  # this thread once, each other thread once


@pytest.mark.parametrize(
    ("build", "params"),
    [
        # A slice bound is written into the SQL text.
        (lambda *, n: Order.objects.order_by("id").values_list(*_FIELDS)[:n], {"n": 5}),
        # A LIKE pattern is rewritten (%value%).
        (
            lambda *, s: Order.objects.filter(symbol__contains=s).values_list(*_FIELDS),
            {"s": "REL"},
        ),
    ],
)
def test_a_parameter_the_orm_rewrites_or_inlines_is_refused(build, params):
    with pytest.raises(NotPreparable):
        PreparedRows(OrderBits, build)(**params)


@pytest.mark.parametrize("value", [None, True, 1.5, [1, "a"], {"a": 1}])
def test_a_value_that_could_change_the_sql_is_refused(value):
    read = PreparedRows(OrderBits, _orders)
    with pytest.raises(NotPreparable):
        read(account_ids=value, statuses=["OPEN"])


def test_a_row_type_that_does_not_match_the_columns_is_refused():
    class TooFew(NamedTuple):
        id: int

    read = PreparedRows(TooFew, _orders)
    with pytest.raises(NotPreparable):
        read(account_ids=[1], statuses=["OPEN"])


def test_the_shapes_kept_per_thread_are_bounded(monkeypatch):
    from trading_site.core import prepared

    monkeypatch.setattr(prepared, "MAX_SHAPES", 3)
    account = make_account()
    make_order(account=account)
    build, calls = _builds(_orders)
    read = PreparedRows(OrderBits, build)
    for length in range(1, 6):  # five shapes: the cache starts again after three
        assert len(read(account_ids=[account.pk] * length, statuses=["OPEN"])) == 1
    assert len(calls) == 5
    assert len(read._local.cache) == 2
    read(account_ids=[account.pk] * 5, statuses=["OPEN"])  # still kept
    assert len(calls) == 5


def test_prepared_models_are_the_models_the_orm_would_build():
    from trading_site.core.prepared import PreparedModels

    user = make_user()
    first = make_account(user=user, credentials={"api_key": "k-1"})
    make_account(user=user, is_active=False)
    read = PreparedModels(
        BrokerAccount,
        lambda *, user_id: BrokerAccount.objects.filter(user_id=user_id, is_active=True).order_by(
            "id"
        ),
    )
    (account,) = read(user_id=user.pk)
    (orm,) = BrokerAccount.objects.filter(user_id=user.pk, is_active=True)
    assert account == orm and account.pk == first.pk
    for field in BrokerAccount._meta.concrete_fields:
        assert getattr(account, field.attname) == getattr(orm, field.attname), field.name
    assert account.credentials == {"api_key": "k-1"}
    assert not account._state.adding and account._state.db == "default"
    assert account.get_deferred_fields() == set()
    account.account_name = "renamed"
    account.save()  # an ordinary instance: saved as an update of its row
    assert BrokerAccount.objects.get(pk=first.pk).account_name == "renamed"
    assert read(user_id=make_user().pk) == []


def test_get_answers_one_instance_or_raises_as_the_orm_does():
    from trading_site.core.prepared import PreparedModels

    user = make_user()
    first, second = make_account(user=user), make_account(user=user)
    read = PreparedModels(
        BrokerAccount,
        lambda *, user_id: BrokerAccount.objects.filter(user_id=user_id).order_by("id"),
    )
    by_pk = PreparedModels(BrokerAccount, lambda *, id: BrokerAccount.objects.filter(pk=id))
    assert by_pk.get(id=second.pk) == BrokerAccount.objects.get(pk=second.pk)
    with pytest.raises(BrokerAccount.DoesNotExist):
        by_pk.get(id=second.pk + 1000)
    with pytest.raises(BrokerAccount.MultipleObjectsReturned):
        read.get(user_id=user.pk)
    assert [a.pk for a in read(user_id=user.pk)] == [first.pk, second.pk]


@pytest.mark.skipif(connection.vendor != "mysql", reason="SQLite has no SELECT ... FOR UPDATE")
@pytest.mark.django_db(transaction=True)  # autocommit between the test's own transactions
def test_a_read_for_update_locks_and_is_refused_outside_a_transaction():
    from django.db import transaction
    from django.db.transaction import TransactionManagementError

    account = make_account()
    make_order(account=account)
    read = PreparedRows(
        OrderBits,
        lambda *, account_ids, statuses: _orders(
            account_ids=account_ids, statuses=statuses
        ).select_for_update(),
    )
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        assert len(read(account_ids=[account.pk], statuses=["OPEN"])) == 1
        assert len(read(account_ids=[account.pk], statuses=["OPEN"])) == 1  # compiled once
    assert all("FOR UPDATE" in q["sql"] for q in queries if "SELECT" in q["sql"])
    assert len([q for q in queries if "FOR UPDATE" in q["sql"]]) == 2
    with pytest.raises(TransactionManagementError):
        read(account_ids=[account.pk], statuses=["OPEN"])  # autocommit: nothing to lock in


def test_an_optional_parameter_is_a_shape_of_its_own():
    user = make_user()
    alpha, beta = make_account(user=user, name="alpha"), make_account(user=user, name="beta")

    def accounts(*, user_id, name=None):
        found = BrokerAccount.objects.filter(user_id=user_id)
        if name is not None:
            found = found.filter(account_name=name)
        return found.order_by("id").values_list(*AccountBits._fields)

    build, calls = _builds(accounts)
    read = PreparedRows(AccountBits, build)
    assert [row.id for row in read(user_id=user.pk)] == [alpha.pk, beta.pk]
    assert [row.id for row in read(user_id=user.pk, name="beta")] == [beta.pk]
    assert [row.id for row in read(user_id=user.pk)] == [alpha.pk, beta.pk]
    assert [row.id for row in read(user_id=user.pk, name="alpha")] == [alpha.pk]
    assert len(calls) == 2  # with the name and without, each compiled once
