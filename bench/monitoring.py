"""One full monitoring dispatch through real Celery workers (SPEC 11 goal: 1,000 users x 2 paper
accounts x 20 open orders inside 15 s).

    .venv/bin/python bench/monitoring.py [--users 1000 --accounts 2 --orders 20
                                          --workers 2 --concurrency 2 --users-per-task 10]

Seeds its own MariaDB database (bench_monitoring, or BENCH_DATABASE_URL) through the real
placement path (place_batch on the paper broker: every order is open at the broker), starts
`celery worker` processes against Redis (BENCH_REDIS_URL, default DB 5), then calls the beat's
dispatcher once and waits until every user's MonitoringRun for that slot is finished.
Prints the total time, the per-user cycle p50/p95, and the ratio to a baseline measured in the
same run: the same number of users' cycles, queued in the same batches (one task per
MONITOR_USERS_PER_TASK users) through the same workers, for users with no account (no-op
cycles: the dispatch, queue, lock and run-record overhead alone).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def seed(users: int, accounts: int, orders: int) -> list[int]:
    from django.contrib.auth.hashers import make_password

    from accounts.models import User
    from bench.common import bench_account, bench_instrument
    from orders.services import place_batch
    from orders.validation import BracketOrderRequest, TargetSpec

    instruments = [
        bench_instrument(instrument_id=910000 + n, symbol=f"BENCH{n}", spread=Decimal("0.10"))
        for n in range(5)
    ]
    stamp = int(time.time())
    password = make_password("bench-password-123")
    created = User.objects.bulk_create(
        [
            User(
                username=f"mon-{stamp}-{n}",
                email=f"mon-{stamp}-{n}@bench.invalid",
                password=password,
            )
            for n in range(users)
        ],
        batch_size=1000,
    )
    started = time.perf_counter()
    for i, user in enumerate(created):
        for a in range(accounts):
            account = bench_account(user=user, name=f"paper-{a}")
            items = [
                BracketOrderRequest(
                    account_id=account.pk,
                    no_of_lots=1 + k % 3,
                    entry_price=Decimal("95.00") - Decimal("0.05") * k,  # below market: open
                    sl_price=Decimal("90.00"),
                    targets=[TargetSpec(price=Decimal("110.00"), percent=Decimal("100"))],
                    exchange_token=instruments[k % 5].exchange_instrument_id,
                    exchange_segment="NSECM",
                    external_id=f"b{k}",
                )
                for k in range(orders)
            ]
            results = place_batch(user=user, account_id=account.pk, items=items)
            bad = [r for r in results if r.status != "success"]
            assert not bad, bad[:3]
        if (i + 1) % 100 == 0:
            rate = (i + 1) * accounts * orders / (time.perf_counter() - started)
            print(f"  seeded {i + 1} users ({rate:.0f} orders/s)", flush=True)
    return [u.pk for u in created]


def empty_users(count: int) -> list[int]:
    from accounts.models import User

    stamp = int(time.time())
    created = User.objects.bulk_create(
        [
            User(username=f"noop-{stamp}-{n}", email=f"noop-{stamp}-{n}@bench.invalid")
            for n in range(count)
        ]
    )
    return [u.pk for u in created]


def wait_for_runs(user_ids: list[int], cycle_key: str, started: float, timeout: float):
    """Until every user's run of `cycle_key` is finished: (seconds, per-user durations)."""
    from monitoring.models import MonitoringRun

    deadline = time.monotonic() + timeout
    while True:
        finished = MonitoringRun.objects.filter(
            user_id__in=user_ids, cycle_key=cycle_key, finished_at__isnull=False
        ).count()
        if finished >= len(user_ids):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {finished}/{len(user_ids)} cycles finished")
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    runs = MonitoringRun.objects.filter(user_id__in=user_ids, cycle_key=cycle_key)
    durations = [r.duration_ms / 1000 for r in runs if r.duration_ms is not None]
    statuses: dict[str, int] = {}
    for r in runs:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    return elapsed, durations, statuses


def start_workers(count: int, concurrency: int, env: dict) -> list[subprocess.Popen]:
    workers = []
    for n in range(count):
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "trading_site",
                    "worker",
                    "--pool=prefork",
                    "-c",
                    str(concurrency),
                    "-n",
                    f"bench{n}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "-l",
                    "WARNING",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
    return workers


def start_streams(env: dict) -> subprocess.Popen:
    """One `manage.py run_broker_streams` process (the paper exchange's event streams), as
    the full stack runs it next to the workers."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_broker_streams"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(workers: list[subprocess.Popen]) -> None:
    for w in workers:
        if w.poll() is None:
            os.killpg(w.pid, signal.SIGTERM)
    for w in workers:
        try:
            w.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(w.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--accounts", type=int, default=2)
    parser.add_argument("--orders", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--users-per-task",
        type=int,
        default=None,
        help="MONITOR_USERS_PER_TASK (default: the product's)",
    )
    parser.add_argument(
        "--no-streams",
        dest="streams",
        action="store_false",
        help="without the broker event streams process running during the cycles",
    )
    args = parser.parse_args()

    os.environ.setdefault("BENCH_DATABASE_URL", "mysql://root@127.0.0.1:3306/bench_monitoring")
    os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
    from bench.common import percentile, print_rss, setup_django

    env = {**os.environ, **setup_django(database_url=os.environ["BENCH_DATABASE_URL"])}
    env["MONITOR_OPEN_ORDER_USERS"] = "1"
    env["MONITOR_INTERVAL_SECONDS"] = "60"
    from django.conf import settings

    if args.users_per_task is not None:
        env["MONITOR_USERS_PER_TASK"] = str(args.users_per_task)
        settings.MONITOR_USERS_PER_TASK = args.users_per_task
    from django.core.cache import cache

    cache.clear()  # no stale presence, locks or queued tasks from an earlier run
    from accounts.models import BrokerAccount

    # Users of earlier runs stay in the database; their accounts must not join this dispatch.
    BrokerAccount.objects.filter(user__username__startswith="mon-").update(is_active=False)

    print(
        f"seeding {args.users} users x {args.accounts} accounts x {args.orders} orders ...",
        flush=True,
    )
    user_ids = seed(args.users, args.accounts, args.orders)
    noop_ids = empty_users(args.users)

    from monitoring.services import monitored_user_ids
    from monitoring.tasks import dispatch_monitoring_cycles, queue_cycles

    assert set(user_ids) <= set(monitored_user_ids())
    workers = start_workers(args.workers, args.concurrency, env)
    if args.streams:
        workers.append(start_streams(env))
    try:
        time.sleep(8)  # workers up and connected

        key = f"bench-noop-{int(time.time())}"
        started = time.perf_counter()
        queue_cycles(noop_ids, key, "bench")  # as the dispatcher queues them
        base_total, base_durations, _ = wait_for_runs(noop_ids, key, started, 600)

        from monitoring.services import cycle_key_for

        key = cycle_key_for()
        started = time.perf_counter()
        dispatched = dispatch_monitoring_cycles()
        dispatch_seconds = time.perf_counter() - started
        total, durations, statuses = wait_for_runs(user_ids, key, started, 1800)

        # The next cycle of the same users (what every later beat costs): nothing new at the
        # broker since the first one, so only reads and the run records.
        steady_key = f"{key}-steady"
        started = time.perf_counter()
        queue_cycles(user_ids, steady_key, "bench")
        steady_total, steady_durations, steady_statuses = wait_for_runs(
            user_ids, steady_key, started, 1800
        )
        # Warm, after two full cycles: each Celery worker (its parent and pool children)
        # and the stream process.
        for n, process in enumerate(workers[: args.workers]):
            print_rss(f"celery worker {n}", process.pid)
        if args.streams:
            print_rss("broker streams process", workers[-1].pid)
    finally:
        stop(workers)

    n = args.users
    print(
        f"users x accounts x open orders  {n} x {args.accounts} x {args.orders} "
        f"({n * args.accounts * args.orders} orders)"
    )
    print(
        f"workers                         {args.workers} x concurrency {args.concurrency}, "
        f"{settings.MONITOR_USERS_PER_TASK} users per cycle task"
    )
    print(f"broker event streams            {'one process running' if args.streams else 'off'}")
    print(f"dispatch (beat task)            {dispatched} cycles queued in {dispatch_seconds:.2f} s")
    print(f"full dispatch, all users done   {total:.1f} s (goal 15 s); statuses {statuses}")
    print(
        f"per-user cycle                  p50 {percentile(durations, 50) * 1000:.0f} ms, "
        f"p95 {percentile(durations, 95) * 1000:.0f} ms"
    )
    print(
        f"next cycle (steady state)       {steady_total:.1f} s; p50 "
        f"{percentile(steady_durations, 50) * 1000:.0f} ms, p95 "
        f"{percentile(steady_durations, 95) * 1000:.0f} ms; statuses {steady_statuses}"
    )
    print(
        f"baseline (no-op cycles)         {base_total:.1f} s total, p95 "
        f"{percentile(base_durations, 95) * 1000:.0f} ms"
    )
    print(f"ratio                           {total / base_total:.1f}x the no-op dispatch")
    print(f"ratio (steady)                  {steady_total / base_total:.1f}x the no-op dispatch")


if __name__ == "__main__":
    main()
