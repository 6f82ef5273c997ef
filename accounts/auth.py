"""DRF authentication: bearer session tokens, and Django's session login with CSRF."""

from __future__ import annotations

import re

from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.exceptions import AuthenticationFailed

from accounts.services import authenticate_token

# secrets.token_urlsafe alphabet; anything else (or absurdly long) is malformed.
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{16,256}$")


class BearerTokenAuthentication(BaseAuthentication):
    """`Authorization: Bearer <token>` with a token from POST /api/login.

    No Authorization header, or another scheme: not ours (None), the next class may try.
    A Bearer header whose token is malformed, unknown, expired or revoked: 401.
    """

    keyword = "bearer"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        parts = header.split()
        if parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2 or not _TOKEN_SHAPE.match(parts[1]):
            raise AuthenticationFailed("Malformed Authorization header; use 'Bearer <token>'")
        found = authenticate_token(parts[1])
        if found is None:
            raise AuthenticationFailed("Invalid or expired token")
        user, session = found
        return user, session

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class CsrfSessionAuthentication(SessionAuthentication):
    """Django's session login (the browser UI); DRF enforces CSRF for it on unsafe methods."""
