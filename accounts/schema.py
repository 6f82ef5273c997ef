"""OpenAPI descriptions of the two ways to authenticate (drf-spectacular extensions)."""

from trading_site.core.api.schema import SecurityScheme


class BearerTokenScheme(SecurityScheme):
    target_class = "accounts.auth.BearerTokenAuthentication"
    name = "bearerToken"
    definition = {
        "type": "http",
        "scheme": "bearer",
        "description": (
            "The session_token from POST /api/login, or an API key (`tdk_...`, from "
            "/api/api-keys or Settings, API keys). A read-scoped key gets 403 "
            "PERMISSION_DENIED on every write."
        ),
    }


class CsrfSessionScheme(SecurityScheme):
    target_class = "accounts.auth.CsrfSessionAuthentication"
    name = "sessionCookie"
    definition = {
        "type": "apiKey",
        "in": "cookie",
        "name": "sessionid",
        "description": "The browser's Django session; unsafe methods need X-CSRFToken.",
    }
