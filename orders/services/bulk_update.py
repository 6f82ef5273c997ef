"""`bulk_update_rows`: many rows' new values in one UPDATE (the order services' batches)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection, models


def bulk_update_rows(
    model: type[Any], rows: Sequence[models.Model], fields: list[str], *, batch_size: int = 500
) -> None:
    """`bulk_update` without its per-row CASE WHEN expressions (Python-heavy: for a handful
    of rows its expressions cost more CPU than the round trip): on MariaDB one UPDATE per
    `batch_size` rows, joined to the new values as a derived table. Parameterised like every
    query; other databases use Django's bulk_update."""
    if not rows:
        return
    if len(rows) > batch_size:
        for start in range(0, len(rows), batch_size):
            bulk_update_rows(model, rows[start : start + batch_size], fields, batch_size=batch_size)
        return
    if len(rows) == 1:
        [row] = rows
        model.objects.filter(pk=row.pk).update(**{name: getattr(row, name) for name in fields})
        return
    if connection.vendor != "mysql":
        model.objects.bulk_update(rows, fields)
        return
    meta = model._meta
    pk = meta.pk
    columns = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    first = ", ".join(
        ["%s AS " + quote("__pk")] + [f"%s AS {quote(field.column)}" for field in columns]
    )
    rest = ", ".join(["%s"] * (len(columns) + 1))
    selects = [f"SELECT {first}"] + [f"SELECT {rest}"] * (len(rows) - 1)
    params: list = []
    for row in rows:
        params.append(pk.get_db_prep_save(row.pk, connection))
        params.extend(
            field.get_db_prep_save(getattr(row, field.attname), connection) for field in columns
        )
    table = quote(meta.db_table)
    assignments = ", ".join(
        f"{table}.{quote(field.column)} = v.{quote(field.column)}" for field in columns
    )
    # Only quoted names from the model's metadata are formatted in; every value is a %s.
    derived = " UNION ALL ".join(selects)
    join = f"{table}.{quote(pk.column)} = v.{quote('__pk')}"
    sql = f"UPDATE {table} JOIN ({derived}) v ON {join} SET {assignments}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
