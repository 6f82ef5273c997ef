"""OpenAPI descriptions of the two ways to authenticate (drf-spectacular extensions)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.auth.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "The session_token from POST /api/login, or an API key (`tdk_...`, from "
                "/api/api-keys or Settings, API keys). A read-scoped key gets 403 "
                "PERMISSION_DENIED on every write."
            ),
        }


class CsrfSessionScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.auth.CsrfSessionAuthentication"
    name = "sessionCookie"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "The browser's Django session; unsafe methods need X-CSRFToken.",
        }
