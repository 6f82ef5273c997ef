"""The second version's changes in one migration (no data steps), replacing the 6 it was
written in: a database that applied those is already here."""
import accounts.crypto
import django.db.models.deletion
import orders.domain.vocabulary
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    replaces = [
        ('orders', '0002_xts_nullable_numbers_order_states'),
        ('orders', '0003_event_kinds_and_run_statuses'),
        ('orders', '0004_alert_webhooks'),
        ('orders', '0005_position_exit_kinds_broker_pos_instrument'),
        ('orders', '0006_trading_lock_and_not_sent'),
        ('orders', '0007_openalgo_requests'),
    ]

    dependencies = [
        ('accounts', '0002_squashed_0005_openalgo_analyzer_twin'),
        ('orders', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='AlertWebhook',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('public_id', models.CharField(max_length=32, unique=True)),
                ('secret', accounts.crypto.EncryptedTextField()),
                ('default_product', models.CharField(choices=[('MIS', 'MIS (intraday)'), ('NRML', 'NRML (carry forward)'), ('CNC', 'CNC (delivery)')], default=orders.domain.vocabulary.ProductType['MIS'], max_length=4)),
                ('enabled', models.BooleanField(default=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('secret_rotated_at', models.DateTimeField(blank=True, null=True)),
                ('last_alert_at', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'db_table': 'alert_webhooks',
            },
        ),
        migrations.CreateModel(
            name='OpenAlgoRequest',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('endpoint', models.CharField(max_length=32)),
                ('fingerprint', models.CharField(max_length=64)),
                ('window', models.BigIntegerField()),
                ('http_status', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('answer', models.JSONField(blank=True, null=True)),
                ('placed', models.BooleanField(default=False)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('answered_at', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'db_table': 'openalgo_requests',
            },
        ),
        migrations.CreateModel(
            name='PaperOrderState',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('status', models.CharField(max_length=20)),
                ('order_type', models.CharField(max_length=10)),
                ('product_type', models.CharField(max_length=4)),
                ('quantity', models.PositiveIntegerField()),
                ('limit_price', models.DecimalField(blank=True, decimal_places=4, max_digits=15, null=True)),
                ('stop_price', models.DecimalField(blank=True, decimal_places=4, max_digits=15, null=True)),
                ('reject_reason', models.TextField(blank=True, default='')),
                ('at', models.DateTimeField()),
            ],
            options={
                'db_table': 'paper_order_states',
            },
        ),
        migrations.CreateModel(
            name='PaperPositionConversion',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('exchange_segment', models.CharField(max_length=10)),
                ('exchange_instrument_id', models.BigIntegerField()),
                ('from_product', models.CharField(max_length=4)),
                ('to_product', models.CharField(max_length=4)),
                ('quantity', models.IntegerField()),
                ('at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'db_table': 'paper_position_conversions',
            },
        ),
        migrations.CreateModel(
            name='ReceivedAlert',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('received_at', models.DateTimeField(auto_now_add=True)),
                ('source_ip', models.GenericIPAddressField(blank=True, null=True)),
                ('shape', models.CharField(choices=[('alert', 'Alert (TradingView and similar)'), ('openalgo', 'OpenAlgo strategy webhook')], default='alert', max_length=10)),
                ('alert_id', models.CharField(blank=True, default='', max_length=64)),
                ('body', models.TextField(blank=True, default='')),
                ('body_truncated', models.BooleanField(default=False)),
                ('outcome', models.CharField(choices=[('received', 'Received (being placed)'), ('placed', 'Placed'), ('pending', 'Sent, broker did not answer'), ('rejected', 'Rejected by the broker'), ('not_sent', 'Not sent to the broker (nothing placed; send it again)'), ('duplicate', 'Duplicate (same id: not placed again)'), ('no_action', 'Position already at the target (nothing placed)'), ('invalid', 'Invalid alert'), ('refused', 'Refused'), ('rate_limited', 'Rate limited'), ('bad_secret', 'Wrong secret'), ('error', 'Internal error')], default='received', max_length=12)),
                ('http_status', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('error', models.TextField(blank=True, default='')),
                ('details', models.JSONField(blank=True, default=dict)),
            ],
            options={
                'db_table': 'received_alerts',
            },
        ),
        migrations.AlterField(
            model_name='brokerorder',
            name='cumulative_quantity',
            field=models.PositiveIntegerField(blank=True, default=0, null=True),
        ),
        migrations.AlterField(
            model_name='brokerorder',
            name='leaves_quantity',
            field=models.PositiveIntegerField(blank=True, default=0, null=True),
        ),
        migrations.AlterField(
            model_name='brokerorder',
            name='order_quantity',
            field=models.PositiveIntegerField(blank=True, default=0, null=True),
        ),
        migrations.AlterField(
            model_name='brokerposition',
            name='buy_amount',
            field=models.DecimalField(blank=True, decimal_places=2, default=Decimal('0'), max_digits=15, null=True),
        ),
        migrations.AlterField(
            model_name='brokerposition',
            name='buy_qty',
            field=models.PositiveIntegerField(blank=True, default=0, null=True),
        ),
        migrations.AlterField(
            model_name='brokerposition',
            name='mtm',
            field=models.DecimalField(blank=True, decimal_places=2, default=Decimal('0'), max_digits=15, null=True),
        ),
        migrations.AlterField(
            model_name='brokerposition',
            name='net_amount',
            field=models.DecimalField(blank=True, decimal_places=2, default=Decimal('0'), max_digits=15, null=True),
        ),
        migrations.AlterField(
            model_name='brokerposition',
            name='net_qty',
            field=models.IntegerField(blank=True, default=0, null=True),
        ),
        migrations.AlterField(
            model_name='brokerposition',
            name='realized_mtm',
            field=models.DecimalField(blank=True, decimal_places=2, default=Decimal('0'), max_digits=15, null=True),
        ),
        migrations.AlterField(
            model_name='brokerposition',
            name='sell_amount',
            field=models.DecimalField(blank=True, decimal_places=2, default=Decimal('0'), max_digits=15, null=True),
        ),
        migrations.AlterField(
            model_name='brokerposition',
            name='sell_qty',
            field=models.PositiveIntegerField(blank=True, default=0, null=True),
        ),
        migrations.AlterField(
            model_name='brokerposition',
            name='unrealized_mtm',
            field=models.DecimalField(blank=True, decimal_places=2, default=Decimal('0'), max_digits=15, null=True),
        ),
        migrations.AlterField(
            model_name='order',
            name='source',
            field=models.CharField(choices=[('MANUAL', 'Manual'), ('ALGO', 'Algo'), ('BATCH', 'Batch'), ('SCHEDULED', 'Scheduled'), ('REGENERATED', 'Regenerated'), ('KILL_SWITCH', 'Kill switch'), ('ALERT', 'Alert webhook'), ('OPENALGO', 'OpenAlgo API')], default='MANUAL', max_length=12),
        ),
        migrations.AlterField(
            model_name='orderevent',
            name='kind',
            field=models.CharField(choices=[('order_created', 'Order created'), ('order_status', 'Order status changed'), ('archived', 'Archived'), ('leg_accepted', 'Leg accepted'), ('leg_rejected', 'Leg rejected'), ('leg_submit_unknown', 'Leg submission outcome unknown'), ('leg_synced', 'Leg synced'), ('leg_reconciled', 'Pending leg reconciled'), ('leg_unconfirmed', 'Pending leg never confirmed'), ('leg_modified', 'Leg modified'), ('leg_modified_failed', 'Leg modification failed'), ('leg_repriced', 'Leg re-priced'), ('leg_repriced_failed', 'Leg re-pricing failed'), ('leg_cancelled', 'Leg cancelled'), ('leg_cancelled_failed', 'Leg cancellation failed'), ('exit_created', 'Exit leg created'), ('exit_reduced', 'Exit leg reduced'), ('exit_cancelled', 'Exit leg cancelled'), ('exit_reduce_failed', 'Exit leg reduction failed'), ('kill_switch', 'Kill switch'), ('kill_switch_cancel', 'Kill switch cancelled a leg'), ('kill_switch_cancel_failed', 'Kill switch cancellation failed'), ('trading_locked', 'Trading locked'), ('trading_unlocked', 'Trading re-enabled'), ('key_released', 'Idempotency key released (not sent)'), ('illegal_transition', 'Illegal transition refused'), ('position_exit', 'Position exit'), ('position_exit_cancel', 'Position exit cancelled a leg'), ('position_exit_cancel_failed', 'Position exit cancellation failed'), ('positions_exit_requested', 'Exit of positions requested'), ('positions_exit_sent', 'Exit orders sent'), ('positions_exit_incomplete', 'Exit orders sent, with problems'), ('positions_exit_failed', 'Exit not sent')], max_length=48),
        ),
        migrations.AlterField(
            model_name='scheduledorderrun',
            name='status',
            field=models.CharField(choices=[('STARTED', 'Started'), ('PLACED', 'Placed'), ('REJECTED', 'Rejected'), ('FAILED', 'Failed'), ('MISSED', 'Missed')], default='STARTED', max_length=16),
        ),
        migrations.AddIndex(
            model_name='brokerposition',
            index=models.Index(fields=['exchange_segment', 'exchange_instrument_id'], name='broker_pos_instrument'),
        ),
        migrations.AddField(
            model_name='alertwebhook',
            name='account',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='alert_webhooks', to='accounts.brokeraccount'),
        ),
        migrations.AddField(
            model_name='alertwebhook',
            name='strategy',
            field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='alert_webhook', to='accounts.strategy'),
        ),
        migrations.AddField(
            model_name='alertwebhook',
            name='user',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='alert_webhooks', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='openalgorequest',
            name='account',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='openalgo_requests', to='accounts.brokeraccount'),
        ),
        migrations.AddField(
            model_name='openalgorequest',
            name='api_key',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='openalgo_requests', to='accounts.apikey'),
        ),
        migrations.AddField(
            model_name='paperorderstate',
            name='order',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='states', to='orders.paperorder'),
        ),
        migrations.AddField(
            model_name='paperpositionconversion',
            name='book',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='conversions', to='orders.paperbook'),
        ),
        migrations.AddField(
            model_name='receivedalert',
            name='order',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='orders.order'),
        ),
        migrations.AddField(
            model_name='receivedalert',
            name='user',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='received_alerts', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='receivedalert',
            name='webhook',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='alerts', to='orders.alertwebhook'),
        ),
        migrations.AddIndex(
            model_name='openalgorequest',
            index=models.Index(fields=['api_key', 'created_at'], name='openalgo_re_api_key_fa012a_idx'),
        ),
        migrations.AddConstraint(
            model_name='openalgorequest',
            constraint=models.UniqueConstraint(fields=('fingerprint', 'window'), name='uniq_openalgo_request'),
        ),
        migrations.AddIndex(
            model_name='paperorderstate',
            index=models.Index(fields=['order', 'at'], name='paper_order_state_time'),
        ),
        migrations.AddIndex(
            model_name='receivedalert',
            index=models.Index(fields=['webhook', '-received_at'], name='received_al_webhook_5c925f_idx'),
        ),
        migrations.AddIndex(
            model_name='receivedalert',
            index=models.Index(fields=['user', '-received_at'], name='received_al_user_id_53c75c_idx'),
        ),
    ]
