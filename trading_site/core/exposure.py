"""A warning at start-up when a server is reachable from other machines but not locked to
its names: binding a public address while ALLOWED_HOSTS was never set (the default list
names only localhost) usually means a deployment someone forgot to configure."""

from __future__ import annotations

import ipaddress
import logging

from django.conf import settings

logger = logging.getLogger("trading_site.startup")


def binds_beyond_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name in ("localhost", ""):
        return name != "localhost"  # "" binds every interface
    try:
        return not ipaddress.ip_address(name).is_loopback
    except ValueError:
        return True  # a host name: assume it resolves beyond this machine


def warn_if_exposed(host: str) -> bool:
    """Log a WARNING (and return True) when `host` is not loopback and ALLOWED_HOSTS is
    was not set by the operator (settings.ALLOWED_HOSTS_CONFIGURED)."""
    if not binds_beyond_loopback(host) or settings.ALLOWED_HOSTS_CONFIGURED:
        return False
    logger.warning(
        "binding %s, reachable beyond this machine, but ALLOWED_HOSTS is not set: set it "
        "(and CSRF_TRUSTED_ORIGINS) to the names this server answers to, and put TLS in "
        "front of it",
        host,
        extra={"host": host},
    )
    return True
