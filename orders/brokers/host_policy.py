"""Where a broker gateway may send a trader's broker secrets (server-side request forgery).

A live account's `base_url` credential is chosen by the trader, and every login POSTs the
app and secret keys there. So a base URL may only name:

- a host in BROKER_ALLOWED_HOSTS (by default the hosts of the three brokers' XTS_BASE_URLS),
  over https when BROKER_REQUIRE_HTTPS (the full stack's default), and that host must resolve
  to public addresses only: a DNS name of the list that points at 127.0.0.1 or 10.x is
  refused too;
- a loopback or private address (or a name resolving only to such addresses), and only when
  the operator allows it with BROKER_ALLOW_PRIVATE_HOSTS (the XTS simulator in development,
  the embedded demo, the tests).

The rule is checked twice: when a base URL is entered (API, web form, admin: all through
`accounts.services.validate_credentials`), and on every request the XTS gateway makes
(`BrokerHostGuard`), because a stored URL may predate the rule or the settings may have
changed. The request-time check resolves the name itself and connects to the address it
checked (the TLS name stays the host's), so a DNS answer that changes between the check and
the connection (rebinding) cannot slip a private address in. Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

import httpx
from django.conf import settings

from orders.brokers.base import OrderRejected

_DEFAULT_PORTS = {"http": 80, "https": 443}


class BrokerHostNotAllowed(OrderRejected):
    """The account's base URL is not a broker host we may call. Raised before a byte is
    sent, so an order refused this way was certainly not placed (hence an OrderRejected)."""

    def __init__(self, reason: str):
        super().__init__(f"The account's broker address is not allowed: {reason}")
        self.reason = reason


def _host_port(entry: str) -> tuple[str, int | None]:
    """'host', 'host:port' or a URL -> (lower-case host, port or None for the default)."""
    text = entry.strip()
    if "://" in text:
        parts = urlsplit(text)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        return (parts.hostname or "").lower(), port
    parts = urlsplit(f"//{text}")
    return (parts.hostname or "").lower(), parts.port


def allowed_hosts() -> set[tuple[str, int | None]]:
    """The (host, port) pairs a base URL may name; port None means the scheme's default."""
    entries = getattr(settings, "BROKER_ALLOWED_HOSTS", None)
    if entries is None:
        entries = list(settings.XTS_BASE_URLS.values())
    return {_host_port(entry) for entry in entries if entry and entry.strip()}


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def is_public_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Routable on the internet: not loopback, private, link-local, shared, reserved,
    multicast or unspecified (an IPv4-mapped IPv6 address is judged as its IPv4 self)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def _private_allowed() -> bool:
    return bool(getattr(settings, "BROKER_ALLOW_PRIVATE_HOSTS", False))


def _parse(url: str, *, request: bool = False) -> tuple[str, str, int]:
    """(scheme, host, port) of a base URL (or of a request's URL, which may carry a query),
    or BrokerHostNotAllowed for its shape."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise BrokerHostNotAllowed("it is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise BrokerHostNotAllowed("only http(s) URLs are allowed")
    if parts.username is not None or parts.password is not None:
        raise BrokerHostNotAllowed("a URL may not carry a user name or password")
    if (parts.query and not request) or parts.fragment:
        raise BrokerHostNotAllowed("a base URL has no query or fragment")
    host = (parts.hostname or "").lower()
    if not host:
        raise BrokerHostNotAllowed("the URL names no host")
    return scheme, host, port or _DEFAULT_PORTS[scheme]


def _is_listed(scheme: str, host: str, port: int) -> bool:
    for listed_host, listed_port in allowed_hosts():
        if listed_host == host and (listed_port or _DEFAULT_PORTS[scheme]) == port:
            return True
    return False


def _judge(scheme: str, host: str, port: int, addresses: list | None) -> None:
    """Raise BrokerHostNotAllowed unless the URL may be called. `addresses` are the host's
    resolved addresses (None: not resolved, judge by name alone)."""
    literal = _ip(host)
    if literal is not None:
        addresses = [literal]
    listed = _is_listed(scheme, host, port)
    private = [a for a in addresses or [] if not is_public_address(a)]
    if private and not _private_allowed():
        raise BrokerHostNotAllowed("it points at a private or loopback address")
    if addresses and private and len(private) < len(addresses) and not listed:
        # Half public, half private: neither rule covers it.
        raise BrokerHostNotAllowed("it is not one of the broker hosts this desk may call")
    if addresses and len(private) == len(addresses):
        return  # all private, and the operator allows private hosts
    if not listed:
        raise BrokerHostNotAllowed("it is not one of the broker hosts this desk may call")
    if scheme != "https" and getattr(settings, "BROKER_REQUIRE_HTTPS", False):
        raise BrokerHostNotAllowed("broker hosts must be called over https")


def validate_base_url(url: str) -> str:
    """The input-time check (API, web form, admin). A listed broker host is accepted by name
    (its addresses are checked at call time); any other name is accepted only when private
    hosts are allowed and it resolves to private addresses alone."""
    scheme, host, port = _parse(url)
    addresses = None
    if _ip(host) is None and not _is_listed(scheme, host, port) and _private_allowed():
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            raise BrokerHostNotAllowed("the host name does not resolve") from None
        addresses = [_ip(str(info[4][0])) for info in infos]
    _judge(scheme, host, port, [a for a in addresses if a] if addresses else None)
    return url.strip()


async def _resolve(host: str, port: int) -> list:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise httpx.ConnectError(f"cannot resolve {host}") from exc
    addresses = []
    for info in infos:
        address = _ip(str(info[4][0]))
        if address is not None and address not in addresses:
            addresses.append(address)
    if not addresses:
        raise httpx.ConnectError(f"cannot resolve {host}")
    return addresses


class BrokerHostGuard(httpx.AsyncBaseTransport):
    """The call-time check around an httpx transport: every request's URL is judged again,
    its host resolved here and the connection made to the address that was judged."""

    def __init__(self, inner: httpx.AsyncBaseTransport):
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        scheme, host, port = _parse(str(request.url), request=True)
        if _ip(host) is not None:
            _judge(scheme, host, port, None)
        else:
            addresses = await _resolve(host, port)
            _judge(scheme, host, port, addresses)
            # Pin the judged address; Host header and TLS name (SNI, certificate) stay the
            # host's own.
            request.url = request.url.copy_with(host=str(addresses[0]))
            request.extensions = {**request.extensions, "sni_hostname": host}
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def judged_address(url: str) -> str:
    """The call-time check for a connection that is not an httpx request (the XTS event
    stream's WebSocket): the address to connect to, judged as `BrokerHostGuard` judges a
    request (resolved here, so the connection goes to the address that was judged).
    Raises BrokerHostNotAllowed, or OSError when the name does not resolve."""
    scheme, host, port = _parse(url, request=True)
    if _ip(host) is not None:
        _judge(scheme, host, port, None)
        return host
    try:
        addresses = await _resolve(host, port)
    except httpx.ConnectError as exc:
        raise OSError(str(exc)) from exc
    _judge(scheme, host, port, addresses)
    return str(addresses[0])


def guarded_transport(**transport_options) -> BrokerHostGuard:
    """An httpx transport for broker calls (options as for httpx.AsyncHTTPTransport)."""
    return BrokerHostGuard(httpx.AsyncHTTPTransport(**transport_options))
