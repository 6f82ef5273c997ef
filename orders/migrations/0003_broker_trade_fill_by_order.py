# A fill is an order's exchange trade number (XTS's ExecutionID repeats across segments and
# days). The new key holds every row the old one held (it has more columns), so no row can
# break it; it is added before the old one goes, so the account's foreign key always has an
# index starting with account_id.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_squashed_0007_sync_digests"),
        ("orders", "0002_exact_identifiers"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="brokertrade",
            constraint=models.UniqueConstraint(
                fields=("account", "broker_order_id", "execution_id"),
                name="uniq_broker_trade_fill",
            ),
        ),
        migrations.RemoveConstraint(
            model_name="brokertrade",
            name="uniq_broker_trade",
        ),
    ]
