"""The triggers that keep `order_counts` (`orders.models.UserOrderCount`) equal to each
user's number of orders, for MariaDB and SQLite (the embedded default), and the statement
that fills it from the orders already there. Used by the orders migration
(0001_squashed_0012_user_order_counts, first written as 0012).

Every order insert upserts its user's row (+1), every delete takes one off, and an update
that moves an order to another user (nothing does; the admin could) moves one. The row is
locked from the order's INSERT to its transaction's end. Every order is inserted by the
write-ahead transaction (`orders.services.placement.write_ahead`), which by then holds the
account row and the day's counter (`orders.services.account_lock`); after the INSERT it only
adds its own legs and audit rows, whose foreign keys take share locks on rows it already
holds or on the user's row, which no holder of this count row ever waits to write. So two
placements of one user on different accounts queue on the row for a moment and cannot
deadlock on it (tests/orders/test_order_counts.py races eight)."""

from __future__ import annotations

MYSQL_CREATE = [
    """
    CREATE TRIGGER order_counts_insert AFTER INSERT ON orders FOR EACH ROW
        INSERT INTO order_counts (user_id, total) VALUES (NEW.user_id, 1)
        ON DUPLICATE KEY UPDATE total = total + 1
    """,
    """
    CREATE TRIGGER order_counts_delete AFTER DELETE ON orders FOR EACH ROW
        UPDATE order_counts SET total = total - 1 WHERE user_id = OLD.user_id
    """,
    """
    CREATE TRIGGER order_counts_move AFTER UPDATE ON orders FOR EACH ROW
    BEGIN
        IF NEW.user_id <> OLD.user_id THEN
            UPDATE order_counts SET total = total - 1 WHERE user_id = OLD.user_id;
            INSERT INTO order_counts (user_id, total) VALUES (NEW.user_id, 1)
            ON DUPLICATE KEY UPDATE total = total + 1;
        END IF;
    END
    """,
]

SQLITE_CREATE = [
    """
    CREATE TRIGGER order_counts_insert AFTER INSERT ON orders
    BEGIN
        INSERT INTO order_counts (user_id, total) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET total = total + 1;
    END
    """,
    """
    CREATE TRIGGER order_counts_delete AFTER DELETE ON orders
    BEGIN
        UPDATE order_counts SET total = total - 1 WHERE user_id = OLD.user_id;
    END
    """,
    """
    CREATE TRIGGER order_counts_move AFTER UPDATE OF user_id ON orders
    WHEN NEW.user_id <> OLD.user_id
    BEGIN
        UPDATE order_counts SET total = total - 1 WHERE user_id = OLD.user_id;
        INSERT INTO order_counts (user_id, total) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET total = total + 1;
    END
    """,
]

DROP = [
    "DROP TRIGGER IF EXISTS order_counts_insert",
    "DROP TRIGGER IF EXISTS order_counts_delete",
    "DROP TRIGGER IF EXISTS order_counts_move",
]

# After the triggers exist: what they would have counted. An order committed meanwhile is
# either in this statement's snapshot (and its trigger's +1 is overwritten by the count) or
# after it (its +1 waits for this row's lock and adds to the count).
FILL = {
    "mysql": """
        INSERT INTO order_counts (user_id, total)
        SELECT user_id, COUNT(*) FROM orders GROUP BY user_id
        ON DUPLICATE KEY UPDATE total = VALUES(total)
    """,
    "sqlite": """
        INSERT INTO order_counts (user_id, total)
        SELECT user_id, COUNT(*) FROM orders WHERE true GROUP BY user_id
        ON CONFLICT (user_id) DO UPDATE SET total = excluded.total
    """,
}


def create(schema_editor) -> None:
    vendor = schema_editor.connection.vendor
    statements = {"mysql": MYSQL_CREATE, "sqlite": SQLITE_CREATE}.get(vendor)
    if statements is None:
        raise NotImplementedError(f"order_counts triggers for {vendor}: MariaDB and SQLite only")
    for statement in statements:
        schema_editor.execute(statement)
    schema_editor.execute(FILL[vendor])


def drop(schema_editor) -> None:
    for statement in DROP:
        schema_editor.execute(statement)
