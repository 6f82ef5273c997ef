"""order_counts: each user's number of orders, kept by triggers on `orders`
(orders.order_count_triggers), read by the order list's unfiltered total."""

from django.db import migrations, models

from orders import order_count_triggers


def create_triggers(apps, schema_editor):
    order_count_triggers.create(schema_editor)


def drop_triggers(apps, schema_editor):
    order_count_triggers.drop(schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0011_list_indexes_in_id_order"),
    ]

    operations = [
        migrations.CreateModel(
            name="UserOrderCount",
            fields=[
                ("user_id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("total", models.BigIntegerField(default=0)),
            ],
            options={
                "db_table": "order_counts",
            },
        ),
        # Not atomic: MariaDB commits a CREATE TRIGGER at once (Django refuses DDL inside a
        # transaction there).
        migrations.RunPython(create_triggers, drop_triggers, atomic=False),
    ]
