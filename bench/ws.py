"""WebSocket fan-out: N concurrent connections on ONE daphne process, one broadcast message per
user group, time until every client has it, and memory per connection (SPEC 11 goal: 10,000
held, delivery inside 1 s).

    .venv/bin/python bench/ws.py [--users 2000 --tabs 5 --clients 2]

Runs against its own MariaDB database (bench_ws, or BENCH_DATABASE_URL) and Redis
(BENCH_REDIS_URL, default DB 5). daphne is started as the full stack runs it
(`manage.py serve_web`); the clients are asyncio + websockets in --clients processes. The
baseline, measured in the same run, is one message to one connection on the idle server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BROADCAST = "bench_broadcast"
SERVER_LOG = Path(tempfile.gettempdir()) / "bench_ws_daphne.log"


def raise_fd_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(hard, max(soft, wanted))
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ---- client process ---------------------------------------------------------------------------


async def client_main(port: int, targets: list[tuple[int, str]], tabs: int) -> None:
    """Open tabs x targets connections, say READY, then record when each gets the broadcast."""
    from websockets.asyncio.client import connect

    opened: list = []
    arrivals: list[float] = []
    gate = asyncio.Semaphore(64)
    failures = 0

    async def open_one(user_id: int, token: str):
        nonlocal failures
        async with gate:
            for _attempt in range(5):
                try:
                    ws = await connect(
                        f"ws://127.0.0.1:{port}/ws/{user_id}/?token={token}",
                        open_timeout=60,
                        ping_interval=None,
                        max_queue=4,
                    )
                    hello = json.loads(await ws.recv())
                    assert hello["type"] == "connection_established", hello
                    opened.append(ws)
                    return
                except Exception:
                    await asyncio.sleep(0.5)
            failures += 1

    await asyncio.gather(*(open_one(uid, token) for uid, token in targets for _ in range(tabs)))
    print(json.dumps({"ready": len(opened), "failed": failures}), flush=True)

    lost = 0

    async def wait_one(ws):
        nonlocal lost
        try:
            while True:
                message = json.loads(await ws.recv())
                if message.get("type") == BROADCAST:
                    arrivals.append(time.time())
                    return
        except Exception:  # closed by the server: counted, not fatal
            lost += 1

    waiting = [asyncio.create_task(wait_one(ws)) for ws in opened]
    _done, pending = await asyncio.wait(waiting, timeout=60)
    for task in pending:  # never got it within a minute: reported as missing
        task.cancel()
    print(
        json.dumps(
            {
                "received": len(arrivals),
                "lost": lost,
                "missing": len(pending),
                "last": max(arrivals, default=0),
            }
        ),
        flush=True,
    )
    # Hold the connections until the parent has read the server's figures.
    sys.stdin.readline()
    await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)


# ---- orchestration ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(users: int) -> list[tuple[int, str]]:
    from django.contrib.auth.hashers import make_password

    from accounts.models import BrokerAccount, User
    from accounts.services import create_auth_session

    stamp = int(time.time())
    password = make_password("bench-password-123")
    created = User.objects.bulk_create(
        [
            User(
                username=f"ws-{stamp}-{n}", email=f"ws-{stamp}-{n}@bench.invalid", password=password
            )
            for n in range(users)
        ],
        batch_size=1000,
    )
    BrokerAccount.objects.bulk_create(
        [BrokerAccount(user=u, account_name="paper", broker="PAPER") for u in created],
        batch_size=1000,
    )
    return [
        (u.pk, create_auth_session(user=u, client_ip="127.0.0.1", user_agent="bench")[0])
        for u in created
    ]


async def broadcast(user_ids: list[int], marker: str) -> float:
    from channels.layers import get_channel_layer

    from trading_site.core.realtime import FORWARD_EVENT, user_group

    layer = get_channel_layer()
    assert layer is not None
    gate = asyncio.Semaphore(50)  # within the channel layer's connection pool

    async def send(uid: int) -> None:
        async with gate:
            await layer.group_send(
                user_group(uid),
                {"type": FORWARD_EVENT, "message": {"type": BROADCAST, "marker": marker}},
            )

    started = time.time()
    await asyncio.gather(*(send(uid) for uid in user_ids))
    return started


def start_client(port: int, chunk: list[tuple[int, str]], tabs: int, env: dict):
    process = subprocess.Popen(
        [sys.executable, __file__, "--client", "--port", str(port), "--tabs", str(tabs)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    process.stdin.write(json.dumps(chunk) + "\n")
    process.stdin.flush()
    return process


def baseline_latency(port: int, target: tuple[int, str], samples: int = 20) -> float:
    """One message to one connection on the idle server (median of `samples`)."""
    from websockets.sync.client import connect

    from trading_site.core.realtime import notify_user

    uid, token = target
    latencies = []
    with connect(f"ws://127.0.0.1:{port}/ws/{uid}/?token={token}") as ws:
        ws.recv()
        for _ in range(samples):
            started = time.perf_counter()
            notify_user(uid, {"type": BROADCAST})
            while json.loads(ws.recv(timeout=10)).get("type") != BROADCAST:
                pass
            latencies.append(time.perf_counter() - started)
    latencies.sort()
    return latencies[len(latencies) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--tabs", type=int, default=5)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--server", choices=["daphne", "uvicorn"], default="daphne")
    parser.add_argument("--client", action="store_true")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    total = args.users * args.tabs
    raise_fd_limit(total + 2000)

    if args.client:
        targets = [tuple(t) for t in json.loads(sys.stdin.readline())]
        asyncio.run(client_main(args.port, targets, args.tabs))
        return

    os.environ.setdefault("BENCH_DATABASE_URL", "mysql://root@127.0.0.1:3306/bench_ws")
    os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
    from bench.common import setup_django

    env = {**os.environ, **setup_django(database_url=os.environ["BENCH_DATABASE_URL"])}
    env["AUTH_TOKEN_CACHE_SECONDS"] = "3600"
    print(f"seeding {args.users} users ...", flush=True)
    targets = seed(args.users + 1)
    baseline_target, targets = targets[0], targets[1:]

    port = free_port()
    command = {
        # As the full stack runs it (trading_site.server: the WebSocket limits applied).
        "daphne": [sys.executable, "manage.py", "serve_web", "--port", str(port)],
        "uvicorn": [
            sys.executable,
            "-m",
            "uvicorn",
            "trading_site.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--ws-max-size",
            env.get("WS_MAX_MESSAGE_BYTES", "4096"),
        ],
    }[args.server]
    server = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(SERVER_LOG, "w"),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "daphne down"
                time.sleep(0.2)
        base = baseline_latency(port, baseline_target)
        rss_before = rss_kib(server.pid)

        print(f"opening {total} connections from {args.clients} client processes ...", flush=True)
        opened_at = time.perf_counter()
        per = -(-len(targets) // args.clients)
        clients = [
            start_client(port, targets[i : i + per], args.tabs, env)
            for i in range(0, len(targets), per)
        ]
        ready = [json.loads(c.stdout.readline()) for c in clients]
        open_seconds = time.perf_counter() - opened_at
        held = sum(r["ready"] for r in ready)
        failed = sum(r["failed"] for r in ready)
        time.sleep(2)
        rss_after = rss_kib(server.pid)

        started = asyncio.run(broadcast([uid for uid, _ in targets], "go"))
        sent_seconds = time.time() - started
        results = [json.loads(c.stdout.readline()) for c in clients]
        received = sum(r["received"] for r in results)
        lost = sum(r["lost"] for r in results)
        missing = sum(r["missing"] for r in results)
        delivery = max(r["last"] for r in results) - started
        for c in clients:
            c.stdin.write("done\n")
            c.stdin.flush()
        for c in clients:
            c.wait(timeout=60)
    finally:
        server.terminate()
        server.wait(timeout=30)

    per_conn = (rss_after - rss_before) / max(1, held)
    print(
        f"connections held      {held} of {total} (failed to open: {failed}) "
        f"in {open_seconds:.1f} s"
    )
    print(
        f"broadcast             {args.users} group messages -> {received} deliveries "
        f"({lost} closed by the server first, {missing} not delivered within 60 s)"
    )
    print(f"sending the broadcast {sent_seconds * 1000:.0f} ms (bench process -> Redis)")
    print(f"server                {args.server} (one process)")
    from django.conf import settings

    print(f"channel layer         {settings.CHANNEL_LAYERS['default']['BACKEND']}")
    print(f"delivery, all clients {delivery * 1000:.0f} ms (goal < 1000 ms)")
    print(f"baseline              {base * 1000:.2f} ms for one message to one idle connection")
    print(f"ratio                 {delivery / base:.1f}x the single-message latency")
    print(
        f"daphne RSS            {rss_before / 1024:.0f} MiB idle -> {rss_after / 1024:.0f} MiB; "
        f"{per_conn:.1f} KiB per connection"
    )


if __name__ == "__main__":
    main()
