"""The admin site, with two-factor login required of every staff user.

A staff session reaches the admin only after the second factor (accounts.two_factor marks
the session): at /admin/login/ (username, password and code in one form, throttled by the
login limiter) or through the web login. A staff user who has not set up two-factor login
is sent to set it up first; one whose session skipped the code (a login from before
two-factor login existed) is asked to log in again.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.two_factor import has_two_factor, mark_session_verified, session_is_verified

# Set by the admin login form on the request when the code it checked was right.
VERIFIED_BY_LOGIN_FORM = "_two_factor_verified_user"


class TwoFactorAdminSite(admin.AdminSite):
    def has_permission(self, request) -> bool:
        return super().has_permission(request) and session_is_verified(request)

    def login(self, request, extra_context=None):
        user = request.user
        if user.is_authenticated and user.is_active and user.is_staff:
            if not session_is_verified(request) and not has_two_factor(user):
                return HttpResponseRedirect(self._enrolment_url(request))
        response = super().login(request, extra_context)
        user = request.user  # the login view may have logged someone in
        if user.is_authenticated and getattr(request, VERIFIED_BY_LOGIN_FORM, None) == user.pk:
            mark_session_verified(request.session, user)
        elif user.is_authenticated and user.is_staff and not has_two_factor(user):
            # The password was right and there is no authenticator to ask for yet.
            return HttpResponseRedirect(self._enrolment_url(request))
        return response

    def _enrolment_url(self, request) -> str:
        index = reverse("admin:index", current_app=self.name)
        wanted = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME)
        if not wanted or not url_has_allowed_host_and_scheme(
            wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            wanted = index
        return f"{reverse('two_factor')}?{urlencode({REDIRECT_FIELD_NAME: wanted})}"
