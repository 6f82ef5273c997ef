"""The WebSocket handshake's Origin check: the same origin as Django's CSRF check means it.

A cookie-bearing browser page on another origin must not open a socket that streams the
trader's orders (cross-site WebSocket hijacking). channels' AllowedHostsOriginValidator
compares host names only, so a page served from another port of the same host (any other
program on the trader's machine or the server) passed. Here the Origin must equal this
server's own origin, scheme, host and port (the scheme from the connection or the
SECURE_PROXY_SSL_HEADER; the host from the Host header, which must be in ALLOWED_HOSTS), or
one of CSRF_TRUSTED_ORIGINS. A handshake without an Origin passes: browsers always send one,
and programs must authenticate with a token anyway.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            try:
                return value.decode("latin1")
            except UnicodeDecodeError:
                return None
    return None


def _origin_tuple(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the scheme's default port filled in, or None."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def _is_secure(scope) -> bool:
    if scope.get("scheme") in ("wss", "https"):
        return True
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:
        header, value = proxy
        name = header.removeprefix("HTTP_").replace("_", "-").lower().encode()
        forwarded = _header(scope, name)
        return bool(forwarded and forwarded.split(",")[0].strip() == value)
    return False


def _allowed_hosts() -> list[str]:
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    return allowed


def origin_allowed(scope, origin: str) -> bool:
    offered = _origin_tuple(origin)
    if offered is None:
        return False
    host = _header(scope, b"host")
    if host:
        domain, _port = split_domain_port(host.lower())
        if domain and validate_host(domain, _allowed_hosts()):
            own = _origin_tuple(f"{'https' if _is_secure(scope) else 'http'}://{host}")
            if own is not None and own == offered:
                return True
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        pattern = _origin_tuple(trusted.replace("://*.", "://wildcard."))
        if pattern is None or pattern[0] != offered[0] or pattern[2] != offered[2]:
            continue
        if "://*." in trusted:
            if is_same_domain(offered[1], "." + pattern[1].removeprefix("wildcard.")):
                return True
        elif pattern[1] == offered[1]:
            return True
    return False


class SameOriginValidator:
    """ASGI middleware for WebSocket connections: a foreign Origin is denied at the
    handshake (an HTTP 403, before any application code runs)."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        origin = _header(scope, b"origin") if scope["type"] == "websocket" else None
        if origin is None or origin_allowed(scope, origin):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
