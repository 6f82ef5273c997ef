"""Real processes and sockets for the tests where the wire is the point: a daphne serving
trading_site.asgi (`manage.py serve_web`), a WebSocket client, and the environment a server
or worker process needs to share the test's database and Redis."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import connection
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env(**extra) -> dict:
    """The environment of a server or worker process sharing this test's database and Redis."""
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"mysql://root@127.0.0.1:3306/{connection.settings_dict['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        SECRET_KEY=settings.SECRET_KEY,
        FERNET_KEYS=",".join(settings.FERNET_KEYS),
        TRADING_WINDOW_ALWAYS_OPEN="1",
        BROKER_ALLOW_PRIVATE_HOSTS="1",
        LOG_LEVEL="WARNING",
    )
    env.update({k: str(v) for k, v in extra.items()})
    return env


class DaphneServer:
    def __init__(self, **env):
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "serve_web", "--port", str(self.port)],
            cwd=REPO,
            env=subprocess_env(**env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(self.process.stderr.read().decode()[-2000:]) from None
                time.sleep(0.1)

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


class WsClient:
    """A WebSocket client in a thread, recording every message until the socket closes."""

    def __init__(self, url: str, **kwargs):
        # websockets wants its connection used as a context manager (closed on exit).
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(url, open_timeout=10, **kwargs))
        self.messages: list[dict] = []
        self.close_code: int | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        try:
            for raw in self.ws:
                self.messages.append(json.loads(raw))
        except ConnectionClosed:
            pass
        self.close_code = self.ws.close_code

    def wait_for(self, predicate, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in list(self.messages):
                if predicate(message):
                    return message
            time.sleep(0.02)
        raise AssertionError(f"no matching message; got {self.messages}")

    def wait_closed(self, timeout: float = 10.0) -> int | None:
        self._thread.join(timeout)
        return self.close_code

    def close(self):
        self._stack.close()
        self._thread.join(5)
