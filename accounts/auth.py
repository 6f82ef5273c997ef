"""DRF authentication: bearer session tokens and API keys, and Django's session login with
CSRF. What an API key may do is the permission classes' business (accounts.permissions)."""

from __future__ import annotations

import re

from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.exceptions import AuthenticationFailed

from accounts.api_keys import authenticate_api_key, looks_like_api_key
from accounts.services import authenticate_token

# secrets.token_urlsafe alphabet; anything else (or absurdly long) is malformed.
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{16,256}$")


class BearerTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>` with a token from POST /api/login, or an API key
    (`tdk_...`: told apart by its prefix, without a database hit).

    No Authorization header, or another scheme: not ours (None), the next class may try.
    A Bearer header whose token or key is malformed, unknown, expired or revoked: 401.
    `request.auth` is the AuthSession or the ApiKey.
    """

    keyword = "bearer"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        parts = header.split()
        # Whitespace alone (" ", or a latin-1 byte str.split() takes for a space): no scheme.
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2 or not _TOKEN_SHAPE.match(parts[1]):
            raise AuthenticationFailed("Malformed Authorization header; use 'Bearer <token>'")
        if looks_like_api_key(parts[1]):
            api_key = authenticate_api_key(parts[1])
            if api_key is None:
                raise AuthenticationFailed("Invalid, expired or revoked API key")
            return api_key.user, api_key
        found = authenticate_token(parts[1])
        if found is None:
            raise AuthenticationFailed("Invalid or expired token")
        user, session = found
        return user, session

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class CsrfSessionAuthentication(SessionAuthentication):
    """Django's session login (the browser UI); DRF enforces CSRF for it on unsafe methods."""
