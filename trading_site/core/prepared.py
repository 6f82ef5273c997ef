"""Hot reads compiled once: `PreparedRows`.

Building and compiling a queryset costs the ORM more CPU than MariaDB spends answering a
small indexed read (about 0.3-0.9 ms against 0.1-0.3 ms, measured in the monitoring cycle,
whose steady state is some twenty such reads per user). A `PreparedRows` compiles its
`values_list` queryset once per thread and parameter shape (which parameters are given,
and each list's length), then only binds the new values into the same SQL and applies the
same converters Django would (decimals, aware datetimes, JSON, encrypted fields). Rows come back as the given NamedTuple (or plain tuples), or, with
`PreparedModels`, as the model's own instances.

What may be a parameter is checked, not assumed: an int, a str, or a non-empty list of
either. The SQL must not depend on a value, only on the shape (a list's length): each
parameter is compiled once as a sentinel value, and it must come out of the compiler as
exactly one or more bound parameters, unchanged. A value the ORM would rewrite, inline into
the SQL text or turn into another clause (None, a slice bound, a LIKE pattern) is refused
when the shape is first compiled, so a read either is exactly its queryset's or fails loudly.
An empty list answers no rows without a query, as the ORM does.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model, QuerySet
from django.db.models.sql import Query
from django.db.transaction import TransactionManagementError

RowT = TypeVar("RowT", bound=tuple)
ModelT = TypeVar("ModelT", bound=Model)

Param = int | str | Sequence[int] | Sequence[str]

# Sentinels: values no caller's constant is (an int within a 32-bit column's range, since
# the ORM turns an out-of-range integer lookup into an empty or full match; a str with
# control characters).
_INT_SENTINEL_BASE = 2_146_000_000
_STR_SENTINEL = "\x1fprepared-{}\x1f"
# Shapes kept per thread and read (a list's every length is a shape of its own): past this
# many the cache starts again, so a read of ever new lengths cannot grow without bound.
MAX_SHAPES = 128


# Per selected column that has any: (its position, Django's converters, their expression).
Converters = tuple[tuple[int, tuple[Callable, ...], Any], ...]


def converters_for(expressions: Sequence[Any], connection: BaseDatabaseWrapper) -> Converters:
    """The converters Django applies to these selected expressions' values, found as its
    compiler finds them (a falsy expression is a column that needs none)."""
    compiler = Query(None).get_compiler(connection=connection)
    return tuple(
        (position, tuple(functions), expression)
        for position, (functions, expression) in compiler.get_converters(expressions).items()
    )


def converted_rows(
    rows: Sequence[Sequence[Any]], converters: Converters, connection: BaseDatabaseWrapper
) -> list[list[Any]]:
    """Each row's values as the ORM would hand them back (`converters_for`)."""
    result = []
    for row in rows:
        values = list(row)
        for position, functions, expression in converters:
            value = values[position]
            for function in functions:
                value = function(value, expression, connection)
            values[position] = value
        result.append(values)
    return result


class NotPreparable(TypeError):
    """The read cannot be compiled once: a parameter shapes the SQL or is rewritten."""


class _Compiled(NamedTuple):
    alias: str
    sql: str
    for_update: bool  # SELECT ... FOR UPDATE: only inside a transaction, as the ORM insists
    # Per bound parameter of the SQL: (name, index in the list or -1 for a scalar), or
    # None for a constant of the queryset itself (kept in `constants`).
    slots: tuple[tuple[str, int] | None, ...]
    constants: tuple[Any, ...]
    converters: Converters


def _kind(value: Any) -> str | None:
    """'int' or 'str' (a str subclass, such as a choices enum member, is a str), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "str"
    return None


def _plain(value: Any) -> Any:
    """The value as the database gets it: a str subclass (a choices member) as its str."""
    return str.__str__(value) if isinstance(value, str) and type(value) is not str else value


def _shape(params: dict[str, Any]) -> tuple:
    shape = []
    for name in sorted(params):
        value = params[name]
        kind = _kind(value)
        if kind is not None:
            shape.append((name, kind, -1))
            continue
        if not isinstance(value, list | tuple):
            raise NotPreparable(f"{name}: {value!r} is not an int, a str or a list of them")
        kinds = {_kind(item) for item in value}
        if len(kinds) > 1 or not kinds <= {"int", "str"}:
            raise NotPreparable(f"{name}: a list must hold ints only or strs only")
        shape.append((name, next(iter(kinds)) or "" if kinds else "", len(value)))
    return tuple(shape)


def _sentinels(shape: tuple) -> tuple[dict[str, Any], dict[tuple[type, Any], tuple[str, int]]]:
    counter = itertools.count()
    params: dict[str, Any] = {}
    where: dict[tuple[type, Any], tuple[str, int]] = {}

    def one(kind: str, name: str, index: int) -> Any:
        n = next(counter)
        value: Any = _INT_SENTINEL_BASE + n if kind == "int" else _STR_SENTINEL.format(n)
        where[(type(value), value)] = (name, index)
        return value

    for name, kind, length in shape:
        if length == -1:
            params[name] = one(kind, name, -1)
        else:
            params[name] = [one(kind, name, i) for i in range(length)]
    return params, where


class PreparedRows(Generic[RowT]):
    """`build(**params)` returns a `values_list` of `row_type`'s fields, in that order;
    calling the PreparedRows with the same keyword parameters returns its rows as
    `row_type` (a NamedTuple, or `tuple` for plain rows), from SQL compiled once per
    thread and shape."""

    def __init__(self, row_type: type[RowT], build: Callable[..., QuerySet]) -> None:
        self._row_type = row_type
        # A NamedTuple's rows are checked against its fields; `tuple` gives plain tuples.
        self._make: Callable[[Sequence[Any]], RowT] = getattr(row_type, "_make", row_type)
        self._fields: tuple[str, ...] | None = getattr(row_type, "_fields", None)
        self._build = build
        self._local = threading.local()

    def __call__(self, **params: Param) -> list[RowT]:
        shape = _shape(params)
        if any(length == 0 for _, _, length in shape):
            return []
        compiled = self._compiled(shape)
        bound = [
            constant if slot is None else _value(params[slot[0]], slot[1])
            for slot, constant in zip(compiled.slots, compiled.constants, strict=True)
        ]
        connection = connections[compiled.alias]
        if compiled.for_update and connection.get_autocommit():
            raise TransactionManagementError(
                "select_for_update cannot be used outside of a transaction."
            )
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, bound)
            rows = cursor.fetchall()
        if not compiled.converters:
            return [self._make(row) for row in rows]
        return [
            self._make(values) for values in converted_rows(rows, compiled.converters, connection)
        ]

    def _compiled(self, shape: tuple) -> _Compiled:
        cache = getattr(self._local, "cache", None)
        if cache is None:
            cache = self._local.cache = {}
        compiled = cache.get(shape)
        if compiled is None:
            if len(cache) >= MAX_SHAPES:
                cache.clear()
            compiled = cache[shape] = self._compile(shape)
        return compiled

    def _compile(self, shape: tuple) -> _Compiled:
        sentinels, where = _sentinels(shape)
        queryset = self._build(**sentinels)
        compiler = queryset.query.get_compiler(using=queryset.db)
        sql, sql_params = compiler.as_sql()
        selected = [column for column, _sql, _alias in compiler.select[: compiler.col_count]]
        if self._fields is not None and len(selected) != len(self._fields):
            raise NotPreparable(
                f"the queryset selects {len(selected)} columns for {len(self._fields)} fields "
                f"of {self._row_type.__name__}"
            )
        slots: list[tuple[str, int] | None] = []
        constants: list[Any] = []
        found = set()
        for value in sql_params:
            slot = where.get((type(value), value))
            slots.append(slot)
            constants.append(None if slot is not None else value)
            if slot is not None:
                found.add(slot)
        missing = [slot for slot in where.values() if slot not in found]
        inlined = [str(value) for _kind, value in where if str(value) in sql]
        if missing or inlined:
            names = sorted({name for name, _ in missing} | {s for s in inlined})
            raise NotPreparable(
                f"{self._row_type.__name__}: parameter(s) {names} are not bound unchanged "
                "(the ORM rewrites them or writes them into the SQL text)"
            )
        converters = converters_for(selected, compiler.connection)
        return _Compiled(
            queryset.db,
            sql,
            bool(queryset.query.select_for_update),
            tuple(slots),
            tuple(constants),
            converters,
        )


class PreparedModels(Generic[ModelT]):
    """A `PreparedRows` of every concrete column of `model`, handed back as ordinary model
    instances (`Model.from_db`, as the ORM builds them: not deferred, not adding).
    `build(**params)` returns a queryset of `model` (filters and ordering; no
    select_related, annotations or values)."""

    def __init__(self, model: type[ModelT], build: Callable[..., QuerySet[ModelT]]) -> None:
        self._model = model
        self._names = [field.attname for field in model._meta.concrete_fields]
        self._rows: PreparedRows[tuple[Any, ...]] = PreparedRows(
            tuple, lambda **params: build(**params).values_list(*self._names)
        )

    def __call__(self, **params: Param) -> list[ModelT]:
        rows = self._rows(**params)
        if not rows:
            return []
        alias = router.db_for_read(self._model)
        return [self._model.from_db(alias, self._names, row) for row in rows]

    def get(self, **params: Param) -> ModelT:
        """The one instance the read finds, as `QuerySet.get` answers: the model's
        DoesNotExist when there is none, MultipleObjectsReturned when there are more."""
        found = self(**params)
        if len(found) == 1:
            return found[0]
        # Each concrete model's own DoesNotExist (the stubs' Model declares none).
        model: Any = self._model
        meta = model._meta
        if not found:
            raise model.DoesNotExist(f"{meta.object_name} matching query does not exist.")
        raise model.MultipleObjectsReturned(
            f"get() returned more than one {meta.object_name} -- it returned {len(found)}!"
        )


def _value(param: Any, index: int) -> Any:
    return _plain(param if index == -1 else param[index])
