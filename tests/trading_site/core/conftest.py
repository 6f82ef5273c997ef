"""Fixtures of the core's tests."""

from __future__ import annotations

import logging
import socket
import threading

import pytest

BREAKER_LOGGER = "trading_site.core.redis_breaker"
SILENT_REDIS_TIMEOUT = 1.0


@pytest.fixture
def silent_redis():
    """The URL of a server that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


@pytest.fixture
def hang_redis(settings, silent_redis):
    """`hang_redis()` points the cache (the Redis of the rate limiter, the token cache and the
    metrics) at a silent server, each call failing within SILENT_REDIS_TIMEOUT, and returns
    the live cache settings, to point it back (`settings.CACHES = live`)."""

    def hang() -> dict:
        live = settings.CACHES
        options = {**live["default"]["OPTIONS"], "SOCKET_TIMEOUT": SILENT_REDIS_TIMEOUT}
        settings.CACHES = {
            "default": {**live["default"], "LOCATION": silent_redis, "OPTIONS": options}
        }
        return live

    return hang


def assert_one_outage_logged(caplog) -> None:
    """The breaker logged an outage once when it started and once when it ended (with
    `caplog.set_level(logging.INFO, logger=BREAKER_LOGGER)` before)."""
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == BREAKER_LOGGER]
    assert [level for level, _ in messages] == [logging.WARNING, logging.INFO], messages
    assert "unavailable" in messages[0][1] and "answers again" in messages[1][1]
