"""Text that names or identifies something compares exactly, on MariaDB as in SQLite.

MariaDB's utf8mb4 collations (`utf8mb4_unicode_ci`, `utf8mb4_general_ci`) fold case and
accents and give every character beyond the Basic Multilingual Plane one weight, so
"Key-A" = "key-a", "café" = "cafe" and "🚀 scalper" = "🌙 scalper". For an
Idempotency-Key or a client order id that made a new order a replay of another one (or a
409); for a strategy named by an OpenAlgo client it attributed the order, its regeneration
rights and its PnL to another strategy. SQLite (the embedded default) compares bytes, so the
two databases disagreed.

The columns that identify something a trader or a program names are given an exact
collation: `utf8mb4_nopad_bin` on MariaDB (bytes, no padding: "a " is not "a"),
`utf8mb4_0900_bin` on MySQL 8, else `utf8mb4_bin`. SQLite needs nothing. Used by a migration
(orders 0002_exact_identifiers); the models do not name the collation, so that one set of
migrations serves both databases. Mind it when a later migration alters one of these columns
(its length, say): MariaDB rewrites the column with the table's collation unless that
migration sets the exact one again (`set_collation`).
`tests/orders/api/test_exact_identifiers.py` reads the columns' collations after every
migration and fails if one was lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

EXACT_COLLATIONS = ("utf8mb4_nopad_bin", "utf8mb4_0900_bin", "utf8mb4_bin")


def exact_collation(connection: Any) -> str | None:
    """The server's exact utf8mb4 collation, or None where text already compares exactly
    (SQLite) or none is known."""
    if connection.vendor != "mysql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SHOW COLLATION WHERE Charset = 'utf8mb4'")
        known = {row[0] for row in cursor.fetchall()}
    return next((name for name in EXACT_COLLATIONS if name in known), None)


def set_collation(
    apps: Any,
    schema_editor: Any,
    columns: Sequence[tuple[str, str, str]],
    *,
    old: str | None,
    new: str | None,
) -> None:
    """Move each (app label, model, field) column from collation `old` to `new` (None: the
    table's default) through the schema editor, which keeps the column's type, null and
    default, and rebuilds the indexes the column is in."""
    for app_label, model_name, field_name in columns:
        model = apps.get_model(app_label, model_name)
        field = model._meta.get_field(field_name)
        schema_editor.alter_field(model, _collated(field, model, old), _collated(field, model, new))


def _collated(field: Any, model: Any, collation: str | None) -> Any:
    copy = field.clone()
    copy.set_attributes_from_name(field.name)
    copy.model = model
    copy.db_collation = collation
    return copy
