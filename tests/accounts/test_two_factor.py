"""Two-factor login (issue 13, item 6): TOTP with recovery codes on the API login, the web
login and the admin; required of staff, optional for traders; every code attempt on the
login limiter."""

from __future__ import annotations

import base64
import re

import pytest
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from accounts import two_factor
from accounts.models import RecoveryCode, TwoFactorDevice
from tests.concurrency import posted_from_tabs_at_once
from tests.factories import (
    DEFAULT_PASSWORD,
    enable_two_factor,
    make_user,
    staff_client,
    totp_code,
)

pytestmark = pytest.mark.django_db


def _api_login(username: str, password: str = DEFAULT_PASSWORD, otp: str | None = None, **extra):
    body = {"username": username, "password": password}
    if otp is not None:
        body["otp"] = otp
    return APIClient(**extra).post("/api/login", body, format="json")


def _recovery_codes_for(user) -> list[str]:
    """Recovery codes the way the user gets them: made by the service, shown once."""
    return two_factor._replace_recovery_codes(user)


# ---- the code itself ---------------------------------------------------------------------------


def test_codes_follow_rfc_6238_test_vector():
    # RFC 6238 appendix B: the SHA-1 key "12345678901234567890", T = 59 s -> 94287082
    # (8 digits); authenticator apps show the last 6.
    secret = base64.b32encode(b"12345678901234567890").decode()
    assert two_factor.code_at_step(secret, 59 // 30) == "287082"
    assert two_factor.matching_step(secret, "287082", now=59) == 1


def test_a_code_one_step_off_is_accepted_two_steps_off_is_not():
    secret = two_factor.new_secret()
    now_step = two_factor.current_step()
    for offset in (-1, 0, 1):
        code = two_factor.code_at_step(secret, now_step + offset)
        assert two_factor.matching_step(secret, code) == now_step + offset
    for offset in (-3, -2, 2, 3):
        code = two_factor.code_at_step(secret, now_step + offset)
        if all(code != two_factor.code_at_step(secret, now_step + o) for o in (-1, 0, 1)):
            assert two_factor.matching_step(secret, code) is None


def test_the_secret_is_encrypted_at_rest():
    user = make_user()
    secret = enable_two_factor(user)
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM two_factor_devices WHERE user_id = %s", [user.pk])
        (stored,) = cursor.fetchone()
    assert secret not in stored
    assert TwoFactorDevice.objects.get(user=user).secret == secret


def test_recovery_codes_are_stored_as_hashes_only():
    user = make_user()
    enable_two_factor(user)
    codes = _recovery_codes_for(user)
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = list(RecoveryCode.objects.filter(user=user).values_list("code_hash", flat=True))
    for code in codes:
        plain = code.replace("-", "")
        assert all(plain not in value and code not in value for value in stored)


# ---- the API login -----------------------------------------------------------------------------


def test_api_login_without_a_code_says_the_code_is_required_and_gives_no_token():
    user = make_user(username="alice")
    enable_two_factor(user)
    response = _api_login("alice")
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "AUTHENTICATION_FAILED"
    assert body["details"] == {"otp": ["required"]}
    assert "session_token" not in body


def test_api_login_with_the_right_code_gives_a_token():
    user = make_user(username="alice")
    secret = enable_two_factor(user)
    response = _api_login("alice", otp=totp_code(secret))
    assert response.status_code == 200
    token = response.json()["session_token"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.get("/api/accounts").status_code == 200


def test_a_wrong_password_with_a_right_code_is_still_refused_without_saying_more():
    user = make_user(username="alice")
    secret = enable_two_factor(user)
    response = _api_login("alice", password="guess", otp=totp_code(secret))
    assert response.status_code == 401
    assert response.json()["details"] == {}


@pytest.mark.parametrize(
    "typed",
    [
        # The right code from a phone's full-width keyboard (an IME), and superscripts: digits
        # to str.isdigit, which hmac.compare_digest refused with a TypeError (a 500).
        lambda code: code.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"}),
        lambda code: "\u00b2" * len(code),
    ],
    ids=["full-width", "superscript"],
)
def test_a_code_of_non_ascii_digits_is_an_invalid_code_not_a_500(typed):
    user = make_user(username="alice")
    secret = enable_two_factor(user)
    response = _api_login("alice", otp=typed(totp_code(secret)))
    assert response.status_code == 401
    assert response.json()["details"] == {"otp": ["invalid"]}


def test_a_used_code_cannot_be_replayed_within_its_window():
    user = make_user(username="alice")
    secret = enable_two_factor(user)
    code = totp_code(secret)
    assert _api_login("alice", otp=code).status_code == 200
    replay = _api_login("alice", otp=code)
    assert replay.status_code == 401
    assert replay.json()["details"] == {"otp": ["invalid"]}


def test_an_older_code_is_refused_once_a_newer_one_was_used():
    user = make_user(username="alice")
    secret = enable_two_factor(user)
    assert _api_login("alice", otp=totp_code(secret, steps_from_now=1)).status_code == 200
    assert _api_login("alice", otp=totp_code(secret)).status_code == 401


def test_a_recovery_code_logs_in_once():
    user = make_user(username="alice")
    enable_two_factor(user)
    code = _recovery_codes_for(user)[3]
    assert _api_login("alice", otp=code.upper().replace("-", " ")).status_code == 200
    again = _api_login("alice", otp=code)
    assert again.status_code == 401
    assert two_factor.recovery_codes_left(user) == 9


def test_guessing_codes_is_throttled_like_guessing_passwords(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login_user": "4/0.001"}
    user = make_user(username="alice")
    secret = enable_two_factor(user)
    for guess in ("000000", "111111", "222222", "333333"):
        assert _api_login("alice", otp=guess).status_code == 401
    # The limit is reached: even the right code is refused now, and nothing is consumed.
    right = totp_code(secret)
    response = _api_login("alice", otp=right)
    assert response.status_code == 429
    assert TwoFactorDevice.objects.get(user=user).last_used_step is None


def test_code_guesses_on_the_web_count_against_the_api_login(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login_user": "3/0.001"}
    user = make_user(username="alice")
    secret = enable_two_factor(user)
    browser = Client()
    browser.post("/login/", {"username": "alice", "password": DEFAULT_PASSWORD})
    browser.post("/login/code/", {"code": "000000"})
    browser.post("/login/code/", {"code": "000001"})
    assert _api_login("alice", otp=totp_code(secret)).status_code == 429


def test_a_user_without_two_factor_logs_in_with_the_password_alone():
    make_user(username="bob")
    assert _api_login("bob").status_code == 200


def test_staff_without_two_factor_get_no_api_token():
    make_user(username="root", is_staff=True)
    response = _api_login("root")
    assert response.status_code == 403
    assert response.json()["code"] == "PERMISSION_DENIED"


def test_the_schema_documents_the_one_request_login_with_otp():
    user = make_user()
    schema = staff_client(user).get("/api/schema/?format=json")
    document = schema.json()
    login = document["paths"]["/api/login"]["post"]
    ref = login["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
    assert "otp" in document["components"]["schemas"][ref]["properties"]
    assert "otp" in login["responses"]["401"]["description"]


# ---- the web login -----------------------------------------------------------------------------


def test_the_web_login_asks_for_the_code_after_the_password_and_logs_in_only_then():
    user = make_user(username="alice")
    secret = enable_two_factor(user)
    browser = Client()
    response = browser.post("/login/", {"username": "alice", "password": DEFAULT_PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/login/code/"
    # Password alone: not logged in.
    assert browser.get("/settings/").status_code == 302
    wrong = browser.post("/login/code/", {"code": "000000"})
    assert wrong.status_code == 400
    assert browser.get("/settings/").status_code == 302
    right = browser.post("/login/code/", {"code": totp_code(secret)})
    assert right.status_code == 302
    assert browser.get("/settings/").status_code == 200


def test_the_code_page_without_a_password_step_sends_back_to_the_login():
    response = Client().get("/login/code/")
    assert response.status_code == 302 and response["Location"] == "/login/"


def test_a_pending_web_login_expires(settings):
    settings.TWO_FACTOR_LOGIN_TIMEOUT_SECONDS = 0
    user = make_user(username="alice")
    secret = enable_two_factor(user)
    browser = Client()
    browser.post("/login/", {"username": "alice", "password": DEFAULT_PASSWORD})
    response = browser.post("/login/code/", {"code": totp_code(secret)})
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert browser.get("/settings/").status_code == 302


def test_a_recovery_code_on_the_web_login_warns_how_many_are_left():
    user = make_user(username="alice")
    enable_two_factor(user)
    codes = _recovery_codes_for(user)
    browser = Client()
    browser.post("/login/", {"username": "alice", "password": DEFAULT_PASSWORD})
    response = browser.post("/login/code/", {"code": codes[0]}, follow=True)
    assert "9 left" in response.content.decode()


def test_web_code_guessing_is_throttled(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "login_user": "3/0.001"}
    user = make_user(username="alice")
    secret = enable_two_factor(user)
    browser = Client()
    browser.post("/login/", {"username": "alice", "password": DEFAULT_PASSWORD})  # 1
    browser.post("/login/code/", {"code": "000000"})  # 2
    browser.post("/login/code/", {"code": "000001"})  # 3
    response = browser.post("/login/code/", {"code": totp_code(secret)})
    assert response.status_code == 429
    assert "Too many login attempts" in response.content.decode()
    assert browser.get("/settings/").status_code == 302


# ---- staff and the admin -----------------------------------------------------------------------


def test_a_staff_user_without_two_factor_is_sent_to_enrol_before_the_admin():
    make_user(username="root", is_staff=True, is_superuser=True)
    browser = Client()
    login = browser.post(
        "/admin/login/?next=/admin/",
        {"username": "root", "password": DEFAULT_PASSWORD, "next": "/admin/"},
    )
    assert login.status_code == 302
    assert login["Location"].startswith("/settings/two-factor/")
    admin_page = browser.get("/admin/", follow=True)
    assert admin_page.redirect_chain[-1][0].startswith("/settings/two-factor/")
    assert b"Set up two-factor login" in admin_page.content
    assert browser.get("/admin/accounts/user/").status_code == 302


def test_a_staff_web_login_without_two_factor_goes_to_enrolment():
    make_user(username="root", is_staff=True)
    response = Client().post("/login/", {"username": "root", "password": DEFAULT_PASSWORD})
    assert response.status_code == 302
    assert response["Location"].startswith("/settings/two-factor/")


@pytest.fixture
def root_with_two_factor():
    """A superuser "root" who has set up two-factor login: (the user, its TOTP secret)."""
    root = make_user(username="root", is_staff=True, is_superuser=True)
    return root, enable_two_factor(root)


def test_the_admin_login_needs_the_code_of_a_staff_user_with_two_factor(root_with_two_factor):
    _root, secret = root_with_two_factor
    browser = Client()
    missing = browser.post(
        "/admin/login/", {"username": "root", "password": DEFAULT_PASSWORD, "next": "/admin/"}
    )
    assert missing.status_code == 200
    assert "Enter the code" in missing.content.decode()
    assert browser.get("/admin/").status_code == 302
    wrong = browser.post(
        "/admin/login/",
        {"username": "root", "password": DEFAULT_PASSWORD, "otp": "000000", "next": "/admin/"},
    )
    assert "wrong, expired or already used" in wrong.content.decode()
    right = browser.post(
        "/admin/login/",
        {
            "username": "root",
            "password": DEFAULT_PASSWORD,
            "otp": totp_code(secret),
            "next": "/admin/",
        },
    )
    assert right.status_code == 302
    assert browser.get("/admin/").status_code == 200


def test_a_staff_session_that_skipped_the_code_cannot_reach_the_admin(root_with_two_factor):
    root, _secret = root_with_two_factor
    browser = Client()
    browser.force_login(root)  # a session from before two-factor login, or a stolen cookie
    response = browser.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_web_login_with_the_code_opens_the_admin_to_staff(root_with_two_factor):
    _root, secret = root_with_two_factor
    browser = Client()
    browser.post("/login/", {"username": "root", "password": DEFAULT_PASSWORD, "next": "/admin/"})
    response = browser.post("/login/code/", {"code": totp_code(secret)})
    assert response["Location"] == "/admin/"
    assert browser.get("/admin/").status_code == 200


def test_the_verified_mark_is_bound_to_the_user_who_earned_it():
    root = make_user(username="root", is_staff=True, is_superuser=True)
    other = make_user(username="other", is_staff=True, is_superuser=True)
    enable_two_factor(other)
    browser = staff_client(root)
    browser.force_login(other)  # another staff user on the same browser, without a code
    assert browser.get("/admin/").status_code == 302


# ---- enrolment and turning it off --------------------------------------------------------------


def _enrol(browser: Client) -> str:
    browser.post("/settings/two-factor/start/")
    page = browser.get("/settings/two-factor/").content.decode()
    return re.search(r'data-secret="([A-Z2-7]+)"', page).group(1)


def test_enrolment_shows_the_secret_and_a_server_rendered_qr_code_then_recovery_codes():
    user = make_user(username="alice")
    browser = Client()
    browser.force_login(user)
    secret = _enrol(browser)
    page = browser.get("/settings/two-factor/").content.decode()
    assert 'src="data:image/svg+xml' in page
    assert two_factor.grouped_secret(secret) in page
    assert not two_factor.has_two_factor(user)  # not until a code proves the app works
    wrong = browser.post("/settings/two-factor/confirm/", {"code": "000000"})
    assert wrong.status_code == 400
    assert not two_factor.has_two_factor(user)
    done = browser.post("/settings/two-factor/confirm/", {"code": totp_code(secret)})
    assert done.status_code == 200
    body = done.content.decode()
    codes = re.findall(r"<li>([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})</li>", body)
    assert len(codes) == 10
    assert two_factor.has_two_factor(user)
    # Shown once: the page does not show them again.
    assert codes[0] not in browser.get("/settings/two-factor/").content.decode()


def test_a_staff_user_enrolling_reaches_the_admin_with_the_same_session():
    make_user(username="root", is_staff=True, is_superuser=True)
    browser = Client()
    browser.post("/login/", {"username": "root", "password": DEFAULT_PASSWORD})
    secret = _enrol(browser)
    browser.post("/settings/two-factor/confirm/", {"code": totp_code(secret), "next": "/admin/"})
    assert browser.get("/admin/").status_code == 200


def test_turning_it_off_needs_the_password_and_a_valid_code():
    user = make_user(username="alice")
    secret = enable_two_factor(user)
    browser = Client()
    browser.force_login(user)
    no_password = browser.post(
        "/settings/two-factor/disable/", {"password": "guess", "code": totp_code(secret)}
    )
    assert no_password.status_code == 400
    assert two_factor.has_two_factor(user)
    no_code = browser.post(
        "/settings/two-factor/disable/", {"password": DEFAULT_PASSWORD, "code": "000000"}
    )
    assert no_code.status_code == 400
    assert two_factor.has_two_factor(user)
    done = browser.post(
        "/settings/two-factor/disable/",
        {"password": DEFAULT_PASSWORD, "code": totp_code(secret, steps_from_now=1)},
    )
    assert done.status_code == 302
    assert not two_factor.has_two_factor(user)
    assert _api_login("alice").status_code == 200


def test_staff_cannot_turn_it_off():
    root = make_user(username="root", is_staff=True)
    secret = enable_two_factor(root)
    browser = staff_client(root)
    response = browser.post(
        "/settings/two-factor/disable/", {"password": DEFAULT_PASSWORD, "code": totp_code(secret)}
    )
    assert response.status_code == 400
    assert two_factor.has_two_factor(root)


def test_new_recovery_codes_end_the_old_ones():
    user = make_user(username="alice")
    secret = enable_two_factor(user)
    old = _recovery_codes_for(user)
    browser = Client()
    browser.force_login(user)
    response = browser.post("/settings/two-factor/recovery-codes/", {"code": totp_code(secret)})
    new = re.findall(r"<li>([a-z2-7-]{19})</li>", response.content.decode())
    assert len(new) == 10 and not set(new) & set(old)
    assert _api_login("alice", otp=old[0]).status_code == 401
    assert _api_login("alice", otp=new[0]).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_setting_up_two_factor_from_two_tabs_at_once_starts_one_enrolment():
    """Both clicks found no unconfirmed authenticator, both inserted one, and the later lost
    on the one device a user has: a 500 page."""
    user = make_user()
    assert posted_from_tabs_at_once(user, "/settings/two-factor/start/", {}) == [302] * 4
    assert TwoFactorDevice.objects.filter(user=user, confirmed_at__isnull=True).count() == 1
