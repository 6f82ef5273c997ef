"""Batch placement: POST /api/algo-place-batch-orders through gunicorn, MariaDB, Redis and
the paper broker, in batches of 500. Prints orders/s, and in the same run the floor: the
same number of bare Order rows written with bulk_create, and the ratio.
Goal (SPEC 11): >= 2,000 orders/s.

    .venv/bin/python bench/orders_batch.py --batches 4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import Server, seed_traders, setup_django, summarize


def batch_body(trader, size: int, batch: int) -> dict:
    return {
        "account_id": trader.account_id,
        "orders": [
            {
                "external_id": f"b{batch}-{n}",
                "trading_symbol": "RELIANCE",
                "no_of_lots": 2,
                "entry_price": "99.00",
                "order_side": "BUY",
                "sl_price": "95.00",
                "targets": [
                    {"price": "105.00", "percent": "50"},
                    {"price": "110.00", "percent": "50"},
                ],
            }
            for n in range(size)
        ],
    }


def bare_rows_floor(trader, instrument, count: int) -> float:
    """Seconds to bulk_create `count` bare Order rows (no validation, broker or audit)."""
    from orders.models import Order

    rows = [
        Order(
            user_id=trader.user_id,
            account_id=trader.account_id,
            instrument=instrument,
            symbol="RELIANCE",
            exchange_segment="NSECM",
            exchange_instrument_id=instrument.exchange_instrument_id,
            side="BUY",
            quantity=2,
            order_type="LIMIT",
            kind="BRACKET",
        )
        for _ in range(count)
    ]
    started = time.perf_counter()
    Order.objects.bulk_create(rows, batch_size=500)
    return time.perf_counter() - started


def main() -> None:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--port", type=int, default=8402)
    args = parser.parse_args()

    env = setup_django()
    # One fresh account per batch: the paper book's cost grows with its open orders.
    traders, instrument = seed_traders(args.batches + 1, prefix="batch")
    with Server(env, port=args.port) as server:
        latencies, placed = [], 0
        with httpx.Client(base_url=server.base_url, timeout=600) as client:
            warm = traders[-1]
            client.post(
                "/api/algo-place-batch-orders",
                json=batch_body(warm, 20, -1),
                headers={"Authorization": f"Bearer {warm.token}"},
            )
            started = time.perf_counter()
            for batch, trader in enumerate(traders[: args.batches]):
                t0 = time.perf_counter()
                response = client.post(
                    "/api/algo-place-batch-orders",
                    json=batch_body(trader, args.size, batch),
                    headers={"Authorization": f"Bearer {trader.token}"},
                )
                latencies.append(time.perf_counter() - t0)
                results = response.json()["results"]
                placed += sum(1 for r in results if r["status"] == "success")
            elapsed = time.perf_counter() - started
    figures = summarize(f"batches of {args.size}", latencies, elapsed, unit_count=placed)
    floor_seconds = bare_rows_floor(traders[0], instrument, placed)
    floor_rate = placed / floor_seconds
    print(f"floor: bulk_create of {placed} bare Order rows: {floor_rate:.0f} rows/s")
    print(f"ratio batch placement / floor: {figures['per_second'] / floor_rate:.3f}x")
    print(f"goal >= 2000 orders/s: {'met' if figures['per_second'] >= 2000 else 'MISSED'}")


if __name__ == "__main__":
    main()
