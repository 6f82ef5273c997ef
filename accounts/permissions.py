"""DRF permissions for API keys: what a key may do once it has authenticated.

`ApiKeyScope` is in DEFAULT_PERMISSION_CLASSES, and every view that sets its own
`permission_classes` lists it too (a test walks the URLconf to hold every view to it):
- a `read` key may only read: any other method is 403 PERMISSION_DENIED;
- a key bound to one broker account is for the account-scoped API; the desk's own API spans
  every account of the user, so it refuses bound keys (403) rather than let them act on
  other accounts.
`SessionCredentialsOnly` guards the key management itself: an API key cannot mint keys.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.models import ApiKey


class ApiKeyScope(BasePermission):
    message = "This API key is read-only; writing needs a key with the trade scope"

    def has_permission(self, request, view) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return True
        if api_key.bound_account_id is not None and not getattr(
            view, "accepts_bound_api_keys", False
        ):
            self.message = (
                "This API key is bound to one broker account; it works only on the "
                "account-scoped API"
            )
            return False
        if request.method not in SAFE_METHODS and not api_key.allows_trading:
            self.message = ApiKeyScope.message
            return False
        return True


class SessionCredentialsOnly(BasePermission):
    """A session token or the browser's session: an API key (even a trade one) cannot
    create, list or revoke keys, so a leaked key cannot make itself permanent."""

    message = "API keys cannot manage API keys; use a session token or the web page"

    def has_permission(self, request, view) -> bool:
        return not isinstance(request.auth, ApiKey)
