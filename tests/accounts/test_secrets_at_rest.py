"""Credentials and access tokens are Fernet ciphertext in the database, and keys rotate."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from accounts.management.commands.rotate_fernet_keys import encrypted_fields
from accounts.models import Broker, BrokerAccount, BrokerSession
from orders.alerts.services import save_webhook
from tests.factories import enable_two_factor, make_account, make_strategy, make_user

pytestmark = pytest.mark.django_db

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
CREDENTIALS = {"app_key": "PLAIN-APP-KEY", "secret_key": "PLAIN-SECRET", "password": "pw-123"}


def _raw(table: str, column: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def _account_with_session() -> tuple[BrokerAccount, BrokerSession]:
    account = make_account(broker=Broker.IIFL, credentials=dict(CREDENTIALS))
    session = BrokerSession.objects.create(
        account=account,
        access_token="PLAIN-ACCESS-TOKEN",
        expires_at=timezone.now() + timedelta(hours=8),
    )
    return account, session


def test_credentials_column_holds_no_plaintext():
    account, _ = _account_with_session()
    raw = _raw("broker_accounts", "credentials", account.pk)
    for secret in CREDENTIALS.values():
        assert secret not in raw
    assert "app_key" not in raw  # even the key names are inside the ciphertext


def test_access_token_column_holds_no_plaintext():
    _, session = _account_with_session()
    raw = _raw("broker_sessions", "access_token", session.pk)
    assert "PLAIN-ACCESS-TOKEN" not in raw
    session.refresh_from_db()
    assert session.access_token == "PLAIN-ACCESS-TOKEN"


def test_rows_written_under_an_old_key_stay_readable_after_a_new_key_is_added(settings):
    settings.FERNET_KEYS = [KEY_A]
    account, session = _account_with_session()
    settings.FERNET_KEYS = [KEY_B, KEY_A]
    assert BrokerAccount.objects.get(pk=account.pk).credentials == CREDENTIALS
    assert BrokerSession.objects.get(pk=session.pk).access_token == "PLAIN-ACCESS-TOKEN"


def test_rotate_fernet_keys_reencrypts_every_row_with_the_newest_key(settings):
    settings.FERNET_KEYS = [KEY_A]
    account, session = _account_with_session()
    settings.FERNET_KEYS = [KEY_B, KEY_A]

    call_command("rotate_fernet_keys")

    raw_credentials = _raw("broker_accounts", "credentials", account.pk)
    raw_token = _raw("broker_sessions", "access_token", session.pk)
    only_b = Fernet(KEY_B.encode())
    assert json.loads(only_b.decrypt(raw_credentials.encode())) == CREDENTIALS
    assert only_b.decrypt(raw_token.encode()).decode() == "PLAIN-ACCESS-TOKEN"
    with pytest.raises(InvalidToken):
        Fernet(KEY_A.encode()).decrypt(raw_credentials.encode())
    # And the old key can now be dropped.
    settings.FERNET_KEYS = [KEY_B]
    assert BrokerAccount.objects.get(pk=account.pk).credentials == CREDENTIALS


def test_rotation_does_not_touch_updated_at(settings):
    settings.FERNET_KEYS = [KEY_A]
    account, _ = _account_with_session()
    before = BrokerAccount.objects.get(pk=account.pk).updated_at
    settings.FERNET_KEYS = [KEY_B, KEY_A]
    call_command("rotate_fernet_keys")
    assert BrokerAccount.objects.get(pk=account.pk).updated_at == before


def test_rotation_covers_two_factor_and_webhook_secrets(settings):
    fields = {(model.__name__, name) for model, name in encrypted_fields()}
    assert {("TwoFactorDevice", "secret"), ("AlertWebhook", "secret")} <= fields
    settings.FERNET_KEYS = [KEY_A]
    user = make_user()
    totp_secret = enable_two_factor(user)
    webhook = save_webhook(
        actor="test", strategy=make_strategy(user=user), account=make_account(user=user)
    )
    settings.FERNET_KEYS = [KEY_B, KEY_A]
    call_command("rotate_fernet_keys")
    only_b = Fernet(KEY_B.encode())
    raw_totp = _raw("two_factor_devices", "secret", user.two_factor_device.pk)
    raw_hook = _raw("alert_webhooks", "secret", webhook.pk)
    assert only_b.decrypt(raw_totp.encode()).decode() == totp_secret
    assert only_b.decrypt(raw_hook.encode()).decode() == webhook.secret
