"""The Socket.IO v2 protocol over Engine.IO 3, as XTS interactive streams speak it: pure
framing shared by our stream client (orders.brokers.xts.stream) and the simulator's stream
server (orders.brokers.xts.simulator_stream).

Over a WebSocket every frame is one Engine.IO packet, a text frame whose first character is
its type: `0` open (JSON: sid, upgrades, pingInterval, pingTimeout in ms), `1` close, `2`
ping, `3` pong, `4` message, `6` noop. In Engine.IO 3 the CLIENT pings (`2` every
pingInterval) and the server answers `3`; Engine.IO 4 reversed that, which is why a v4/v5
client cannot talk to a v2 server. A message carries one Socket.IO packet, again typed by
its first character: `0` connect (the server sends `40` for the default namespace as soon as
the socket is open), `1` disconnect, `2` event (`42["order","<row as a JSON string>"]`),
`3` ack, `4` error (`44"Invalid Token"`: the connection was refused), `5`/`6` binary. A
namespace other than "/" follows the type as `/nsp,`; an ack id is the digits before the
JSON. Binary packets are not used by XTS and are reported as such.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

# Engine.IO 3 packet types
EIO_OPEN, EIO_CLOSE, EIO_PING, EIO_PONG, EIO_MESSAGE, EIO_UPGRADE, EIO_NOOP = "0123456"
# Socket.IO v2 packet types (inside an Engine.IO message)
SIO_CONNECT, SIO_DISCONNECT, SIO_EVENT, SIO_ACK, SIO_ERROR = "01234"
SIO_BINARY_EVENT, SIO_BINARY_ACK = "56"

ENGINE_IO_VERSION = "3"
SOCKETIO_PATH = "/interactive/socket.io"


class ProtocolError(ValueError):
    """A frame that is not Engine.IO 3 / Socket.IO v2."""


@dataclass(frozen=True)
class SocketIOPacket:
    type: str  # one of SIO_*
    namespace: str = "/"
    ack_id: int | None = None
    data: Any = None

    @property
    def event(self) -> str | None:
        """For an event: its name (the first element of the data array)."""
        if self.type != SIO_EVENT or not isinstance(self.data, list) or not self.data:
            return None
        name = self.data[0]
        return name if isinstance(name, str) else None

    @property
    def args(self) -> list:
        if self.type != SIO_EVENT or not isinstance(self.data, list):
            return []
        return self.data[1:]


def decode_engineio(frame: str | bytes) -> tuple[str, str]:
    """(packet type, payload) of one WebSocket frame."""
    if isinstance(frame, bytes):
        # Engine.IO 3 sends binary as a frame starting with the type byte; XTS never does.
        raise ProtocolError("binary Engine.IO frames are not used by XTS streams")
    if not frame or frame[0] not in "0123456":
        raise ProtocolError(f"not an Engine.IO 3 packet: {frame[:40]!r}")
    return frame[0], frame[1:]


def decode_open(payload: str) -> dict[str, Any]:
    """The open packet's handshake, with its intervals in seconds."""
    try:
        handshake = json.loads(payload)
        sid = str(handshake["sid"])
        ping_interval = int(handshake["pingInterval"]) / 1000.0
        ping_timeout = int(handshake["pingTimeout"]) / 1000.0
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError(f"unreadable Engine.IO open packet: {payload[:200]!r}") from exc
    if ping_interval <= 0 or ping_timeout <= 0:
        raise ProtocolError("the Engine.IO open packet has no ping interval or timeout")
    return {"sid": sid, "ping_interval": ping_interval, "ping_timeout": ping_timeout}


def decode_socketio(payload: str) -> SocketIOPacket:
    """One Socket.IO v2 packet (the payload of an Engine.IO message)."""
    if not payload or payload[0] not in "0123456":
        raise ProtocolError(f"not a Socket.IO v2 packet: {payload[:40]!r}")
    kind, rest = payload[0], payload[1:]
    if kind in (SIO_BINARY_EVENT, SIO_BINARY_ACK):
        raise ProtocolError("binary Socket.IO packets are not used by XTS streams")
    namespace = "/"
    if rest.startswith("/"):
        namespace, comma, rest = rest.partition(",")
        if not comma:
            return SocketIOPacket(kind, namespace)
    digits = 0
    while digits < len(rest) and rest[digits].isdigit():
        digits += 1
    ack_id = int(rest[:digits]) if digits else None
    rest = rest[digits:]
    data = None
    if rest:
        try:
            data = json.loads(rest)
        except ValueError as exc:
            raise ProtocolError(f"unreadable Socket.IO data: {rest[:200]!r}") from exc
    return SocketIOPacket(kind, namespace, ack_id, data)


def encode_open(sid: str, *, ping_interval: float, ping_timeout: float) -> str:
    handshake = {
        "sid": sid,
        "upgrades": [],
        "pingInterval": int(ping_interval * 1000),
        "pingTimeout": int(ping_timeout * 1000),
    }
    return EIO_OPEN + json.dumps(handshake, separators=(",", ":"))


def encode_event(name: str, *args: Any) -> str:
    """`42["name",...args]`: an event on the default namespace."""
    return EIO_MESSAGE + SIO_EVENT + json.dumps([name, *args], separators=(",", ":"))


def encode_error(data: Any) -> str:
    """`44"message"` (or `44{...}`): the server refused the connection to the default
    namespace."""
    return EIO_MESSAGE + SIO_ERROR + json.dumps(data)


CONNECT_FRAME = EIO_MESSAGE + SIO_CONNECT  # "40"
DISCONNECT_FRAME = EIO_MESSAGE + SIO_DISCONNECT  # "41"


def stream_url(base_url: str, *, token: str, user_id: str) -> str:
    """The WebSocket URL of an XTS interactive stream: the broker's root with
    `/interactive/socket.io/` and the query the official SDK sends, plus Engine.IO's own
    `EIO=3&transport=websocket` (what python-engineio 3.x adds)."""
    parts = urlsplit(base_url.strip())
    scheme = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ProtocolError(f"not an http(s) base URL: {base_url!r}")
    query = urlencode(
        {
            "token": token,
            "userID": user_id,
            "apiType": "INTERACTIVE",
            "EIO": ENGINE_IO_VERSION,
            "transport": "websocket",
        }
    )
    return urlunsplit((scheme, parts.netloc, SOCKETIO_PATH + "/", query, ""))
