"""The web server's direct-write path (trading_site/server.py) reads Twisted's and autobahn's
internals. These tests fail loudly, naming the attribute, when an upgrade of the pinned
twisted/autobahn renames or removes one, instead of WebSockets silently breaking in
production."""

from __future__ import annotations

import ast
import inspect
import socket
import textwrap

import autobahn
import pytest
import twisted
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
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


def _open_protocol(transport_socket):
    """The server's protocol class over a real TCP transport of a connected socket, in the
    state autobahn leaves it once the WebSocket handshake is done."""
    reactor = MemoryReactor()
    protocol = server._direct_write_protocol()()
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
