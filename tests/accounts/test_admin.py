"""Admin: every accounts model is browsable, secrets never shown, actions work."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.api_keys import authenticate_api_key
from accounts.models import ApiKey, AuthSession, Broker, BrokerAccount, BrokerSession
from accounts.services import authenticate_token, create_auth_session
from tests import factories
from tests.factories import broker_account_admin_form, make_account, make_strategy, make_user

pytestmark = pytest.mark.django_db

SECRETS = {"app_key": "ADMIN-APP-KEY", "secret_key": "ADMIN-SECRET-KEY"}


@pytest.fixture
def staff_client(client):
    admin_user = make_user(username="root-admin", is_staff=True, is_superuser=True)
    return factories.staff_client(admin_user, client)


@pytest.mark.parametrize(
    "model",
    [
        "user",
        "authsession",
        "brokeraccount",
        "brokersession",
        "strategy",
        "entryregeneratepermission",
    ],
)
def test_every_accounts_changelist_renders(staff_client, model):
    account = make_account(broker=Broker.IIFL, credentials=dict(SECRETS))
    make_strategy(user=account.user)
    BrokerSession.objects.create(
        account=account, access_token="ADMIN-ACCESS-TOKEN", expires_at=timezone.now()
    )
    create_auth_session(user=account.user, client_ip="127.0.0.1", user_agent="x")
    response = staff_client.get(f"/admin/accounts/{model}/")
    assert response.status_code == 200
    page = response.content.decode()
    for secret in (*SECRETS.values(), "ADMIN-ACCESS-TOKEN"):
        assert secret not in page


def test_account_change_page_never_shows_credentials(staff_client):
    account = make_account(broker=Broker.IIFL, credentials=dict(SECRETS))
    page = staff_client.get(f"/admin/accounts/brokeraccount/{account.pk}/change/").content.decode()
    assert "ADMIN-APP-KEY" not in page and "ADMIN-SECRET-KEY" not in page
    assert "app_key, secret_key" in page  # which keys are stored is shown


def test_broker_session_page_never_shows_the_access_token(staff_client):
    account = make_account()
    session = BrokerSession.objects.create(
        account=account, access_token="ADMIN-ACCESS-TOKEN", expires_at=timezone.now()
    )
    page = staff_client.get(f"/admin/accounts/brokersession/{session.pk}/change/")
    assert page.status_code == 200
    assert "ADMIN-ACCESS-TOKEN" not in page.content.decode()


def _change_form(account: BrokerAccount, **credentials) -> dict:
    return broker_account_admin_form(
        user_id=account.user_id,
        account_name=account.account_name,
        broker=account.broker,
        **credentials,
    )


def test_blank_credential_fields_keep_the_stored_values(staff_client):
    account = make_account(broker=Broker.IIFL, credentials=dict(SECRETS))
    response = staff_client.post(
        f"/admin/accounts/brokeraccount/{account.pk}/change/",
        _change_form(account, secret_key="ROTATED-SECRET"),
    )
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.credentials == {"app_key": "ADMIN-APP-KEY", "secret_key": "ROTATED-SECRET"}


def test_admin_refuses_an_xts_account_without_required_credentials(staff_client):
    account = make_account(broker=Broker.PAPER)
    data = _change_form(account)
    data["broker"] = Broker.IIFL
    response = staff_client.post(f"/admin/accounts/brokeraccount/{account.pk}/change/", data)
    assert response.status_code == 200  # the form again, with the error
    account.refresh_from_db()
    assert account.broker == Broker.PAPER


def test_deactivate_accounts_action(staff_client):
    account = make_account()
    staff_client.post(
        "/admin/accounts/brokeraccount/",
        {"action": "deactivate_accounts", "_selected_action": [account.pk]},
    )
    account.refresh_from_db()
    assert account.is_active is False


def test_revoke_sessions_action_ends_the_token_at_once(staff_client):
    user = make_user()
    token, session = create_auth_session(user=user, client_ip=None, user_agent="")
    assert authenticate_token(token) is not None
    staff_client.post(
        "/admin/accounts/authsession/",
        {"action": "revoke_sessions", "_selected_action": [session.pk]},
    )
    assert authenticate_token(token) is None
    assert AuthSession.objects.get(pk=session.pk).revoked_at is not None


def test_revoke_keys_action_ends_the_key_at_once_and_says_how_many(staff_client):
    user = make_user()
    _key_client, raw_key, key = factories.api_key_client_for(user)
    assert authenticate_api_key(raw_key) is not None
    response = staff_client.post(
        "/admin/accounts/apikey/",
        {"action": "revoke_keys", "_selected_action": [key.pk]},
        follow=True,
    )
    assert "Revoked 1 API key(s)." in response.content.decode()
    assert authenticate_api_key(raw_key) is None
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None


def test_deleting_a_cached_session_or_api_key_in_the_admin_ends_it_at_once(staff_client):
    """A row deleted instead of revoked (the admin's delete, or its user's deletion): its
    copy in the shared cache authenticated for up to AUTH_TOKEN_CACHE_SECONDS more."""
    user = make_user()
    token, session = create_auth_session(user=user, client_ip=None, user_agent="")
    key_client, raw_key, key = factories.api_key_client_for(user)
    assert authenticate_token(token) is not None  # both now cached
    assert key_client.get("/api/accounts").status_code == 200
    for model, row in (("authsession", session), ("apikey", key)):
        response = staff_client.post(f"/admin/accounts/{model}/{row.pk}/delete/", {"post": "yes"})
        assert response.status_code == 302, response.content
    assert not AuthSession.objects.filter(pk=session.pk).exists()
    assert not ApiKey.objects.filter(pk=key.pk).exists()
    assert authenticate_token(token) is None
    assert authenticate_api_key(raw_key) is None
    assert key_client.get("/api/accounts").status_code == 401


def test_deleting_a_user_ends_their_cached_tokens_at_once(staff_client):
    user = make_user()
    token, _session = create_auth_session(user=user, client_ip=None, user_agent="")
    assert authenticate_token(token) is not None
    response = staff_client.post(f"/admin/accounts/user/{user.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302, response.content
    assert authenticate_token(token) is None


def test_auth_sessions_cannot_be_added_by_hand(staff_client):
    assert staff_client.get("/admin/accounts/authsession/add/").status_code == 403
    assert AuthSession.objects.count() == 0
