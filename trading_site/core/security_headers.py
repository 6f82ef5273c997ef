"""Headers that keep a trader's pages out of caches and foreign code out of them.

- `Cache-Control: no-store` on every answer to an authenticated request (session cookie or
  bearer token): order books, PnL and account pages must not stay in a shared proxy's or the
  browser's disk cache after the trader logs out of a shared machine.
- A Content-Security-Policy on every answer: our own origin only for scripts, styles,
  images, fonts and connections (the WebSocket of this host included), no plugins, no
  framing, forms post only to us. The pages carry no inline script, inline style or inline
  event handler; the API docs are served from the product's own static files.
"""

from __future__ import annotations

from django.utils.cache import patch_cache_control

PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self' {websocket}; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# JSON, text and files: nothing in them may load or run anything.
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'"


def _is_authenticated(request) -> bool:
    if request.META.get("HTTP_AUTHORIZATION"):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated)


def _websocket_sources(request) -> str:
    try:
        host = request.get_host()
    except Exception:  # DisallowedHost: no page was rendered for it anyway
        return ""
    return f"ws://{host} wss://{host}"


class SecurityHeadersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if _is_authenticated(request):
            patch_cache_control(response, no_store=True, private=True)
        if "Content-Security-Policy" not in response:
            content_type = response.get("Content-Type", "")
            if content_type.startswith("text/html"):
                response["Content-Security-Policy"] = PAGE_POLICY.format(
                    websocket=_websocket_sources(request)
                )
            else:
                response["Content-Security-Policy"] = DATA_POLICY
        return response
