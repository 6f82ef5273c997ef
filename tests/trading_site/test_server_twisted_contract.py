"""The web server's direct-write path (trading_site/server.py) reads Twisted's and autobahn's
internals. These tests fail loudly, naming the attribute, when an upgrade of the pinned
twisted/autobahn renames or removes one, instead of WebSockets silently breaking in
production."""

from __future__ import annotations

import ast
import inspect
import logging
import socket
import textwrap

import autobahn
import pytest
import twisted
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from daphne.ws_protocol import WebSocketProtocol as DaphneWebSocketProtocol
from twisted.internet import tcp
from twisted.internet.testing import MemoryReactor

from trading_site import server

# What _direct_write_protocol reads of the TCP transport and of the WebSocket protocol.
TRANSPORT_ATTRIBUTES = (
    "TLS",
    "connected",
    "disconnecting",
    "_writeDisconnected",
    "dataBuffer",
    "_tempDataBuffer",
    "writeSomeData",
)
PROTOCOL_ATTRIBUTES = ("send_queue", "logOctets", "state", "trafficStats", "STATE_OPEN")
UPGRADE_HINT = "re-check trading_site/server.py's _direct_write_protocol against this version"


@pytest.fixture
def socket_pair():
    ours, theirs = socket.socketpair()
    yield ours, theirs
    ours.close()
    theirs.close()


def _open_protocol(transport_socket, protocol_class=None):
    """The server's protocol class (or `protocol_class`) over a real TCP transport of a
    connected socket, in the state autobahn leaves it once the WebSocket handshake is done."""
    reactor = MemoryReactor()
    protocol = (protocol_class or server._direct_write_protocol())()
    protocol.factory = WebSocketServerFactory()
    transport = tcp.Connection(transport_socket, protocol, reactor)
    transport.connected = 1  # as Twisted marks an accepted connection
    protocol.transport = transport
    WebSocketServerProtocol._connectionMade(protocol)
    protocol.state = protocol.STATE_OPEN
    return protocol, transport, reactor


def test_the_lists_here_cover_every_attribute_the_server_reads():
    tree = ast.parse(textwrap.dedent(inspect.getsource(server._direct_write_protocol)))
    read = {
        (node.value.id, node.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
    }
    read_of_transport = {attr for owner, attr in read if owner == "transport"}
    read_of_protocol = {attr for owner, attr in read if owner == "self"} - {"transport"}
    assert read_of_transport <= set(TRANSPORT_ATTRIBUTES)
    assert read_of_protocol <= set(PROTOCOL_ATTRIBUTES)


@pytest.mark.parametrize("name", TRANSPORT_ATTRIBUTES)
def test_twisted_tcp_transport_still_has(name, socket_pair):
    _protocol, transport, _reactor = _open_protocol(socket_pair[0])
    assert hasattr(transport, name), (
        f"twisted {twisted.__version__}: tcp.Connection has no attribute {name!r}; " + UPGRADE_HINT
    )


@pytest.mark.parametrize("name", PROTOCOL_ATTRIBUTES)
def test_autobahn_websocket_protocol_still_has(name, socket_pair):
    protocol, _transport, _reactor = _open_protocol(socket_pair[0])
    assert hasattr(protocol, name), (
        f"autobahn {autobahn.__version__}: WebSocketProtocol has no attribute {name!r}; "
        + UPGRADE_HINT
    )


def test_outgoing_octets_are_still_counted_on_traffic_stats(socket_pair):
    protocol, _transport, _reactor = _open_protocol(socket_pair[0])
    assert hasattr(protocol.trafficStats, "outgoingOctetsWireLevel"), (
        f"autobahn {autobahn.__version__}: TrafficStats has no 'outgoingOctetsWireLevel'; "
        + UPGRADE_HINT
    )


def test_a_frame_goes_straight_to_the_socket_without_the_reactor(socket_pair):
    ours, theirs = socket_pair
    protocol, transport, reactor = _open_protocol(ours)
    protocol.sendData(b"frame")
    theirs.settimeout(2)
    assert theirs.recv(16) == b"frame"
    # The fast path: nothing buffered, the reactor never asked to watch for writability.
    assert transport.dataBuffer == b"" and transport._tempDataBuffer == []
    assert transport not in reactor.getWriters()
    assert protocol.trafficStats.outgoingOctetsWireLevel == len(b"frame")


def test_a_frame_behind_a_backlog_takes_twisteds_ordinary_path(socket_pair):
    ours, theirs = socket_pair
    protocol, transport, reactor = _open_protocol(ours)
    transport.dataBuffer = b"queued-"
    protocol.sendData(b"frame")
    assert transport in reactor.getWriters()
    theirs.setblocking(False)
    with pytest.raises(BlockingIOError):
        theirs.recv(16)


# ---- the limits the server adds (trading_site/server.py's _limited_protocol) ----------------

# What _limited_protocol overrides or calls of daphne's and autobahn's WebSocket protocol.
LIMITED_PROTOCOL_ATTRIBUTES = ("serverClose", "sendCloseFrame", "onPing")
CLOSE_1008 = b"\x88\x02" + (1008).to_bytes(2, "big")  # an unmasked close frame, code 1008


def _limited(burst: int = 2):
    base = server._direct_write_protocol()
    return server._limited_protocol(base, burst=burst, per_second=0.001)


@pytest.mark.parametrize("name", LIMITED_PROTOCOL_ATTRIBUTES)
def test_daphnes_websocket_protocol_still_has(name, socket_pair):
    protocol, _transport, _reactor = _open_protocol(socket_pair[0])
    assert hasattr(protocol, name), (
        f"daphne/autobahn {autobahn.__version__}: WebSocketProtocol has no {name!r}; "
        "re-check trading_site/server.py's _limited_protocol against this version"
    )


@pytest.mark.parametrize("code", [1008, 1009])
def test_the_application_may_close_with_a_protocol_code(socket_pair, code):
    ours, theirs = socket_pair
    protocol, _transport, _reactor = _open_protocol(ours, _limited())
    protocol.serverClose(code=code)
    theirs.settimeout(2)
    assert theirs.recv(16) == b"\x88\x02" + code.to_bytes(2, "big")
    assert protocol.state == protocol.STATE_CLOSING


def test_daphne_still_names_the_client_address_on_connect():
    """The ping limit's log line names the client by daphne's `client_addr`."""
    assert "self.client_addr =" in inspect.getsource(DaphneWebSocketProtocol.onConnect)


def test_pings_past_the_burst_close_the_connection_1008_and_are_logged(socket_pair, caplog):
    ours, theirs = socket_pair
    protocol, _transport, _reactor = _open_protocol(ours, _limited(burst=2))
    protocol.client_addr = ["127.0.0.1", 50000]  # as daphne's onConnect sets it
    with caplog.at_level(logging.WARNING, logger="trading_site.server"):
        for _ in range(4):
            protocol.onPing(b"p")
    theirs.settimeout(2)
    pong = b"\x8a\x01p"
    # Two pongs (the burst), one close, and nothing for the ping after it.
    assert theirs.recv(64) == pong + pong + CLOSE_1008
    [logged] = [r for r in caplog.records if "pings faster" in r.getMessage()]
    assert logged.client == ["127.0.0.1", 50000]
