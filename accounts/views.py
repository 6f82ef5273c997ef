"""Web pages of the accounts app: login/logout, the password change and the settings pages
for broker accounts, strategies and the regenerate permission (the settings home and
dashboard, which show other apps' data too, are in trading_site.pages; connect and the kill
switch in orders.views).

Views are thin: parse a form, call one service, render. The rules (credential checks, unique
names, the login throttle) live in the services they call.

The web login is two steps for a user with two-factor login: the password page keeps the
checked user in the session (not logged in) and sends the browser to the code page; only a
right code there logs in. Every code attempt takes a token from the login limiter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import (
    REDIRECT_FIELD_NAME,
    authenticate,
    update_session_auth_hash,
)
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts import api_keys, selectors, services, two_factor
from accounts.audit import user_actor
from accounts.http import AuthenticatedHttpRequest
from accounts.models import BrokerAccount, Strategy, User
from accounts.web_forms import (
    ApiKeyForm,
    BrokerAccountForm,
    LoginForm,
    RegeneratePermissionForm,
    StrategyForm,
    TwoFactorCodeForm,
    TwoFactorDisableForm,
    add_service_errors,
)
from trading_site.core.errors import DomainError, RateLimitExceeded
from trading_site.core.market_hours import MARKET_TZ

# The password-checked user waiting for the second step of the web login.
PENDING_LOGIN_KEY = "two_factor_pending_login"

# What a two-factor action returns to its answer (recovery codes, or nothing).
_Done = TypeVar("_Done")


def client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


# ---- login / logout -------------------------------------------------------------------


def _safe_next(request: HttpRequest, candidate: str) -> str:
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return ""


def _too_many_attempts(exc: RateLimitExceeded) -> str:
    return f"Too many login attempts. Try again in {exc.retry_after} seconds."


def _throttled(form, exc: RateLimitExceeded) -> int:
    form.add_error(None, _too_many_attempts(exc))
    return exc.retry_after


def _render_status(request, template: str, context: dict, status: int, retry_after: int = 0):
    response = render(request, template, context)
    response.status_code = status
    if status == 429:
        response["Retry-After"] = str(retry_after)
    return response


def _enrolment_url(next_url: str) -> str:
    return f"{reverse('two_factor')}?{urlencode({REDIRECT_FIELD_NAME: next_url or '/'})}"


@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    next_url = _safe_next(request, request.POST.get("next") or request.GET.get("next") or "")
    if request.user.is_authenticated and request.method == "GET":
        return redirect(next_url or "dashboard")
    form = LoginForm(request.POST or None)
    status, retry_after = 200, 0
    if request.method == "POST" and form.is_valid():
        username = form.cleaned_data["username"]
        try:
            # The same per-username and per-IP throttle as POST /api/login.
            services.check_login_rate(username=username, client_ip=client_ip(request))
        except RateLimitExceeded as exc:
            retry_after, status = _throttled(form, exc), 429
        else:
            user = authenticate(request, username=username, password=form.cleaned_data["password"])
            if user is None or not user.is_active:
                form.add_error(None, "Invalid username or password.")
            elif two_factor.has_two_factor(user):
                request.session[PENDING_LOGIN_KEY] = {
                    "user_id": user.pk,
                    "backend": user.backend,
                    "started": time.time(),
                    "next": next_url,
                }
                return redirect("login_code")
            else:
                auth_login(request, user)
                if user.is_staff:
                    messages.warning(
                        request,
                        "Staff accounts need two-factor login: set it up now to reach the admin.",
                    )
                    return redirect(_enrolment_url(next_url))
                return redirect(next_url or "dashboard")
    return _render_status(
        request, "accounts/login.html", {"form": form, "next": next_url}, status, retry_after
    )


def _pending_login(request: HttpRequest) -> tuple[User, dict] | None:
    pending = request.session.get(PENDING_LOGIN_KEY)
    if not isinstance(pending, dict):
        return None
    age = time.time() - float(pending.get("started", 0))
    if age > settings.TWO_FACTOR_LOGIN_TIMEOUT_SECONDS:
        request.session.pop(PENDING_LOGIN_KEY, None)
        return None
    user_id = pending.get("user_id")
    if user_id is None:
        return None
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return None
    return user, pending


@never_cache
@require_http_methods(["GET", "POST"])
def login_code(request: HttpRequest) -> HttpResponse:
    """The web login's second step: the authenticator code (or a recovery code)."""
    found = _pending_login(request)
    if found is None:
        messages.info(request, "Log in again: the two-factor step timed out or was not started.")
        return redirect("login")
    user, pending = found
    form = TwoFactorCodeForm(request.POST or None)
    status, retry_after = 200, 0
    if request.method == "POST" and form.is_valid():
        try:
            services.check_login_rate(username=user.get_username(), client_ip=client_ip(request))
        except RateLimitExceeded as exc:
            retry_after, status = _throttled(form, exc), 429
        else:
            method = two_factor.verify_second_factor(user=user, code=form.cleaned_data["code"])
            if method is None:
                form.add_error("code", "That code is wrong, expired or already used.")
                status = 400
            else:
                request.session.pop(PENDING_LOGIN_KEY, None)
                auth_login(request, user, backend=pending.get("backend"))
                two_factor.mark_session_verified(request.session, user)
                if method == two_factor.METHOD_RECOVERY:
                    left = two_factor.recovery_codes_left(user)
                    messages.warning(
                        request,
                        f"You used a recovery code; {left} left. Make new ones in Settings, "
                        "Two-factor login, if you are running low.",
                    )
                return redirect(pending.get("next") or "dashboard")
    return _render_status(
        request,
        "accounts/login_code.html",
        {"form": form, "pending_user": user},
        status,
        retry_after,
    )


@login_required
@require_http_methods(["GET", "POST"])
def password_change(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Change the password. Saving it ends the user's API tokens (accounts.signals), other
    browsers' sessions (Django's session hash) and their live sockets
    (monitoring.ws_revalidation); this browser's session is carried over."""
    form = PasswordChangeForm(request.user, request.POST or None)
    if request.method == "POST":
        # Each try of the old password is a guess like a login's (the same limiter): a
        # session left open must not be an unthrottled way to find the password.
        try:
            services.check_login_rate(
                username=request.user.get_username(), client_ip=client_ip(request)
            )
        except RateLimitExceeded as exc:
            messages.error(request, _too_many_attempts(exc))
            # A blank form, the old password unchecked: the answer tells nothing about it.
            context = {"form": PasswordChangeForm(request.user)}
            return _render_status(
                request, "accounts/password_change.html", context, 429, exc.retry_after
            )
    if request.method == "POST" and form.is_valid():
        user = form.save()
        update_session_auth_hash(request, user)
        messages.success(
            request, "Password changed. Your other sessions and API tokens have been ended."
        )
        return redirect("settings")
    status = 400 if request.method == "POST" else 200
    return render(request, "accounts/password_change.html", {"form": form}, status=status)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    # auth_logout flushes the whole session: a pending two-factor login goes with it.
    auth_logout(request)
    messages.success(request, "You have logged out.")
    return redirect("login")


# ---- settings -------------------------------------------------------------------------


def _own_account(request: HttpRequest, pk: int) -> BrokerAccount:
    return get_object_or_404(BrokerAccount, pk=pk, user=request.user)


def _settings_form_page(
    request: HttpRequest,
    form: forms.BaseForm,
    save: Callable[[], str],
    template: str,
    context: dict[str, Any],
) -> HttpResponse:
    """A settings form: a valid POST runs `save` (the service call, answering the success
    message) and returns to the settings page; a service's refusal lands on the form, shown
    again with `context`."""
    if request.method == "POST" and form.is_valid():
        try:
            message = save()
        except DomainError as exc:
            add_service_errors(form, exc.details, fallback=exc.message)
        else:
            messages.success(request, message)
            return redirect("settings")
    return render(request, template, {"form": form, **context})


@login_required
@require_http_methods(["GET", "POST"])
def account_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = BrokerAccountForm(request.POST or None)

    def save() -> str:
        account = services.create_broker_account(
            user=request.user,
            account_name=form.cleaned_data["account_name"],
            broker=form.cleaned_data["broker"],
            credentials=form.credentials(),
            confirm_live_orders=form.cleaned_data["confirm_live_orders"],
        )
        return f"Account “{account.account_name}” added."

    return _settings_form_page(request, form, save, "accounts/account_form.html", {"account": None})


@login_required
@require_http_methods(["GET", "POST"])
def account_edit(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    account = _own_account(request, pk)
    form = BrokerAccountForm(
        request.POST or None,
        editing=True,
        initial={
            "account_name": account.account_name,
            "confirm_live_orders": account.confirm_live_orders,
        },
    )

    def save() -> str:
        services.update_broker_account(
            account=account,
            account_name=form.cleaned_data["account_name"],
            credentials=form.credentials() or None,
            confirm_live_orders=None
            if account.is_paper
            else form.cleaned_data["confirm_live_orders"],
        )
        return f"Account “{account.account_name}” saved."

    # Read before `save`: a refused change leaves the stored credentials as they were.
    stored = sorted((account.credentials or {}).keys())
    return _settings_form_page(
        request,
        form,
        save,
        "accounts/account_form.html",
        {"account": account, "stored_credentials": stored},
    )


@login_required
@require_POST
def account_deactivate(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    account = _own_account(request, pk)
    services.deactivate_broker_account(account=account)
    messages.success(request, f"“{account.account_name}” is deactivated; its history is kept.")
    return redirect("settings")


@login_required
@require_http_methods(["GET", "POST"])
def strategy_edit(request: AuthenticatedHttpRequest, pk: int | None = None) -> HttpResponse:
    strategy = get_object_or_404(Strategy, pk=pk, user=request.user) if pk else None
    form = StrategyForm(request.POST or None, instance=strategy)

    def save() -> str:
        fields = {name: form.cleaned_data[name] for name in StrategyForm.Meta.fields}
        actor = user_actor(request.user)
        saved = (
            services.create_strategy(user=request.user, actor=actor, **fields)
            if strategy is None
            else services.update_strategy(strategy=strategy, actor=actor, **fields)
        )
        return f"Strategy “{saved.name}” saved."

    return _settings_form_page(
        request, form, save, "accounts/strategy_form.html", {"strategy": strategy}
    )


@login_required
@require_POST
def strategy_delete(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    strategy = get_object_or_404(Strategy, pk=pk, user=request.user)
    name = strategy.name
    services.delete_strategy(strategy=strategy, actor=user_actor(request.user))
    messages.success(request, f"Strategy “{name}” deleted.")
    return redirect("settings")


@login_required
@require_POST
def regenerate_permission(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = RegeneratePermissionForm(request.POST, user=request.user)
    if form.is_valid():
        try:
            services.set_regenerate_permission(
                user=request.user,
                enabled=form.cleaned_data["enabled"],
                strategy_ids=[s.pk for s in form.cleaned_data["strategies"]],
                actor=user_actor(request.user),
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Entry-regenerate permission saved.")
    else:
        messages.error(request, "Choose only your own strategies.")
    return redirect("settings")


# ---- two-factor login -----------------------------------------------------------------------


def _two_factor_context(request: AuthenticatedHttpRequest, **extra) -> dict:
    user = request.user
    device = two_factor.confirmed_device(user)
    pending = None if device else two_factor.pending_device(user)
    context = {
        "device": device,
        "enrolment": two_factor.enrolment_for(pending) if pending else None,
        "codes_left": two_factor.recovery_codes_left(user) if device else 0,
        "next": _safe_next(request, request.GET.get("next") or request.POST.get("next") or ""),
        "code_form": TwoFactorCodeForm(allow_recovery=False),
        "regenerate_form": TwoFactorCodeForm(),
        "disable_form": TwoFactorDisableForm(),
        "is_staff": user.is_staff,
    }
    context.update(extra)
    return context


def _counted_code_attempt(request: HttpRequest, form) -> int | None:
    """Count a code attempt on the login limiter; the Retry-After seconds when refused."""
    try:
        services.check_login_rate(
            username=request.user.get_username(), client_ip=client_ip(request)
        )
    except RateLimitExceeded as exc:
        return _throttled(form, exc)
    return None


def _with_current_code(
    request: AuthenticatedHttpRequest,
    form: forms.Form,
    *,
    form_name: str,
    act: Callable[[dict[str, Any]], _Done],
    answer: Callable[[_Done], HttpResponse],
) -> HttpResponse:
    """A two-factor POST that needs a current code: an invalid form is a 400, too many code
    attempts a 429, a refusal of the service (TwoFactorError) is shown on the form; else
    `act(cleaned_data)` does the work and `answer(what it returned)` responds."""
    status = 400
    retry_after: int | None = 0
    if form.is_valid():
        retry_after = _counted_code_attempt(request, form)
        if retry_after is not None:
            status = 429
        else:
            try:
                done = act(form.cleaned_data)
            except two_factor.TwoFactorError as exc:
                add_service_errors(form, exc.details, fallback=exc.message)
            else:
                return answer(done)
    context = _two_factor_context(request, **{form_name: form})
    return _render_status(request, "accounts/two_factor.html", context, status, retry_after or 0)


@never_cache
@login_required
@require_http_methods(["GET"])
def two_factor_settings(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Two-factor login: its state, the enrolment (secret and QR code) when being set up,
    new recovery codes, and turning it off."""
    return render(request, "accounts/two_factor.html", _two_factor_context(request))


@login_required
@require_POST
def two_factor_start(request: AuthenticatedHttpRequest) -> HttpResponse:
    try:
        two_factor.start_enrolment(user=request.user)
    except two_factor.TwoFactorError as exc:
        messages.error(request, exc.message)
    next_url = _safe_next(request, request.POST.get("next") or "")
    target = reverse("two_factor")
    return redirect(f"{target}?{urlencode({'next': next_url})}" if next_url else target)


@never_cache
@login_required
@require_POST
def two_factor_confirm(request: AuthenticatedHttpRequest) -> HttpResponse:
    def enabled(codes: list[str]) -> HttpResponse:
        two_factor.mark_session_verified(request.session, request.user)
        context = _two_factor_context(request, recovery_codes=codes, just_enabled=True)
        return render(request, "accounts/two_factor.html", context)

    return _with_current_code(
        request,
        TwoFactorCodeForm(request.POST, allow_recovery=False),
        form_name="code_form",
        act=lambda data: two_factor.confirm_enrolment(user=request.user, code=data["code"]),
        answer=enabled,
    )


@never_cache
@login_required
@require_POST
def two_factor_recovery_codes(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _with_current_code(
        request,
        TwoFactorCodeForm(request.POST),
        form_name="regenerate_form",
        act=lambda data: two_factor.regenerate_recovery_codes(user=request.user, code=data["code"]),
        answer=lambda codes: render(
            request,
            "accounts/two_factor.html",
            _two_factor_context(request, recovery_codes=codes),
        ),
    )


@login_required
@require_POST
def two_factor_disable(request: AuthenticatedHttpRequest) -> HttpResponse:
    def disabled(_: None) -> HttpResponse:
        request.session.pop(two_factor.SESSION_VERIFIED_KEY, None)
        messages.success(request, "Two-factor login is off.")
        return redirect("two_factor")

    return _with_current_code(
        request,
        TwoFactorDisableForm(request.POST),
        form_name="disable_form",
        act=lambda data: two_factor.disable_two_factor(
            user=request.user, password=data["password"], code=data["code"]
        ),
        answer=disabled,
    )


# ---- API keys -------------------------------------------------------------------------------


def _expiry_from_date(day) -> datetime | None:
    """The end of `day` in IST: a key 'expiring after 31 March' works all of 31 March."""
    if day is None:
        return None
    return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=MARKET_TZ)


def _api_keys_context(request: AuthenticatedHttpRequest, **extra) -> dict:
    context = {
        "api_keys": selectors.api_keys_for(user=request.user, include_revoked=True)[:100],
        "form": ApiKeyForm(user=request.user),
        "max_keys": api_keys.MAX_LIVE_API_KEYS,
    }
    context.update(extra)
    return context


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def api_keys_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    """List, create (the key shown on this answer only) and revoke API keys."""
    if request.method == "GET":
        return render(request, "accounts/api_keys.html", _api_keys_context(request))
    form = ApiKeyForm(request.POST, user=request.user)
    if form.is_valid():
        try:
            raw, created = api_keys.create_api_key(
                user=request.user,
                name=form.cleaned_data["name"],
                scope=form.cleaned_data["scope"],
                bound_account=form.cleaned_data["bound_account"],
                expires_at=_expiry_from_date(form.cleaned_data["expires_on"]),
                client_ip=client_ip(request),
            )
        except DomainError as exc:
            add_service_errors(
                form, exc.details, fallback=exc.message, field_map={"expires_at": "expires_on"}
            )
        else:
            # Rendered, not redirected: the key exists in this answer only (no-store).
            context = _api_keys_context(request, new_key=raw, new_key_row=created)
            return render(request, "accounts/api_keys.html", context)
    return render(
        request, "accounts/api_keys.html", _api_keys_context(request, form=form), status=400
    )


@login_required
@require_POST
def api_key_revoke(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    api_key = selectors.api_key_for(user=request.user, key_id=pk)
    api_keys.revoke_api_key(api_key=api_key)
    messages.success(request, f"API key “{api_key.name}” is revoked; it stopped working now.")
    return redirect("api_keys")
