"""The OpenAlgo API's credentials: the `apikey` in the JSON body (OpenAlgo's way), one of the
desk's API keys (accounts.api_keys), bound to exactly one broker account."""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed, ParseError

from accounts.api_keys import authenticate_api_key
from accounts.models import ApiKey
from accounts.permissions import ApiKeyScope

INVALID_KEY = "Invalid openalgo apikey"


KEY_HEADER = "X-API-KEY"


class BodyApiKeyAuthentication(BaseAuthentication):
    """`{"apikey": "tdk_..."}` in the JSON body (or, as some OpenAlgo endpoints take it, the
    `X-API-KEY` header; never the query string, which proxies log). Missing, malformed,
    unknown, expired or revoked: refused (OpenAlgo answers 403 for all, and so does this)."""

    def authenticate(self, request):
        data = request.data
        if not isinstance(data, dict):
            raise ParseError("The body must be a JSON object")
        raw = data.get("apikey") or request.headers.get(KEY_HEADER)
        if not isinstance(raw, str) or not raw.strip():
            raise AuthenticationFailed("apikey is required")
        api_key = authenticate_api_key(raw.strip())
        if api_key is None:
            raise AuthenticationFailed(INVALID_KEY)
        return api_key.user, api_key

    def authenticate_header(self, request):
        return None


class BoundApiKeyScope(ApiKeyScope):
    """The OpenAlgo API's rules for a key (a kind of the desk's ApiKeyScope): it must be
    bound to one broker account (OpenAlgo's one-broker model), and only a `trade` key may
    place, change or cancel (`view.places_orders`). Every OpenAlgo call is a POST, reads
    included, so the scope is the view's to say, not the method's."""

    def has_permission(self, request, view) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            self.message = INVALID_KEY
            return False
        if api_key.bound_account_id is None:
            self.message = (
                "This API key is not bound to a broker account; the OpenAlgo API acts for "
                "one account: make a key bound to one (Settings, API keys)"
            )
            return False
        if getattr(view, "places_orders", False) and not api_key.allows_trading:
            self.message = ApiKeyScope.message
            return False
        return True
