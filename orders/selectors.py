"""Reads of orders for the API, the web UI, the admin and the services (no writes here)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from operator import attrgetter, itemgetter
from typing import Any, NamedTuple

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Prefetch, QuerySet

from accounts.models import Strategy, User
from orders.domain.vocabulary import LIMIT_GIVEN, EventKind
from orders.models import Order, OrderEvent, OrderLeg, UserOrderCount
from trading_site.core.errors import NotFound
from trading_site.core.prepared import Converters, PreparedModels, converted_rows, converters_for

# The columns the order list shows; the legs it needs for entry/sl/tp statuses.
_LIST_LEG_FIELDS = ("id", "order_id", "role", "status", "broker_order_id", "reject_reason")


def order_list(
    *,
    user: User,
    account_id: int | None = None,
    statuses: list[str] | None = None,
    symbol: str | None = None,
    strategy: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    prefetch_legs: bool = True,
) -> QuerySet[Order]:
    """The user's orders, newest first. Filters start from the user so every query uses an
    index that begins with user_id ((user, -created_at, -id), (user, account, -created_at,
    -id), (user, status, -created_at), (user, symbol, -created_at)), each in the list's
    order, so a page reads its rows off the index without a sort; the page's legs come in one extra query (prefetch), and
    only the columns the list shows are read."""
    queryset = Order.objects.filter(user=user)
    if account_id is not None:
        queryset = queryset.filter(account_id=account_id)
    if statuses:
        queryset = (
            queryset.filter(status=statuses[0])
            if len(statuses) == 1
            else queryset.filter(status__in=statuses)
        )
    if symbol:
        queryset = queryset.filter(symbol=symbol)
    if strategy:
        # Resolve the name to ids first: a join on strategies would defeat the user index.
        ids = list(Strategy.objects.filter(user=user, name=strategy).values_list("pk", flat=True))
        queryset = queryset.filter(strategy_id__in=ids or [0])
    if since is not None:
        queryset = queryset.filter(created_at__gte=since)
    if until is not None:
        queryset = queryset.filter(created_at__lt=until)
    queryset = queryset.select_related("strategy").order_by("-created_at", "-id")
    if not prefetch_legs:
        return queryset
    return queryset.prefetch_related(
        Prefetch("legs", queryset=OrderLeg.objects.only(*_LIST_LEG_FIELDS).order_by("id"))
    )


class ListLeg(NamedTuple):
    """The leg columns the order list shows (a plain row: no model instance per leg)."""

    role: str
    status: str
    broker_order_id: str | None
    reject_reason: str


class OrderRow(NamedTuple):
    """One row of the order list: the columns it shows, named as on `Order` (the strategy's
    name as `strategy_name`), and its legs. A plain tuple: building a model instance per
    row (and a related descriptor for its strategy) cost the list more CPU than its SQL."""

    pk: int
    account_id: int
    symbol: str
    exchange_segment: str
    exchange_instrument_id: int
    side: str
    product_type: str
    order_type: str
    quantity: int
    filled_quantity: int
    kind: str
    source: str
    strategy_name: str | None
    external_id: str
    client_order_id: str | None
    status: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    sl_price: Decimal | None
    sl_stop_price: Decimal | None
    targets: list
    pnl: Decimal
    open_position: int
    ltp: Decimal | None
    buy_fair_price: Decimal | None
    sell_fair_price: Decimal | None
    avg_fair_price: Decimal | None
    regeneration_count: int
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime
    list_legs: list[ListLeg]


def is_every_order_of(orders: QuerySet[Order], user: User) -> bool:
    """Whether `orders` is `user`'s every order, filtered by nothing else (in any order)."""
    return orders.query.where == Order.objects.filter(user=user).query.where


def order_total(orders: QuerySet[Order], *, user: User) -> int:
    """How many orders `orders` (a list of `user`'s orders) holds: their kept count
    (`UserOrderCount`, one row by key) when it is their every order, else counted."""
    if is_every_order_of(orders, user):
        kept = UserOrderCount.objects.filter(user_id=user.pk).values_list("total", flat=True)
        return next(iter(kept), 0)
    return orders.count()


class OrderListPage(NamedTuple):
    """One page of the order list and how many orders the whole (filtered) list holds."""

    total: int
    rows: list[OrderRow]


class _PageColumns(NamedTuple):
    select: str  # the select list
    joins: str  # from the page's ids to its rows, their strategies and their legs
    user_total: str  # the count of a user's every order (one parameter: the user's id)
    converters: Converters  # the row's, as the ORM would apply them


# The page statement's row: its count, `OrderRow`'s columns but the legs (the strategy's
# name from its table), then a list leg's id and `ListLeg`'s columns.
_ORDER_END = 1 + len(OrderRow._fields) - 1
_LEG_ID, _LEG_START = _ORDER_END, _ORDER_END + 1


def _page_columns(connection: BaseDatabaseWrapper) -> _PageColumns:
    qn = connection.ops.quote_name
    selected, expressions = ["counted.total"], [None]  # the count needs no converter
    for table, model, names in (
        ("o", Order, OrderRow._fields[:-1]),
        ("l", OrderLeg, ("pk", *ListLeg._fields)),
    ):
        for name in names:
            field: Any
            if name == "strategy_name":
                field, alias = Strategy._meta.get_field("name"), "s"
            else:
                field, alias = model._meta.get_field("id" if name == "pk" else name), table
            expressions.append(field.get_col(alias))
            selected.append(f"{alias}.{qn(field.column)}")
    orders, strategies, legs = (qn(model._meta.db_table) for model in (Order, Strategy, OrderLeg))
    joins = (
        f"LEFT JOIN {orders} o ON o.{qn('id')} = page.{qn('id')} "
        f"LEFT JOIN {strategies} s ON s.{qn('id')} = o.{qn('strategy_id')} "
        f"LEFT JOIN {legs} l ON l.{qn('order_id')} = o.{qn('id')}"
    )
    counts = UserOrderCount._meta
    total = f"{qn('total')} FROM {qn(counts.db_table)} WHERE {qn('user_id')} = %s"
    user_total = f"SELECT COALESCE((SELECT {total}), 0) AS total"
    converters = converters_for(expressions, connection)
    return _PageColumns(", ".join(selected), joins, user_total, converters)


_page_columns_by_vendor: dict[str, _PageColumns] = {}


def order_list_page(
    orders: QuerySet[Order], *, user: User, limit: int, offset: int
) -> OrderListPage:
    """One page of `orders` (an `order_list(user=user, ...)`, newest first), with its list
    legs and strategy names, and the whole list's count: one statement, one round trip.
    The count of the user's every order (no filter) is their row of `UserOrderCount`,
    which the database keeps; a filtered list's is counted.

    The page's ids are read first, in a derived table, off the user's index alone: asked
    for whole rows in this order, MariaDB may walk the created_at index across every user's
    orders instead of the user's own (with 5,000,000 orders, 35 ms for a page that takes
    0.5 ms). The rows, their strategies and their legs are then joined by primary key, and
    the count comes from a one-row derived table the page is LEFT JOINed to, so an empty
    page still answers the count. The page's order is restored here: an ORDER BY over the
    joined rows cost MariaDB a temporary table and a sort (0.3 ms of 0.9). Four separate
    reads (count, ids, rows, legs) cost the list more in round trips and compiled querysets
    than MariaDB spends answering them."""
    connection = connections[orders.db]
    columns = _page_columns_by_vendor.get(connection.vendor)
    if columns is None:
        columns = _page_columns_by_vendor[connection.vendor] = _page_columns(connection)
    ids = orders.order_by("-created_at", "-id").values_list("id")
    page_sql, page_params = ids[offset : offset + limit].query.get_compiler(orders.db).as_sql()
    # Names quoted by the backend and SQL compiled by the ORM; every value is a parameter.
    if is_every_order_of(orders, user):
        counted, count_params = columns.user_total, (user.pk,)
    else:
        count_sql, count_params = (
            orders.order_by().values_list("id").query.get_compiler(orders.db).as_sql()
        )
        counted = f"SELECT COUNT(*) AS total FROM ({count_sql}) counted_ids"  # noqa: S608
    parts = (f"({counted}) counted", f"LEFT JOIN ({page_sql}) page ON 1 = 1", columns.joins)
    sql = f"SELECT {columns.select} FROM {' '.join(parts)}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, (*count_params, *page_params))
        fetched = cursor.fetchall()
    rows: dict[int, OrderRow] = {}
    legs: list[tuple[int, int, ListLeg]] = []
    for values in converted_rows(fetched, columns.converters, connection):
        if values[1] is None:  # an empty page: the count's row alone
            continue
        pk = values[1]
        if pk not in rows:
            rows[pk] = OrderRow._make((*values[1:_ORDER_END], []))
        if values[_LEG_ID] is not None:  # an order with no leg has NULLs here
            legs.append((values[_LEG_ID], pk, ListLeg._make(values[_LEG_START:])))
    for _, pk, leg in sorted(legs, key=itemgetter(0)):
        rows[pk].list_legs.append(leg)
    page = sorted(rows.values(), key=attrgetter("created_at", "pk"), reverse=True)
    return OrderListPage(fetched[0][0], page)


def order_for_user(*, user: User, order_id: int | str) -> Order:
    """One of the user's orders (404 for anyone else's)."""
    try:
        pk = int(order_id)
    except (TypeError, ValueError):
        raise NotFound("Order not found") from None
    order = (
        Order.objects.filter(pk=pk, user=user)
        .select_related("account", "instrument", "strategy")
        .first()
    )
    if order is None:
        raise NotFound("Order not found", details={"order_id": pk})
    return order


def order_detail(*, user: User, order_id: int | str) -> Order:
    order = order_for_user(user=user, order_id=order_id)
    order.detail_legs = list(order.legs.order_by("id"))
    order.detail_events = list(OrderEvent.objects.filter(order=order).order_by("created_at", "id"))
    return order


# Read by every broker event, protection and roll-up (several times a fill): compiled once.
_ORDERS = PreparedModels(Order, lambda *, ids: Order.objects.filter(pk__in=ids).order_by("pk"))
_ORDER_FOR_UPDATE = PreparedModels(
    Order, lambda *, id: Order.objects.select_for_update().filter(pk=id)
)
_LEGS_OF_ORDERS = PreparedModels(
    OrderLeg, lambda *, order_ids: OrderLeg.objects.filter(order_id__in=order_ids).order_by("id")
)


def orders_by_id(order_ids: Sequence[int]) -> dict[int, Order]:
    """The orders of these ids (those that exist), by id, in one compiled read."""
    return {order.pk: order for order in _ORDERS(ids=list(order_ids))}


def orders_with_legs(order_ids: Sequence[int]) -> list[tuple[Order, list[OrderLeg]]]:
    """The orders of these ids (those that exist, by id) with all their legs (by id), in
    two compiled reads; each leg's `order` is its order (no query to reach it)."""
    return with_legs(_ORDERS(ids=list(order_ids)))


def locked_order_with_legs(order_id: int) -> tuple[Order, list[OrderLeg]]:
    """The order, SELECT ... FOR UPDATE (inside the caller's transaction), with all its
    legs by id. Raises Order.DoesNotExist as `.get` would."""
    [(order, legs)] = with_legs([_ORDER_FOR_UPDATE.get(id=order_id)])
    return order, legs


def with_legs(orders: list[Order]) -> list[tuple[Order, list[OrderLeg]]]:
    """These orders, in their order, each with all its legs (by id) in one compiled read;
    each leg's `order` is its order."""
    by_order: dict[int, list[OrderLeg]] = {order.pk: [] for order in orders}
    if by_order:
        orders_by_pk = {order.pk: order for order in orders}
        for leg in _LEGS_OF_ORDERS(order_ids=list(by_order)):
            leg.order = orders_by_pk[leg.order_id]
            by_order[leg.order_id].append(leg)
    return [(order, by_order[order.pk]) for order in orders]


def latest_event_after(*, order: Order, kind: EventKind, since: datetime) -> Any:
    """The `after` of the order's latest audit event of `kind` written at or after `since`
    (None when there is none, or it has none): what the trail last recorded of that kind."""
    return (
        OrderEvent.objects.filter(order=order, kind=kind, created_at__gte=since)
        .order_by("-id")
        .values_list("after", flat=True)
        .first()
    )


def repricing_anchors(leg_ids: Sequence[int]) -> dict[int, Decimal]:
    """Each leg's limit price from before the desk began re-pricing it (the `before` of its
    first `leg_repriced` since the trader last modified it), for the legs the desk has
    re-priced: what the strategy's slippage bound is measured from. One read.

    A trailing stop-loss's move is a `leg_repriced` too, but one that moves the stop: it
    moves the anchor with it (by as much as the stop moved), as it moves the limit; a
    re-pricing never moves the stop. So a stop-loss re-priced, then trailed, is bounded from
    its trailed price, and one trailed before it was ever re-priced starts from its limit
    then. A new leg (more fills, a stop-loss placed again) has no rows: its own limit.

    A trader's modify that gave no limit (a new quantity or stop) is not a new price of
    theirs: the anchor stays, moved only as far as the stop moved (as the order's configured
    limit is, orders.services.changes). One that gave a limit is, even the working one it
    left as it was (its row says so: LIMIT_GIVEN; a row from before it said so, when the
    limit changed)."""
    anchors: dict[int, Decimal | None] = {}
    events = (
        OrderEvent.objects.filter(
            leg_id__in=list(leg_ids), kind__in=[EventKind.LEG_MODIFIED, EventKind.LEG_REPRICED]
        )
        .order_by("id")
        .values_list("leg_id", "kind", "before", "after")
    )
    for leg_id, kind, before, after in events:
        moved = _stop_moved(before, after)
        anchor = anchors.get(leg_id)
        if kind == EventKind.LEG_MODIFIED and (
            (after or {}).get(LIMIT_GIVEN) or _limit_of(before) != _limit_of(after)
        ):
            anchors[leg_id] = None  # the trader's own new price starts afresh
        elif moved is not None:
            if anchor is not None:  # a trail, or the trader's new stop: moved with the stop
                anchors[leg_id] = anchor + moved
        elif kind == EventKind.LEG_REPRICED and anchor is None:
            anchors[leg_id] = _limit_of(before)  # the first re-pricing's limit before it
    return {leg_id: anchor for leg_id, anchor in anchors.items() if anchor is not None}


def _limit_of(state: dict | None) -> Decimal | None:
    limit = (state or {}).get("limit_price")
    return None if limit is None else Decimal(str(limit))


def _stop_moved(before: dict | None, after: dict | None) -> Decimal | None:
    """How far a `leg_repriced` or `leg_modified` row moved the leg's stop (a trail, the
    trader's new stop), or None (a re-pricing, a new limit or quantity alone)."""
    old, new = (before or {}).get("stop_price"), (after or {}).get("stop_price")
    if old is None or new is None or Decimal(str(old)) == Decimal(str(new)):
        return None
    return Decimal(str(new)) - Decimal(str(old))
