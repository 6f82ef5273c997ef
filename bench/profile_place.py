"""Where one placement's time goes, in one process: POST /api/orders (a single LIMIT order on
paper) and the bare-insert floor called through the WSGI application as gunicorn calls it
(every middleware, DRF, the paper broker, the notify after commit), serially, against the
bench database. Prints, per request: the CPU of this process (time.process_time), the wall
time, the SQL statements and the Redis round trips; with --profile, a cProfile of the
placements (sorted by tottime and by cumtime).

    .venv/bin/python bench/profile_place.py --requests 300 --warmup 50 [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import seed_traders, setup_django
from bench.orders_place import order_body


def environ_for(path: str, body: bytes, token: str) -> dict:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8401",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1:8401",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


class Counts:
    """SQL statements (an execute wrapper) and Redis round trips (this thread's packed
    commands) of the requests in between."""

    def __init__(self) -> None:
        self.sql = 0
        self.redis = 0
        self.statements: list[str] = []
        self.keep = False

    def install(self) -> None:
        from django.db import connection
        from redis.connection import AbstractConnection

        thread = threading.get_ident()
        send = AbstractConnection.send_packed_command
        counts = self

        def counted(conn, command, check_health=True):
            if threading.get_ident() == thread:
                counts.redis += 1
            return send(conn, command, check_health)

        AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]

        def wrapper(execute, sql, params, many, context):
            counts.sql += 1
            if counts.keep:
                counts.statements.append(sql[:160])
            return execute(sql, params, many, context)

        self._wrapper = wrapper
        self._connection = connection

    def __enter__(self):
        self._cm = self._connection.execute_wrapper(self._wrapper)
        self._cm.__enter__()
        return self

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)


def run(app, path: str, body: bytes, token: str, n: int, expect: int) -> None:
    """`n` requests through the WSGI application, each answered `expect`."""
    statuses: list[str] = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    for _ in range(n):
        chunks = app(environ_for(path, body, token), start_response)
        answer = b"".join(chunks)
        if hasattr(chunks, "close"):
            chunks.close()
        status = statuses.pop()
        if int(status.split()[0]) != expect:
            raise SystemExit(f"{path}: {status} {answer[:500]!r}")


def server_cpu() -> dict[str, float]:
    """CPU seconds used so far by MariaDB and Redis (every process of theirs, /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {"mariadb": 0.0, "redis": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, rest = (entry / "stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        comm = name.split("(", 1)[1]
        kind = (
            "mariadb"
            if comm in ("mariadbd", "mysqld")
            else "redis"
            if comm.startswith("redis-server")
            else None
        )
        if kind:
            fields = rest.split()
            used[kind] += (int(fields[11]) + int(fields[12])) / ticks
    return used


def measure(app, counts: Counts, label: str, path: str, body: bytes, token: str, n: int, expect):
    counts.sql = counts.redis = 0
    servers = server_cpu()
    cpu, wall = time.process_time(), time.perf_counter()
    with counts:
        run(app, path, body, token, n, expect)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    after = server_cpu()
    print(
        f"{label:<10} CPU {cpu / n * 1000:6.2f} ms  wall {wall / n * 1000:6.2f} ms  "
        f"MariaDB {(after['mariadb'] - servers['mariadb']) / n * 1000:5.2f} ms  "
        f"Redis {(after['redis'] - servers['redis']) / n * 1000:5.2f} ms  "
        f"SQL {counts.sql / n:5.2f}  Redis calls {counts.redis / n:5.2f} per request"
    )
    return cpu / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--statements", action="store_true", help="list one placement's SQL")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--callees", nargs="*", default=[], help="functions to expand")
    parser.add_argument("--dump", help="write the profile's stats to this file")
    args = parser.parse_args()

    # As the bench's gunicorn workers keep their connection (bench.common.Server).
    os.environ.setdefault("DB_CONN_MAX_AGE", "60")
    setup_django()
    from django.core.wsgi import get_wsgi_application

    [trader], _instrument = seed_traders(1, prefix="profile")
    app = get_wsgi_application()
    order = json.dumps(order_body(trader, 0)).encode()  # the HTTP bench's body
    counts = Counts()
    counts.install()
    run(app, "/api/bench/bare-insert", b"{}", trader.token, args.warmup, 201)
    run(app, "/api/orders", order, trader.token, args.warmup, 201)
    if args.statements:
        counts.keep = True
        with counts:
            run(app, "/api/orders", order, trader.token, 1, 201)
        counts.keep = False
        for sql in counts.statements:
            print("  ", sql)
    floors, placements = [], []
    for _ in range(args.rounds):
        floors.append(
            measure(
                app,
                counts,
                "floor",
                "/api/bench/bare-insert",
                b"{}",
                trader.token,
                args.requests,
                201,
            )
        )
        placements.append(
            measure(app, counts, "orders", "/api/orders", order, trader.token, args.requests, 201)
        )
    print(
        f"CPU per request, median of {args.rounds}: floor {sorted(floors)[len(floors) // 2] * 1000:.2f} ms, "
        f"orders {sorted(placements)[len(placements) // 2] * 1000:.2f} ms"
    )
    if args.profile:
        # CPU time, not wall: waits on MariaDB and Redis are not this process's cost.
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        run(app, "/api/orders", order, trader.token, args.requests, 201)
        profiler.disable()
        for key in ("tottime", "cumulative"):
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats(key).print_stats(args.top)
            print(out.getvalue())
        if args.dump:
            profiler.dump_stats(args.dump)
        for name in args.callees:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_callees(name)
            print(out.getvalue())


if __name__ == "__main__":
    main()
