"""The columns that identify what a trader or a program names compare exactly on MariaDB
(`trading_site.core.exact_text`): account and strategy names, an order's client order id
(the Idempotency-Key) and external id, an alert webhook's public id. SQLite: nothing to do.
The accounts app's two columns are altered here too, so that one migration says it all."""

from django.db import migrations

from trading_site.core.exact_text import exact_collation, set_collation

COLUMNS = (
    ("accounts", "BrokerAccount", "account_name"),
    ("accounts", "Strategy", "name"),
    ("orders", "Order", "client_order_id"),
    ("orders", "Order", "external_id"),
    ("orders", "AlertWebhook", "public_id"),
)


def exact(apps, schema_editor):
    collation = exact_collation(schema_editor.connection)
    if collation is not None:
        set_collation(apps, schema_editor, COLUMNS, old=None, new=collation)


def as_before(apps, schema_editor):
    collation = exact_collation(schema_editor.connection)
    if collation is not None:
        set_collation(apps, schema_editor, COLUMNS, old=collation, new=None)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_squashed_0007_sync_digests"),
        ("orders", "0001_squashed_0012_user_order_counts"),
    ]

    operations = [
        migrations.RunPython(exact, as_before, atomic=False),
    ]
