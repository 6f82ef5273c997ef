"""The second version's changes in one migration (no data steps), replacing the 2 it was
written in: a database that applied those is already here."""
import django.db.models.deletion
from decimal import Decimal
from django.db import migrations, models


class Migration(migrations.Migration):
    replaces = [
        ('pnl', '0002_lot_entry_side_choices'),
        ('pnl', '0003_brokerage_plan_and_mtm_samples'),
    ]

    dependencies = [
        ('accounts', '0002_squashed_0005_openalgo_analyzer_twin'),
        ('pnl', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='pnllot',
            name='entry_side',
            field=models.CharField(choices=[('BUY', 'Buy'), ('SELL', 'Sell')], max_length=4),
        ),
        migrations.CreateModel(
            name='BrokeragePlanSetting',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('mode', models.CharField(choices=[('FLAT', 'Flat per executed order'), ('PERCENT', 'Percentage of turnover, capped per order')], default='FLAT', max_length=8)),
                ('flat_per_order', models.DecimalField(decimal_places=2, default=Decimal('20'), max_digits=9)),
                ('percent', models.DecimalField(decimal_places=4, default=Decimal('0.03'), max_digits=7)),
                ('cap_per_order', models.DecimalField(blank=True, decimal_places=2, default=Decimal('20'), max_digits=9, null=True)),
                ('delivery_free', models.BooleanField(default=False)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('account', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='brokerage_plan', to='accounts.brokeraccount')),
            ],
            options={
                'db_table': 'pnl_brokerage_plans',
            },
        ),
        migrations.CreateModel(
            name='MtmSample',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('trading_date', models.DateField()),
                ('minute', models.DateTimeField()),
                ('mtm', models.DecimalField(decimal_places=2, max_digits=15)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('account', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='mtm_samples', to='accounts.brokeraccount')),
            ],
            options={
                'db_table': 'pnl_mtm_samples',
                'indexes': [models.Index(fields=['account', 'trading_date', 'minute'], name='pnl_mtm_sam_account_feb363_idx')],
                'constraints': [models.UniqueConstraint(fields=('account', 'minute'), name='uniq_mtm_sample_minute')],
            },
        ),
    ]
