"""DRF authentication: bearer session tokens, and Django's session login with CSRF."""

from rest_framework.authentication import BaseAuthentication, SessionAuthentication


class BearerTokenAuthentication(BaseAuthentication):
    """Placeholder until issue 2's token authentication lands."""

    def authenticate(self, request):
        return None

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class CsrfSessionAuthentication(SessionAuthentication):
    """Django's session login; DRF enforces CSRF for it on unsafe methods."""
