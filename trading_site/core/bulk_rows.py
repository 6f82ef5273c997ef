"""Many rows in one statement, without the ORM's per-value SQL compilation: `insert_rows`
(one multi-row INSERT ... RETURNING the ids) and `bulk_update_rows` (one UPDATE joined to
the new values). The order services' batches and the paper exchange write through here."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import repeat
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections, models, router
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models.base import ModelState
from django.db.models.fields import Field
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init

# Fields whose database value is the Python value itself when it is a str (or an int, or
# None): Django's own get_db_prep_save returns it unchanged. Exact types only: a subclass
# may convert (an encrypted field, say), so it goes through get_db_prep_save.
_AS_STR = {models.CharField, models.TextField}
_AS_INT = {
    models.IntegerField,
    models.BigIntegerField,
    models.SmallIntegerField,
    models.PositiveIntegerField,
    models.PositiveBigIntegerField,
    models.PositiveSmallIntegerField,
}
# Fields that store None as NULL (get_db_prep_save(None) is None).
_NONE_AS_NULL = {
    *_AS_STR,
    *_AS_INT,
    models.ForeignKey,
    models.BooleanField,
    models.DecimalField,
    models.DateField,
    models.DateTimeField,
    models.JSONField,
}
_STR, _INT, _DECIMAL, _OTHER, _CUSTOM, _JSON = range(6)
_M = TypeVar("_M", bound=models.Model)


def _kind(field: Field) -> int:
    kind = type(field)
    if isinstance(field, models.ForeignKey):
        target = type(field.target_field)
        plain_id = kind is models.ForeignKey and target in (models.AutoField, models.BigAutoField)
        return _INT if plain_id else _CUSTOM
    if kind in _AS_STR:
        return _STR
    if kind in _AS_INT:
        return _INT
    if kind is models.DecimalField:
        return _DECIMAL
    if kind is models.JSONField and field.encoder is None:  # type: ignore[attr-defined]
        return _JSON
    return _OTHER if kind in _NONE_AS_NULL else _CUSTOM


def insert_rows(model: type[Any], rows: Sequence[models.Model], *, batch_size: int = 500) -> None:
    """`bulk_create` of new rows that sets every row's primary key, at a fraction of its CPU:
    the values are converted once each (Django's own `pre_save` and `get_db_prep_save`,
    skipped only where they return a str or int unchanged) instead of compiled into SQL
    expressions one by one. On MariaDB one INSERT ... RETURNING per `batch_size` rows,
    whose auto_now(_add) times are one instant (lists order ties by id); a nullable column
    (without a database default) that is None in every row of it is left out: the database
    stores NULL all the same, and a new order's dozen empty columns cost no parameters.
    Other databases (and rows given a primary key) use bulk_create. No signals, as with
    bulk_create."""
    if not rows:
        return
    alias = router.db_for_write(model)
    db = connections[alias]
    if (
        db.vendor != "mysql"
        or not db.features.can_return_rows_from_bulk_insert
        or any(row.pk is not None for row in rows)
    ):
        model._default_manager.using(alias).bulk_create(rows, batch_size=batch_size)
        if any(row.pk is None for row in rows):  # a database that cannot return ids
            raise RuntimeError(f"{model.__name__} bulk insert did not return primary keys")
        return
    plan = _insert_plan(model._meta.model, alias)
    if len(rows) == 1:
        ids = _insert_one(plan, rows[0], db)
        chunks: Any = [(rows, ids)]
    else:
        chunks = (
            (chunk, _insert_chunk(plan, chunk, db))
            for chunk in (
                rows[start : start + batch_size] for start in range(0, len(rows), batch_size)
            )
        )
    for chunk, ids in chunks:
        if len(ids) != len(chunk):
            raise RuntimeError(f"{model.__name__} insert returned {len(ids)} ids for {len(chunk)}")
        for row, new_id in zip(chunk, ids, strict=True):
            row.pk = new_id
            row._state.adding = False
            row._state.db = alias


@dataclass(frozen=True)
class _InsertPlan:
    # The model's INSERT, worked out once per model and database: per column its field,
    # attname, kind (`_kind`), how it is read (`_how_read`), quoted name, and whether it may
    # be left out when None (nullable, no database default); the forward relations; the
    # quoted table and primary key; whether the model's attributes are plain.
    columns: tuple[tuple[Field, str, int, int, str, bool], ...]
    related: tuple[Field, ...]
    table: str
    pk: str
    plain: bool


@functools.cache
def _insert_plan(model: type[models.Model], alias: str) -> _InsertPlan:
    meta = model._meta
    db: Any = connections[alias]
    quote = db.ops.quote_name
    fields = [field for field in meta.local_concrete_fields if field is not meta.pk]
    return _InsertPlan(
        columns=tuple(
            (
                field,
                field.attname,
                _kind(field),
                _how_read(field),
                quote(field.column),
                field.null and not field.has_db_default(),
            )
            for field in fields
        ),
        related=tuple(field for field in fields if field.is_relation),
        table=quote(meta.db_table),
        pk=quote(meta.pk.column),
        plain=_construction_plan(model).plain,
    )


def _insert_chunk(plan: _InsertPlan, chunk: Sequence[models.Model], db: Any) -> list[Any]:
    """One multi-row INSERT ... RETURNING of `chunk`: its new ids, in order."""
    for field in plan.related:
        _take_related_ids(chunk, field)
    written = [
        (column, column_values)
        for column, column_values, left_out_if_none in (
            (
                column,
                _column_values(chunk, field, attname, kind, how, db, plain=plan.plain),
                none_ok,
            )
            for field, attname, kind, how, column, none_ok in plan.columns
        )
        if not left_out_if_none or column_values.count(None) != len(chunk)
    ]
    columns = ", ".join(column for column, _ in written)
    values = _values_list(db, [column_values for _, column_values in written])
    # Quoted names from the model's metadata, and values the driver escaped.
    sql = f"INSERT INTO {plan.table} ({columns}) VALUES {values} RETURNING {plan.pk}"  # noqa: S608
    with db.cursor() as cursor:
        cursor.execute(sql)
        return [found for (found,) in cursor.fetchall()]


def _insert_one(plan: _InsertPlan, row: models.Model, db: Any) -> list[Any]:
    """`_insert_chunk` of one row, without its per-column lists: each value converted as
    `_column_values` converts it and written as `_column_literals` writes it."""
    for field in plan.related:
        _take_related_ids((row,), field)
    db.ensure_connection()
    literal, encoding = db.connection.literal, db.connection.encoding
    state = row.__dict__
    columns: list[str] = []
    texts: list[str] = []
    for field, attname, kind, how, column, left_out_if_none in plan.columns:
        if how != _READ:
            value = field.pre_save(row, True)  # a stamp sets the row's attribute too
        elif plan.plain and attname in state:
            value = state[attname]
        else:  # a deferred field (its descriptor loads it), or a descriptor of its own
            value = getattr(row, attname)
        value = _db_value(field, kind, value, db)
        if value is None and left_out_if_none:
            continue
        columns.append(column)
        texts.append(_literal(value, literal, encoding))
    # Quoted names from the model's metadata, and values the driver escaped.
    sql = (
        f"INSERT INTO {plan.table} ({', '.join(columns)}) VALUES ({', '.join(texts)})"  # noqa: S608
        f" RETURNING {plan.pk}"
    )
    with db.cursor() as cursor:
        cursor.execute(sql)
        return [found for (found,) in cursor.fetchall()]


def _literal(value: Any, literal: Any, encoding: str) -> str:
    """The driver's literal of one value, as text: ints and Decimals as the driver formats
    them, None as NULL, anything else escaped by the driver (`_column_literals`' value by
    value, and `_insert_one`'s)."""
    kind = type(value)
    if kind is int:
        return str(value)  # MySQLdb.converters.Thing2Str
    if kind is Decimal:
        return format(value, "f")  # Decimal2Literal
    if value is None:
        return "NULL"
    return literal(value).decode(encoding)


def new_row(model: type[_M], /, **values: Any) -> _M:
    """`model(**values)`, an unsaved row (for `insert_rows`), at a fraction of its CPU: the
    instance's attributes written at once, each field not given its default, as Django's
    constructor would set them (its descriptors store a new row's values unchanged), the
    constructor itself only where a field has a descriptor of its own or a pre_init or
    post_init receiver listens. A related object given by field name is checked and cached
    as the field's descriptor would (its id is read again on insert, when it was unsaved
    here). Fields only, by name or attname: anything else is a TypeError. The attributes
    are one new dict, the instance's own (a batch builds 2,500 rows)."""
    plan = _construction_plan(model)
    cached: dict[str, Any] = {}
    one_to_one = []
    for name, foreign_key, attname, remote, target_attname, cache_name in plan.relations:
        if name in values:
            target = values.pop(name)
            if target is not None and not isinstance(target, remote):
                raise ValueError(
                    f"{model.__name__}.{name} must be a {remote.__name__}, not {target!r}"
                )
            if attname in values:
                raise TypeError(f"{model.__name__}() got unexpected fields: {attname}")
            values[attname] = None if target is None else getattr(target, target_attname)
            cached[cache_name] = target  # the field's set_cached_value
            if target is not None and not foreign_key.remote_field.multiple:
                one_to_one.append((foreign_key, target))
    if not values.keys() <= plan.attnames:
        unexpected = [name for name in values if name not in plan.attnames]
        raise TypeError(f"{model.__name__}() got unexpected fields: {', '.join(unexpected)}")
    if plan.plain and not (pre_init.receivers or post_init.receivers):
        # The instance's __dict__ as the constructor leaves it: its state, then each field.
        state = plan.attributes.copy()
        for attname, make_default in plan.per_row:
            if attname not in values:
                state[attname] = make_default()
        state.update(values)
        model_state = state["_state"] = ModelState()
        if cached:
            model_state.fields_cache = cached
        row = model.__new__(model)
        row.__dict__ = state
    else:
        state = plan.fixed.copy()
        for attname, make_default in plan.per_row:
            if attname not in values:
                state[attname] = make_default()
        state.update(values)
        row = model(*state.values())
        row._state.fields_cache.update(cached)
    for foreign_key, target in one_to_one:
        foreign_key.remote_field.set_cached_value(target, row)
    return row


@dataclass(frozen=True)
class _ConstructionPlan:
    # Every concrete field's attname (in the constructor's positional order) and its default
    # shared by every row; then the fields whose default is made per row (a callable default,
    # a database default: each row gets its own).
    fixed: dict[str, Any]
    per_row: tuple[tuple[str, Any], ...]
    attnames: frozenset[str]
    # `fixed` after the instance's `_state` (set per row): a new instance's __dict__.
    attributes: dict[str, Any]
    # Per forward relation: its name, the field, attname, related model, target attname and
    # the name the instance's state caches the related object under.
    relations: tuple[tuple[str, Any, str, type, str, str], ...]
    # Whether every field's attribute is Django's plain one (what the constructor sets is
    # what its __dict__ holds).
    plain: bool


_PLAIN_ATTRIBUTES = (DeferredAttribute, ForeignKeyDeferredAttribute)


@functools.cache
def _construction_plan(model: type[models.Model]) -> _ConstructionPlan:
    fixed: dict[str, Any] = {}
    per_row = []
    relations = []
    plain = True
    for field in model._meta.concrete_fields:
        fixed[field.attname] = None  # its place in the order; the default below
        # A field without a default has the class NOT_PROVIDED there: callable, but its
        # default (None, or "") is one value for every row.
        if (field.has_default() and callable(field.default)) or field.has_db_default():
            per_row.append((field.attname, field.get_default))
        else:
            fixed[field.attname] = field.get_default()
        if isinstance(field, models.ForeignKey):  # many-to-one and one-to-one
            target = field.target_field
            relations.append(
                (
                    field.name,
                    field,
                    field.attname,
                    field.remote_field.model,
                    target.attname,
                    field.cache_name,
                )
            )
        attribute = inspect.getattr_static(model, field.attname, None)
        plain = plain and type(attribute) in _PLAIN_ATTRIBUTES
    return _ConstructionPlan(
        fixed=fixed,
        per_row=tuple(per_row),
        attnames=frozenset(fixed),
        attributes={"_state": None, **fixed},
        relations=tuple(relations),
        plain=plain,
    )


_READ, _PRE_SAVE, _STAMP = range(3)


def _how_read(field: Field) -> int:
    """A plain attribute; a field that computes its value on save (`pre_save`); or a time
    stamped on creation or change (auto_now_add, auto_now): one instant per statement."""
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return _STAMP
    return _PRE_SAVE if type(field).pre_save is not Field.pre_save else _READ


def _column_values(
    rows: Sequence[models.Model],
    field: Field,
    attname: str,
    kind: int,
    how: int,
    db: Any,
    *,
    plain: bool,
) -> list[Any]:
    """One column's database values for `rows` (sets a stamped field on each row). With
    `plain` (the model's field attributes are Django's own) a value is read from the row's
    __dict__, as the attribute's descriptor reads it, without a Python call per row."""
    if how == _STAMP:
        stamp = field.pre_save(rows[0], True)
        for row in rows[1:]:
            setattr(row, attname, stamp)
        return [_db_value(field, kind, stamp, db)] * len(rows)
    if how == _PRE_SAVE:
        return _db_values(field, kind, [field.pre_save(row, True) for row in rows], db)
    if plain:
        try:
            return _db_values(field, kind, [row.__dict__[attname] for row in rows], db)
        except KeyError:  # a deferred field: its descriptor loads it
            pass
    return _db_values(field, kind, [getattr(row, attname) for row in rows], db)


# Per kind of field, the types whose values are their own database values (see _db_value).
_OWN_VALUE_TYPES = {
    _STR: {str, type(None)},
    _INT: {int, type(None)},
    _DECIMAL: {Decimal, type(None)},
}


def _db_values(field: Field, kind: int, values: list[Any], db: Any) -> list[Any]:
    """`_db_value` of each: a column of values that are their own database values (texts,
    ints, finite Decimals, NULLs, each in its kind of field) as it is; otherwise one by one,
    converting a value shared by consecutive rows (one `now` given to every row, say)
    once."""
    own_types = _OWN_VALUE_TYPES.get(kind)
    if own_types is not None and set(map(type, values)) <= own_types:
        # filter(None, ...) leaves out NULLs and zeros (finite); NaN and infinity are true.
        if kind != _DECIMAL or all(map(Decimal.is_finite, filter(None, values))):
            return values
    converted: list[Any] = []
    last: Any = _db_values
    last_db: Any = None
    if kind == _JSON and type(db.ops).adapt_json_value is BaseDatabaseOperations.adapt_json_value:
        # A plain JSONField's dict or list is stored as `json.dumps(value)` (its
        # get_db_prep_save through adapt_json_value): written here without the five Python
        # calls around it (a batch's audit rows carry 1,500 of them).
        for value in values:
            if value is not last:
                last = value
                last_db = (
                    _json_text(value)
                    if type(value) is dict or type(value) is list
                    else _db_value(field, kind, value, db)
                )
            converted.append(last_db)
        return converted
    for value in values:
        if value is not last:
            last, last_db = value, _db_value(field, kind, value, db)
        converted.append(last_db)
    return converted


# json.dumps(value) with its default arguments: the standard library's own default encoder.
_json_text = json.JSONEncoder().encode


def _db_value(field: Field, kind: int, value: Any, db: Any) -> Any:
    """`field.get_db_prep_save(value, db)`, without the call where it returns the value (a
    DecimalField's a copy of a finite Decimal, equal in value and exponent)."""
    if (
        (value is None and kind != _CUSTOM)
        or (kind == _STR and isinstance(value, str))
        or (kind == _INT and type(value) is int)
        or (kind == _DECIMAL and type(value) is Decimal and value.is_finite())
    ):
        return value
    if hasattr(value, "resolve_expression"):
        raise TypeError(f"{field.name}: plain values only, not the expression {value!r}")
    return field.get_db_prep_save(value, db)


def _take_related_ids(rows: Sequence[models.Model], field: Any) -> None:
    """A related object assigned before it was saved gives its id now (as bulk_create's
    `_prepare_related_fields_for_save`); an unsaved one is an error, not a NULL. The rows'
    objects are mostly one (their account, their instrument): each one's id is read once."""
    cache_name, attname = field.cache_name, field.attname
    target_attname = field.target_field.attname
    last: Any = None
    target: Any = None
    for row in rows:
        obj = row._state.fields_cache.get(cache_name)
        if obj is None:
            continue
        if obj is not last:
            if obj.pk is None:
                raise ValueError(
                    f"insert_rows() prohibited to prevent data loss due to unsaved related "
                    f"object '{field.name}'."
                )
            last, target = obj, getattr(obj, target_attname)
        if getattr(row, attname) != target:
            setattr(row, attname, target)


def bulk_update_rows(
    model: type[Any], rows: Sequence[models.Model], fields: list[str], *, batch_size: int = 500
) -> None:
    """`bulk_update` without its per-row CASE WHEN expressions (Python-heavy: for a handful
    of rows its expressions cost more CPU than the round trip): on MySQL and MariaDB one
    UPDATE per `batch_size` rows, joined to the new values as a derived table (on MariaDB a
    table value constructor, which it plans in about two thirds of the time of as many
    SELECTs joined by UNION ALL); rows that all get the same values (a batch's orders all
    going OPEN at one instant, or a single row: the ORM's update costs more CPU than the
    round trip) take a plain UPDATE ... WHERE pk IN (...). Every value
    escaped by the driver (on MariaDB once per distinct value: `_values_list`); other
    databases use Django's bulk_update."""
    if not rows:
        return
    if len(rows) > batch_size:
        for start in range(0, len(rows), batch_size):
            bulk_update_rows(model, rows[start : start + batch_size], fields, batch_size=batch_size)
        return
    db = connections[DEFAULT_DB_ALIAS]  # what `connection` names, looked up once
    if db.vendor != "mysql":
        if len(rows) == 1:
            [row] = rows
            model.objects.filter(pk=row.pk).update(**{name: getattr(row, name) for name in fields})
        else:
            model.objects.bulk_update(rows, fields)
        return
    meta = model._meta
    pk = meta.pk
    columns = [meta.get_field(name) for name in fields]
    quote = db.ops.quote_name
    table = quote(meta.db_table)
    pks = [pk.get_db_prep_save(row.pk, db) for row in rows]
    new_values = [
        _db_values(field, _kind(field), [getattr(row, field.attname) for row in rows], db)
        for field in columns
    ]
    if all(_all_equal(column_values) for column_values in new_values):
        assignments = ", ".join(f"{quote(field.column)} = %s" for field in columns)
        where = f"{quote(pk.column)} IN ({', '.join(['%s'] * len(pks))})"
        # Only quoted names from the model's metadata are formatted in; every value is a %s.
        sql = f"UPDATE {table} SET {assignments} WHERE {where}"  # noqa: S608
        with db.cursor() as cursor:
            cursor.execute(sql, [column_values[0] for column_values in new_values] + pks)
        return
    if db.mysql_is_mariadb:  # type: ignore[attr-defined]  # MySQL's wrapper has it
        _update_joined_to_values(db, table, quote(pk.column), pks, columns, new_values)
        return
    names = [quote("__pk")] + [quote(field.column) for field in columns]
    first = ", ".join(f"%s AS {name}" for name in names)
    rest = ", ".join(["%s"] * len(names))
    derived = " UNION ALL ".join([f"SELECT {first}"] + [f"SELECT {rest}"] * (len(rows) - 1))
    params = [value for row_values in zip(pks, *new_values, strict=True) for value in row_values]
    assignments = ", ".join(
        f"{table}.{quote(field.column)} = v.{quote(field.column)}" for field in columns
    )
    # Only quoted names from the model's metadata are formatted in (above too); every value
    # is a %s or a value the driver escaped.
    join = f"{table}.{quote(pk.column)} = v.{quote('__pk')}"
    sql = f"UPDATE {table} JOIN ({derived}) v ON {join} SET {assignments}"  # noqa: S608
    with db.cursor() as cursor:
        cursor.execute(sql, params)


def _update_joined_to_values(
    db: Any,
    table: str,
    pk_column: str,
    pks: list[Any],
    fields: list[Field],
    new_values: list[list[Any]],
) -> None:
    """MariaDB's UPDATE of `bulk_update_rows`: the table joined by key to a table value
    constructor of the columns whose new values differ from row to row; a column given one
    value in every row (a batch's legs all going OPEN at one instant, with one broker
    status) is set to that value in the SET clause instead of being repeated in every row
    of the derived table (MariaDB reads and assigns each of its cells: the batch's legs'
    update carried 500 rows of ten columns for two that differ). Every value escaped by the
    driver."""
    quote = db.ops.quote_name
    columns = [
        (quote(field.column), values, _all_equal(values))
        for field, values in zip(fields, new_values, strict=True)
    ]
    names = [quote("__pk")] + [column for column, _, same in columns if not same]
    rows = _values_list(
        db, [pks, *(column_values for _, column_values, same in columns if not same)]
    )
    literal, encoding = db.connection.literal, db.connection.encoding  # connected just above
    assignments = ", ".join(
        f"{table}.{column} = {_literal(column_values[0], literal, encoding)}"
        if same
        else f"{table}.{column} = v.{column}"
        for column, column_values, same in columns
    )
    derived = f"WITH v ({', '.join(names)}) AS (VALUES {rows}) SELECT * FROM v"  # noqa: S608
    # Only quoted names from the model's metadata are formatted in; every value is one the
    # driver escaped.
    join = f"{table}.{pk_column} = v.{quote('__pk')}"
    sql = f"UPDATE {table} JOIN ({derived}) v ON {join} SET {assignments}"  # noqa: S608
    with db.cursor() as cursor:
        cursor.execute(sql)


def _values_list(db: Any, columns: Sequence[list[Any]]) -> str:
    """`(a, b, ...), (...)`: the rows of these columns (each a list of database values, one
    per row) as SQL literals, each value escaped by the driver itself (MySQLdb's `literal`,
    what it does to every %s parameter) and a value repeated in a column (an account id, a
    side, a status; 30,000 values in a batch's INSERT) escaped once: the driver spends a
    Python call per parameter, a batch's largest CPU cost after its own rows."""
    db.ensure_connection()
    literal = db.connection.literal
    encoding = db.connection.encoding
    texts = [_column_literals(values, literal, encoding) for values in columns]
    return ", ".join(["(" + ", ".join(row) + ")" for row in zip(*texts, strict=True)])


def _column_literals(values: list[Any], literal: Any, encoding: str) -> list[str]:
    """The driver's literal of each value (what `literal(value)` gives, as text): a column
    of one type takes a bulk conversion (ints and Decimals as the driver formats them, one
    text repeated, NULLs); otherwise each value on its own, a text seen before in the
    column looked up (equal texts escape alike)."""
    count = len(values)
    kinds = set(map(type, values))
    if len(kinds) == 1:
        kind = kinds.pop()
        if kind is int:
            return list(map(str, values))  # MySQLdb.converters.Thing2Str
        if kind is Decimal:
            return list(map(format, values, repeat("f", count)))  # Decimal2Literal
        if kind is type(None):
            return ["NULL"] * count
        if kind is str and values.count(values[0]) == count:
            return [literal(values[0]).decode(encoding)] * count
    seen: dict[str, str] = {}
    texts: list[str] = []
    append = texts.append
    for value in values:
        if isinstance(value, str):
            text = seen.get(value)
            if text is None:
                text = seen[value] = literal(value).decode(encoding)
        else:
            text = _literal(value, literal, encoding)
        append(text)
    return texts


def _all_equal(values: list[Any]) -> bool:
    """Every value the same (and of the same type: True and 1 are not)."""
    first = values[0]
    kind = type(first)
    return all(type(value) is kind and value == first for value in values)
