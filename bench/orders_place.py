"""Order placement through the full stack: gunicorn (2 WSGI workers), MariaDB, Redis, the
paper broker, the order_update notify; N concurrent clients over real HTTP.

Prints orders/s and p50/p95/p99 of POST /api/orders, and in the same run the floor: an
authenticated DRF endpoint that inserts one row (POST /api/bench/bare-insert), and the ratio.
Goal (SPEC 11): p95 <= 20 ms and >= 300 orders/s on the 2-core machine.

    .venv/bin/python bench/orders_place.py --clients 8 --requests 2000
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Server, seed_traders, setup_django, summarize


def drive(
    base_url: str, traders, *, path: str, body_for, total: int
) -> tuple[list, float, Counter]:
    """`total` POSTs spread over one thread per trader (each with its own keep-alive
    connection); returns the latencies, the wall time and the status codes."""
    import httpx

    latencies: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()
    per_client = [
        total // len(traders) + (1 if i < total % len(traders) else 0) for i in range(len(traders))
    ]
    barrier = threading.Barrier(len(traders) + 1)

    def run(trader, count):
        headers = {"Authorization": f"Bearer {trader.token}"}
        mine, codes = [], Counter()
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
            barrier.wait()
            for n in range(count):
                started = time.perf_counter()
                response = client.post(path, json=body_for(trader, n))
                mine.append(time.perf_counter() - started)
                codes[response.status_code] += 1
        with lock:
            latencies.extend(mine)
            statuses.update(codes)

    threads = [
        threading.Thread(target=run, args=(t, c)) for t, c in zip(traders, per_client, strict=True)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started, statuses


def order_body(trader, n: int) -> dict:
    return {
        "account_id": trader.account_id,
        "symbol": "RELIANCE",
        "exchange_segment": "NSECM",
        "product_type": "MIS",
        "order_side": "BUY",
        "order_quantity": 1,
        "order_type": "LIMIT",
        "limit_price": "99.00",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    parser.add_argument("--requests", type=int, default=2000, help="orders to place")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--port", type=int, default=8401)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    env = setup_django()
    traders, _instrument = seed_traders(args.clients, prefix="place")
    print(f"gunicorn -w {args.workers}, {args.clients} clients, MariaDB {env['DATABASE_URL']}")
    with Server(env, port=args.port, workers=args.workers) as server:
        drive(
            server.base_url,
            traders,
            path="/api/bench/bare-insert",
            body_for=lambda t, n: {},
            total=args.warmup,
        )
        drive(server.base_url, traders, path="/api/orders", body_for=order_body, total=args.warmup)
        lat, elapsed, codes = drive(
            server.base_url,
            traders,
            path="/api/bench/bare-insert",
            body_for=lambda t, n: {},
            total=args.requests,
        )
        floor = summarize("floor: bare DRF insert", lat, elapsed)
        lat, elapsed, codes_orders = drive(
            server.base_url,
            traders,
            path="/api/orders",
            body_for=order_body,
            total=args.requests,
        )
        placed = summarize("POST /api/orders", lat, elapsed)
    print(f"status codes: floor {dict(codes)}, orders {dict(codes_orders)}")
    print(
        f"ratio orders/floor: throughput {placed['per_second'] / floor['per_second']:.2f}x, "
        f"p95 {placed['p95_ms'] / floor['p95_ms']:.2f}x"
    )
    goal_ok = placed["p95_ms"] <= 20 and placed["per_second"] >= 300
    print(f"goal p95 <= 20 ms and >= 300 orders/s: {'met' if goal_ok else 'MISSED'}")


if __name__ == "__main__":
    main()
