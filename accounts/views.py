"""Web pages of the accounts app: login/logout, the password change and the settings pages
for broker accounts, strategies and the regenerate permission (the settings home and
dashboard, which show other apps' data too, are in trading_site.pages; connect and the kill
switch in orders.views).

Views are thin: parse a form, call one service, render. The rules (credential checks, unique
names, the login throttle) live in the services they call.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import authenticate, update_session_auth_hash
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from accounts import services
from accounts.models import BrokerAccount, Strategy
from accounts.web_forms import (
    BrokerAccountForm,
    LoginForm,
    RegeneratePermissionForm,
    StrategyForm,
    add_service_errors,
)
from trading_site.core.errors import DomainError, RateLimitExceeded


def client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR") or None


# ---- login / logout -------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = ""
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
            retry_after = exc.retry_after
            form.add_error(None, f"Too many login attempts. Try again in {retry_after} seconds.")
            status = 429
        else:
            user = authenticate(request, username=username, password=form.cleaned_data["password"])
            if user is None or not user.is_active:
                form.add_error(None, "Invalid username or password.")
            else:
                auth_login(request, user)
                return redirect(next_url or "dashboard")
    response = render(request, "accounts/login.html", {"form": form, "next": next_url})
    response.status_code = status
    if status == 429:
        response["Retry-After"] = str(retry_after)
    return response


@login_required
@require_http_methods(["GET", "POST"])
def password_change(request: HttpRequest) -> HttpResponse:
    """Change the password. Saving it ends the user's API tokens (accounts.signals), other
    browsers' sessions (Django's session hash) and their live sockets
    (monitoring.ws_revalidation); this browser's session is carried over."""
    form = PasswordChangeForm(request.user, request.POST or None)
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
    auth_logout(request)
    messages.success(request, "You have logged out.")
    return redirect("login")


# ---- settings -------------------------------------------------------------------------


def _own_account(request: HttpRequest, pk: int) -> BrokerAccount:
    return get_object_or_404(BrokerAccount, pk=pk, user=request.user)


@login_required
@require_http_methods(["GET", "POST"])
def account_create(request: HttpRequest) -> HttpResponse:
    form = BrokerAccountForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            account = services.create_broker_account(
                user=request.user,
                account_name=form.cleaned_data["account_name"],
                broker=form.cleaned_data["broker"],
                credentials=form.credentials(),
            )
        except DomainError as exc:
            add_service_errors(form, exc.details, fallback=exc.message)
        else:
            messages.success(request, f"Account “{account.account_name}” added.")
            return redirect("settings")
    return render(request, "accounts/account_form.html", {"form": form, "account": None})


@login_required
@require_http_methods(["GET", "POST"])
def account_edit(request: HttpRequest, pk: int) -> HttpResponse:
    account = _own_account(request, pk)
    form = BrokerAccountForm(
        request.POST or None, editing=True, initial={"account_name": account.account_name}
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.update_broker_account(
                account=account,
                account_name=form.cleaned_data["account_name"],
                credentials=form.credentials() or None,
            )
        except DomainError as exc:
            add_service_errors(form, exc.details, fallback=exc.message)
        else:
            messages.success(request, f"Account “{account.account_name}” saved.")
            return redirect("settings")
    stored = sorted((account.credentials or {}).keys())
    return render(
        request,
        "accounts/account_form.html",
        {"form": form, "account": account, "stored_credentials": stored},
    )


@login_required
@require_POST
def account_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    account = _own_account(request, pk)
    services.deactivate_broker_account(account=account)
    messages.success(request, f"“{account.account_name}” is deactivated; its history is kept.")
    return redirect("settings")


@login_required
@require_http_methods(["GET", "POST"])
def strategy_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    strategy = get_object_or_404(Strategy, pk=pk, user=request.user) if pk else None
    form = StrategyForm(request.POST or None, instance=strategy)
    if request.method == "POST" and form.is_valid():
        fields = {name: form.cleaned_data[name] for name in StrategyForm.Meta.fields}
        try:
            if strategy is None:
                strategy = services.create_strategy(user=request.user, **fields)
            else:
                services.update_strategy(strategy=strategy, **fields)
        except DomainError as exc:
            add_service_errors(form, exc.details, fallback=exc.message)
        else:
            messages.success(request, f"Strategy “{strategy.name}” saved.")
            return redirect("settings")
    return render(request, "accounts/strategy_form.html", {"form": form, "strategy": strategy})


@login_required
@require_POST
def strategy_delete(request: HttpRequest, pk: int) -> HttpResponse:
    strategy = get_object_or_404(Strategy, pk=pk, user=request.user)
    name = strategy.name
    services.delete_strategy(strategy=strategy)
    messages.success(request, f"Strategy “{name}” deleted.")
    return redirect("settings")


@login_required
@require_POST
def regenerate_permission(request: HttpRequest) -> HttpResponse:
    form = RegeneratePermissionForm(request.POST, user=request.user)
    if form.is_valid():
        try:
            services.set_regenerate_permission(
                user=request.user,
                enabled=form.cleaned_data["enabled"],
                strategy_ids=[s.pk for s in form.cleaned_data["strategies"]],
            )
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Entry-regenerate permission saved.")
    else:
        messages.error(request, "Choose only your own strategies.")
    return redirect("settings")
