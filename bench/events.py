"""Broker events acted on within a second (issue 12): protection after an entry fill,
one-cancels-other after a stop-loss fill and the browser's order_update, with the event
streams running, against the same run with the streams off (the monitoring loop alone).

    .venv/bin/python bench/events.py [--accounts 100 --interval 30]   # 100 XTS + 100 paper
    .venv/bin/python bench/events.py --quick                          # 10 + 10, 3 s loop

Seeds its own MariaDB database (bench_events, or BENCH_DATABASE_URL) and uses its own Redis
(BENCH_REDIS_URL, default DB 7, flushed at the start of each run). Started as the full stack
runs them: the XTS simulator (`manage.py run_xts_simulator`, one login per XTS account), the
web server (`manage.py serve_web`, daphne), --stream-processes `manage.py run_broker_streams`
processes (one by default; with streams only), and the monitoring loop: `run_user_cycle` for
every account's user every --interval seconds in a process of its own with two threads (what
the beat and two Celery workers do, at the workers' CPU priority, WORKER_NICENESS:
trading_site.core.cpu_priority; the product's interval is 60 s, shortened here to keep
the baseline short; its first tick comes one interval after the start, in both runs; with
--cycle-during, the streams run's first cycle starts with the price moves instead, so that
a full cycle of every user competes with the streams for the CPU). With streams, the prices
move once the stream processes' start-up catch-up (every account's resync on connect, the
seeding's paper events) is over: their CPU use under 5% of a core.
Each run prints the CPU seconds every process used from the first price move to the last
cancel (MariaDB's and Redis's too, where /proc shows them): on two cores, where they go.

Each run: every account (N at the simulator, N at the paper exchange, one user each, one
WebSocket open per user as a browser tab holds it) places one bracket (BUY 1 at 99, stop-loss
97.5/97, target 103) on one of N/2 instruments priced at 100; the prices then move, one
instrument every 1/--moves-per-second s, to 98.9 (the entries fill), and once every order is
protected, to 97.2 (the stop-losses fill; the targets must be cancelled). Measured from the
brokers' own rows (the paper tables both brokers write, with microseconds):
- entry fill -> stop-loss and target accepted at the broker (the later of the two rows);
- stop-loss fill -> target cancelled at the broker;
- broker fill -> the first order_update showing the order filled, on its user's WebSocket;
- with streams only: events per second the stream process(es) handle (a burst of the
  entries' order and trade events published again on the paper exchange's Redis Streams:
  each is handled in full, under the account's exclusion, and changes nothing twice).
Duplicates, in every run: a second stop-loss or target leg for an order, a second order at a
broker for one leg (paper rows per orderUniqueIdentifier; the simulator's POSTs per
identifier), a cancel at the simulator beyond one per cancelled target, a second
one-cancels-other per target. Printed as "duplicates: N"; the script exits 1 when any run has
one, or when an order did not get its protection or its cancel within the run's timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ENTRY, SL_STOP, SL_LIMIT, TARGET = "99", "97.5", "97", "103"
FILL_ENTRY, FILL_STOP = "98.9", "97.2"
# Each run's processes log into a folder of its own (main() makes it): two runs at once (two
# checkouts' test suites) must not read each other's logs.
LOG_DIR = Path(tempfile.gettempdir())


@dataclass
class Desk:
    """One account of the run: its user, WebSocket token, kind and bracket."""

    user_id: int
    account_id: int
    token: str
    kind: str  # "xts" or "paper"
    instrument_id: int
    order_id: int = 0


@dataclass
class RunResult:
    name: str
    protection: list[float] = field(default_factory=list)
    oco: list[float] = field(default_factory=list)
    order_update: list[float] = field(default_factory=list)
    # The same latencies per broker kind: (metric, "xts" or "paper") -> seconds.
    by_kind: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    events_per_second: float | None = None
    stream_processes: int = 1
    window: tuple[float, float] = (0.0, 0.0)  # first price move .. last cancel (epoch)
    cycles: list[dict] = field(default_factory=list)  # the loop's cycles that overlapped it
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process, this run
    # The stream processes' dispatcher counters over the same window (metric -> count).
    dispatch: dict[str, float] = field(default_factory=dict)
    burst: int = 0
    duplicates: int = 0
    duplicate_detail: Counter = field(default_factory=Counter)
    missing: Counter = field(default_factory=Counter)


# ---- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, process: subprocess.Popen, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{name} did not start (log in {LOG_DIR})") from None
            time.sleep(0.2)


def start(name: str, command: list[str], env: dict) -> subprocess.Popen:
    log = open(LOG_DIR / f"bench_events_{name}.log", "w")
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def cpu_seconds(process: subprocess.Popen | int | None) -> float:
    """User + system CPU seconds a process (or pid) used so far (Linux /proc; 0 elsewhere)."""
    if isinstance(process, subprocess.Popen):
        process = process.pid if process.poll() is None else None
    if process is None:
        return 0.0
    try:
        fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(processes: list[subprocess.Popen], timeout: float = 120.0) -> float:
    """Wait until the processes' CPU use over one second falls under 5% of a core (the
    stream processes' start-up catch-up, the resync of every account, is over); returns the
    seconds waited."""
    started = time.monotonic()
    last = sum(cpu_seconds(p) for p in processes)
    while time.monotonic() - started < timeout:
        time.sleep(1.0)
        now = sum(cpu_seconds(p) for p in processes)
        if now - last < 0.05:
            break
        last = now
    return time.monotonic() - started


def units_per_process(desks: list[Desk]) -> dict[str, Counter]:
    """Lease holder (pid) -> how many paper partitions and XTS sessions of the run it holds."""
    from django_redis import get_redis_connection

    from orders.brokers.paper import events as paper_events
    from orders.brokers.streams.leases import lease_key

    units = [f"paper:{p}" for p in range(paper_events.partitions())] + [
        f"xts:{d.account_id}" for d in desks if d.kind == "xts"
    ]
    owners = get_redis_connection("default").mget([lease_key(unit) for unit in units])
    held: dict[str, Counter] = {}
    for unit, owner in zip(units, owners, strict=True):
        if owner is not None:
            pid = owner.decode().split(":")[1]
            held.setdefault(pid, Counter())[unit.split(":")[0]] += 1
    return held


def balanced(desks: list[Desk], processes: list[subprocess.Popen]) -> int:
    """1 once every stream process holds paper partitions and XTS sessions within one of an
    even part (and the XTS handover has stopped: within the supervisor's slack)."""
    held = units_per_process(desks)
    if len(held) < len(processes):
        return 0
    for kind in ("paper", "xts"):
        counts = [held[pid][kind] for pid in held]
        if max(counts) - min(counts) > (1 if kind == "paper" else 2):
            return 0
    return 1


def service_pids() -> dict[str, int]:
    """MariaDB's and Redis's pids on this machine, for their CPU seconds (when readable)."""
    found = {}
    for name, command in (("MariaDB", "mariadbd"), ("Redis", "redis-server")):
        out = subprocess.run(["pgrep", "-o", "-x", command], capture_output=True, text=True)
        if out.stdout.strip():
            found[name] = int(out.stdout.split()[0])
    return found


def cpu_of(processes: Mapping[str, subprocess.Popen | int | None]) -> dict[str, float]:
    """CPU seconds so far of each named process (or pid)."""
    return {name: cpu_seconds(process) for name, process in processes.items()}


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


# ---- the monitoring loop (a process of its own) -----------------------------------------------


def loop_main(interval: float) -> None:
    """`run_user_cycle` for the users read from stdin, every `interval` s, two at a time."""
    from bench.common import setup_django

    setup_django(database_url=os.environ["DATABASE_URL"])
    from django.conf import settings
    from django.db import close_old_connections

    from monitoring.services import run_user_cycle
    from trading_site.core.cpu_priority import lower_priority

    # As a Celery worker does when it starts (trading_site.celery): the loop gives way.
    lower_priority(settings.WORKER_NICENESS)

    setup = json.loads(sys.stdin.readline())
    user_ids, first_tick = setup["users"], float(setup["first_tick"])

    def one(user_id: int, key: str) -> None:
        try:
            run_user_cycle(user_id=user_id, cycle_key=key, trigger="bench")
        finally:
            close_old_connections()

    started = time.monotonic() + first_tick - interval
    with ThreadPoolExecutor(max_workers=2) as pool:
        for tick in range(1, 10**6):
            time.sleep(max(0.0, started + tick * interval - time.monotonic()))
            key = f"bench-{os.getpid()}-{tick}"
            began = time.time()
            print(json.dumps({"cycle_began": tick, "at": began}), flush=True)
            list(pool.map(lambda uid, key=key: one(uid, key), user_ids))
            print(json.dumps({"cycle": tick, "began": began, "ended": time.time()}), flush=True)


def loop_cycle_started() -> bool:
    """Whether the loop process has begun its first cycle (its log says so)."""
    path = LOG_DIR / "bench_events_loop.log"
    return path.exists() and '{"cycle_began"' in path.read_text()


def loop_cycles() -> list[dict]:
    """The loop process's finished cycles (its log), each with when it began and ended."""
    cycles = []
    for line in (LOG_DIR / "bench_events_loop.log").read_text().splitlines():
        if line.startswith('{"cycle"'):
            cycles.append(json.loads(line))
    return cycles


# ---- seeding -------------------------------------------------------------------------------------


def seed_run(
    *, tag: str, accounts: int, instruments: list, sim_url: str, sim_keys: list[str]
) -> list[Desk]:
    """`accounts` XTS accounts (one simulator login each) and `accounts` paper accounts, one
    user each, every one with a bracket open at its broker."""
    from accounts.models import Broker, User
    from accounts.services import create_auth_session
    from bench.common import bench_account
    from orders.brokers.sessions import connect_account
    from orders.services import place_bracket_order
    from orders.validation import BracketOrderRequest, TargetSpec

    desks: list[Desk] = []
    for n in range(2 * accounts):
        kind = "xts" if n < accounts else "paper"
        user = User.objects.create_user(
            username=f"ev-{tag}-{n}", email=f"ev-{tag}-{n}@bench.invalid", password=None
        )
        extra = {}
        if kind == "xts":
            key = sim_keys[n]
            extra = {
                "broker": Broker.IIFL,
                "credentials": {
                    "app_key": key,
                    "secret_key": f"{key}-secret",
                    "client_id": "",
                    "base_url": sim_url,
                },
            }
        account = bench_account(user=user, name=f"{kind}-{n}", **extra)
        if kind == "xts":
            connect_account(account)
        token, _ = create_auth_session(user=user, client_ip="127.0.0.1", user_agent="bench")
        instrument = instruments[n % len(instruments)]
        request = BracketOrderRequest(
            account_id=account.pk,
            no_of_lots=1,
            entry_price=Decimal(ENTRY),
            sl_price=Decimal(SL_LIMIT),
            sl_stop_price=Decimal(SL_STOP),
            exchange_token=instrument.exchange_instrument_id,
            exchange_segment=instrument.exchange_segment,
            targets=[TargetSpec(price=Decimal(TARGET), percent=Decimal("100"))],
        )
        order = place_bracket_order(user=user, request=request).order
        assert order.status == "OPEN", (order.status, kind)
        desks.append(Desk(user.pk, account.pk, token, kind, instrument.pk, order.pk))
    return desks


def move_prices(instrument_ids: list[int], price: str, per_second: float) -> None:
    from orders.market.services import record_fair_prices

    for instrument_id in instrument_ids:
        started = time.monotonic()
        record_fair_prices(
            rows=[
                {
                    "instrument_id": instrument_id,
                    "buy_fair_price": Decimal(price),
                    "sell_fair_price": Decimal(price),
                }
            ],
            source="bench",
        )
        time.sleep(max(0.0, 1 / per_second - (time.monotonic() - started)))


# ---- browsers ----------------------------------------------------------------------------------


class Browsers:
    """One WebSocket per user on the real server; records when each order_update arrives."""

    def __init__(self, port: int, desks: list[Desk]):
        self.port = port
        self.desks = desks
        self.arrivals: list[tuple[float, dict]] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.failed = 0
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),))
        self.thread.daemon = True
        self.thread.start()
        if not self.ready.wait(60):
            raise SystemExit("the WebSockets did not open")

    async def _main(self) -> None:
        from websockets.asyncio.client import connect

        self._stop = asyncio.Event()
        sockets = []

        async def open_one(desk: Desk):
            for _ in range(10):
                try:
                    ws = await connect(
                        f"ws://127.0.0.1:{self.port}/ws/{desk.user_id}/?token={desk.token}",
                        open_timeout=30,
                    )
                    hello = json.loads(await ws.recv())
                    assert hello["type"] == "connection_established", hello
                    return ws
                except Exception:
                    await asyncio.sleep(0.5)
            self.failed += 1
            return None

        sockets = [s for s in await asyncio.gather(*map(open_one, self.desks)) if s]

        async def read(ws):
            try:
                async for raw in ws:
                    message = json.loads(raw)
                    if message.get("type") == "order_update":
                        self.arrivals.append((time.time(), message))
            except Exception:
                pass

        readers = [asyncio.ensure_future(read(ws)) for ws in sockets]
        self.ready.set()
        await self._stop.wait()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)
        self.loop.close()

    def first_filled(self) -> dict[int, float]:
        """Order id -> when its first order_update with the entry filled arrived."""
        seen: dict[int, float] = {}
        for at, message in list(self.arrivals):
            details = message.get("details") or {}
            filled = details.get("filled_quantity") or 0
            if filled and filled >= (details.get("quantity") or 1):
                seen.setdefault(message["order_id"], at)
        return seen


# ---- what the brokers saw ------------------------------------------------------------------------


def _leg_rows(desks: list[Desk]):
    from orders.models import OrderLeg

    legs = OrderLeg.objects.filter(order_id__in=[d.order_id for d in desks]).values(
        "order_id", "role", "unique_identifier", "account_id", "status"
    )
    by_order: dict[int, dict[str, list[dict]]] = {}
    for leg in legs:
        by_order.setdefault(leg["order_id"], {}).setdefault(leg["role"], []).append(dict(leg))
    return by_order


def _broker_orders(desks: list[Desk]) -> dict[str, list]:
    """orderUniqueIdentifier -> the paper rows of it (both brokers write the paper tables)."""
    from orders.brokers.paper.models import PaperOrder

    uids = [
        leg["unique_identifier"]
        for legs in _leg_rows(desks).values()
        for rows in legs.values()
        for leg in rows
    ]
    rows: dict[str, list] = {}
    for order in PaperOrder.objects.filter(unique_identifier__in=uids).prefetch_related("trades"):
        rows.setdefault(order.unique_identifier, []).append(order)
    return rows


def protected(desks: list[Desk]) -> int:
    by_order = _leg_rows(desks)
    return sum(
        1
        for legs in by_order.values()
        if any(leg["status"] == "OPEN" for leg in legs.get("STOP_LOSS", []))
        and any(leg["status"] == "OPEN" for leg in legs.get("TAKE_PROFIT", []))
    )


def targets_cancelled(desks: list[Desk]) -> int:
    by_order = _leg_rows(desks)
    rows = _broker_orders(desks)
    done = 0
    for legs in by_order.values():
        targets = [
            r for leg in legs.get("TAKE_PROFIT", []) for r in rows.get(leg["unique_identifier"], [])
        ]
        if targets and all(r.status == "CANCELLED" for r in targets):
            done += 1
    return done


def wait_until(count, want: int, timeout: float, what: str) -> int:
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        last = count()
        if last >= want:
            return last
        time.sleep(0.25)
    print(f"  !! {what}: {last} of {want} within {timeout:.0f} s", flush=True)
    return last


def _fill_time(rows: list) -> float | None:
    trades = [t.traded_at for r in rows for t in r.trades.all()]
    return min(trades).timestamp() if trades else None


def measure(desks: list[Desk], browsers: Browsers, result: RunResult) -> None:
    def add(metric: str, desk: Desk, seconds: float) -> None:
        getattr(result, metric).append(seconds)
        result.by_kind.setdefault((metric, desk.kind), []).append(seconds)

    by_order = _leg_rows(desks)
    rows = _broker_orders(desks)
    updates = browsers.first_filled()
    for desk in desks:
        legs = by_order.get(desk.order_id, {})
        entry = rows.get(legs["ENTRY"][0]["unique_identifier"], []) if legs.get("ENTRY") else []
        stops = [
            r for leg in legs.get("STOP_LOSS", []) for r in rows.get(leg["unique_identifier"], [])
        ]
        targets = [
            r for leg in legs.get("TAKE_PROFIT", []) for r in rows.get(leg["unique_identifier"], [])
        ]
        filled = _fill_time(entry)
        if filled is None:
            result.missing["entry not filled"] += 1
            continue
        if stops and targets:
            accepted = max(min(r.created_at for r in stops), min(r.created_at for r in targets))
            add("protection", desk, accepted.timestamp() - filled)
        else:
            result.missing["not protected"] += 1
        if desk.order_id in updates:
            add("order_update", desk, updates[desk.order_id] - filled)
        else:
            result.missing["no order_update"] += 1
        stop_filled = _fill_time(stops)
        cancelled = [r.updated_at for r in targets if r.status == "CANCELLED"]
        if stop_filled is not None and cancelled:
            add("oco", desk, min(cancelled).timestamp() - stop_filled)
        else:
            result.missing["target not cancelled"] += 1


def count_duplicates(desks: list[Desk], sim_stats: dict, result: RunResult) -> None:
    """Extra legs per order, extra broker orders per leg, extra cancels (see the docstring)."""
    from orders.models import OrderEvent

    by_order = _leg_rows(desks)
    rows = _broker_orders(desks)
    detail = result.duplicate_detail
    for legs in by_order.values():
        for role in ("STOP_LOSS", "TAKE_PROFIT"):
            detail[f"extra {role} legs"] += max(0, len(legs.get(role, [])) - 1)
    for orders in rows.values():
        detail["extra broker orders for one leg"] += max(0, len(orders) - 1)
    xts = {
        leg["unique_identifier"]
        for d in desks
        if d.kind == "xts"
        for legs in [by_order.get(d.order_id, {})]
        for rs in legs.values()
        for leg in rs
    }
    posts = sim_stats.get("order_posts_by_uid", {})
    detail["extra POSTs at the simulator"] += sum(
        max(0, n - 1) for uid, n in posts.items() if uid in xts
    )
    xts_cancelled = sum(
        1
        for d in desks
        if d.kind == "xts"
        for leg in by_order.get(d.order_id, {}).get("TAKE_PROFIT", [])
        for r in rows.get(leg["unique_identifier"], [])
        if r.status == "CANCELLED"
    )
    cancels = sim_stats.get("requests", {}).get("DELETE /interactive/orders", 0)
    detail["extra cancels at the simulator"] += max(0, cancels - xts_cancelled)
    per_leg = Counter(
        OrderEvent.objects.filter(
            order_id__in=[d.order_id for d in desks], kind__in=["exit_cancelled", "exit_reduced"]
        ).values_list("leg_id", flat=True)
    )
    detail["extra one-cancels-other per target"] += sum(max(0, n - 1) for n in per_leg.values())
    result.duplicates = sum(detail.values())


# ---- events per second of one stream process --------------------------------------------------


def burst(desks: list[Desk], repeat: int) -> tuple[int, float]:
    """Publish the paper entries' order and trade events `repeat` times at once on the paper
    exchange's Redis Streams; the seconds until the stream process's cursors passed them."""
    from django.core.cache import cache
    from django_redis import get_redis_connection

    from orders.brokers.event_codec import encode_event
    from orders.brokers.paper import events as paper_events
    from orders.brokers.paper.models import PaperOrder

    paper = [d for d in desks if d.kind == "paper"]
    by_order = _leg_rows(paper)
    uids = [by_order[d.order_id]["ENTRY"][0]["unique_identifier"] for d in paper]
    events = []
    for desk, uid in zip(paper, uids, strict=True):
        order = PaperOrder.objects.prefetch_related("trades").get(
            book__account_id=desk.account_id, unique_identifier=uid
        )
        events += paper_events.events_of(desk.account_id, [order], order.trades.all())
    events = events * repeat
    client = get_redis_connection("default")
    pipe = client.pipeline(transaction=False)
    partitions = []
    for event in events:
        partition = paper_events.partition_of(event.account_id)
        partitions.append(partition)
        pipe.xadd(paper_events.stream_key(partition), {"e": encode_event(event)})
    started = time.perf_counter()
    ids = pipe.execute()
    last: dict[int, tuple[int, int]] = {}
    for partition, entry_id in zip(partitions, ids, strict=True):
        millis, _, seq = entry_id.decode().partition("-")
        last[partition] = max(last.get(partition, (0, 0)), (int(millis), int(seq)))
    keys = {p: cache.make_key(f"broker-events:paper:{p}:cursor") for p in last}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        behind = 0
        for partition, key in keys.items():
            value = client.get(key)
            millis, _, seq = (value or b"0-0").decode().partition("-")
            if (int(millis), int(seq or 0)) < last[partition]:
                behind += 1
        if not behind:
            break
        time.sleep(0.02)
    return len(events), time.perf_counter() - started


# ---- one run -------------------------------------------------------------------------------------


def run_once(
    args,
    *,
    streams: bool,
    env: dict,
    web_port: int,
    sim_url: str,
    sim_keys: list[str],
    tag: str,
    servers: dict[str, subprocess.Popen | int],
) -> RunResult:
    import httpx
    from django_redis import get_redis_connection

    from accounts.models import BrokerAccount
    from bench.common import bench_instrument

    name = "streams on" if streams else "streams off"
    result = RunResult(name)
    get_redis_connection("default").flushdb()
    httpx.post(f"{sim_url}/_sim/reset", timeout=10)
    BrokerAccount.objects.filter(is_active=True).update(is_active=False)  # earlier runs' accounts
    base = 20_000_000 + (int(time.time()) % 100_000) * 100 + (0 if streams else 50)
    instruments = [
        bench_instrument(instrument_id=base + n, symbol=f"EV{base + n}")
        for n in range(max(1, args.accounts // 2))
    ]
    print(f"run: {name}: seeding {args.accounts} + {args.accounts} accounts ...", flush=True)
    desks = seed_run(
        tag=tag, accounts=args.accounts, instruments=instruments, sim_url=sim_url, sim_keys=sim_keys
    )
    stream_processes: list[subprocess.Popen] = []
    loop_process = browsers = None
    try:
        if streams:
            result.stream_processes = args.stream_processes
            stream_processes = [
                start(f"streams{n}", [sys.executable, "manage.py", "run_broker_streams"], env)
                for n in range(args.stream_processes)
            ]

            def open_streams() -> int:
                stats = httpx.get(f"{sim_url}/_sim/stats", timeout=10).json()
                return sum(stats["streams"]["open"].values())

            wait_until(open_streams, args.accounts, 60, "XTS streams connected")
            if args.stream_processes > 1:
                # The processes share the streams out (a tenth of a share per second).
                wait_until(lambda: balanced(desks, stream_processes), 1, 120, "streams shared out")
                print(f"  units per stream process: {units_per_process(desks)}", flush=True)
            # The start-up catch-up (every account's resync, the seeding's paper events)
            # is over before the prices move: the run measures the streams at work.
            settled = wait_idle(stream_processes)
            print(f"  stream process(es) settled after {settled:.0f} s", flush=True)
        browsers = Browsers(web_port, desks)
        loop_process = start(
            "loop",
            [sys.executable, __file__, "--loop", "--interval", str(args.interval)],
            env,
        )
        assert loop_process.stdin is not None  # started with stdin=PIPE
        # The loop's first cycle comes one interval after the start, as a beat's would; with
        # --cycle-during, the streams run's first cycle of every user starts with the price
        # moves instead (the streams keeping their pace while the safety net runs: issue 15).
        during = streams and args.cycle_during
        setup = {"users": [d.user_id for d in desks], "first_tick": 0 if during else args.interval}
        loop_process.stdin.write((json.dumps(setup) + "\n").encode())
        loop_process.stdin.flush()
        timeout = 3 * args.interval + 60
        instrument_ids = [i.pk for i in instruments]
        if during:
            # The prices move once the cycle has begun (the loop process starts Django first).
            wait_until(lambda: int(loop_cycle_started()), 1, 60, "the loop's first cycle begun")

        processes = {
            **servers,
            "bench (prices, browsers)": os.getpid(),
            "monitoring loop": loop_process,
            **{f"stream process {n + 1}": p for n, p in enumerate(stream_processes)},
        }
        cpu_before, dispatch_before = cpu_of(processes), dispatch_counts()
        moves_began = time.time()
        move_prices(instrument_ids, FILL_ENTRY, args.moves_per_second)
        wait_until(lambda: protected(desks), len(desks), timeout, "orders protected")
        move_prices(instrument_ids, FILL_STOP, args.moves_per_second)
        wait_until(lambda: targets_cancelled(desks), len(desks), timeout, "targets cancelled")
        result.window = (moves_began, time.time())
        time.sleep(1.0)  # the last order_updates in flight
        cpu_after = cpu_of(processes)
        result.cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_before}
        if streams:
            after = dispatch_counts()
            result.dispatch = {k: v - dispatch_before.get(k, 0.0) for k, v in after.items()}
            result.burst, seconds = burst(desks, args.burst_repeat)
            result.events_per_second = result.burst / seconds if seconds else float("nan")
        stats = httpx.get(f"{sim_url}/_sim/stats", timeout=10).json()
        measure(desks, browsers, result)
        count_duplicates(desks, stats, result)
        if during:
            # The cycle that began with the price moves is reported once it has ended: on a
            # loaded machine it outlasts the window and the burst (the loop stopped before it
            # finished left nothing to report).
            wait_until(lambda: len(loop_cycles()), 1, timeout, "the loop's first cycle ended")
        if browsers.failed:
            result.missing["WebSockets not opened"] += browsers.failed
    finally:
        if browsers is not None:
            browsers.close()
        stop(loop_process)
        began, ended = result.window
        result.cycles = [c for c in loop_cycles() if c["began"] < ended and c["ended"] > began]
        for process in stream_processes:
            stop(process)
    return result


DISPATCH_COUNTERS = (
    "broker_events_received_total",
    "broker_event_runs_total",
    "broker_events_busy_retried_total",
    "broker_events_busy_dropped_total",
    "broker_event_handler_errors_total",
    "broker_event_finish_errors_total",
)


def dispatch_counts() -> dict[str, float]:
    """The dispatcher's counters (summed over their labels), as the stream processes wrote
    them to the metrics store."""
    from trading_site.core import metrics

    series = metrics.snapshot()
    return {
        name: sum(series.get((metrics.COUNTER, name), {}).values()) for name in DISPATCH_COUNTERS
    }


# ---- output -------------------------------------------------------------------------------------


def _processes(count: int) -> str:
    return "one stream process" if count == 1 else f"{count} stream processes"


def report(result: RunResult) -> None:
    from bench.common import percentile

    def ms(values, pct):
        return percentile(values, pct) * 1000

    def kinds(metric: str) -> str:
        return (
            "  (p95 "
            + ", ".join(
                f"{kind} {ms(result.by_kind[(metric, kind)], 95):.0f} ms"
                for kind in ("xts", "paper")
                if result.by_kind.get((metric, kind))
            )
            + ")"
        )

    print(f"run: {result.name}")
    if result.cpu:
        print(
            "  CPU seconds from the first price move to the last cancel: "
            + ", ".join(f"{name} {seconds:.1f}" for name, seconds in result.cpu.items())
        )
    began, ended = result.window
    print(f"  first price move to last cancel: {ended - began:.1f} s")
    if result.dispatch:
        print(
            "  dispatcher: "
            + ", ".join(
                f"{name.removeprefix('broker_').removesuffix('_total')} {value:.0f}"
                for name, value in result.dispatch.items()
            )
        )
    for cycle in result.cycles:
        print(
            f"  monitoring cycle {cycle['cycle']} of every user ran {cycle['began'] - began:+.1f} s "
            f"to {cycle['ended'] - began:+.1f} s of it ({cycle['ended'] - cycle['began']:.1f} s)"
        )
    p = result.protection
    print(
        f"  entry fill -> stop-loss and target accepted  n={len(p):<4} p50={ms(p, 50):.0f} ms  "
        f"p95={ms(p, 95):.0f} ms  p99={ms(p, 99):.0f} ms" + kinds("protection")
    )
    print(
        f"  stop-loss fill -> target cancelled          n={len(result.oco):<4} "
        f"p95={ms(result.oco, 95):.0f} ms" + kinds("oco")
    )
    print(
        f"  broker fill -> browser order_update         n={len(result.order_update):<4} "
        f"p95={ms(result.order_update, 95):.0f} ms" + kinds("order_update")
    )
    if result.events_per_second is not None:
        print(
            f"  events/s, {_processes(result.stream_processes):<33}"
            f"{result.events_per_second:.0f} "
            f"({result.burst} events)"
        )
    if result.missing:
        print(f"  missing: {dict(result.missing)}")
    print(
        f"  duplicates: {result.duplicates}"
        + (f" {dict(+result.duplicate_detail)}" if result.duplicates else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--accounts", type=int, default=100, help="XTS accounts (and as many paper)"
    )
    parser.add_argument("--interval", type=float, default=30.0, help="monitoring loop, seconds")
    parser.add_argument("--moves-per-second", type=float, default=4.0)
    parser.add_argument("--burst-repeat", type=int, default=10)
    parser.add_argument(
        "--cycle-during",
        action="store_true",
        help="with streams, a full monitoring cycle of every user runs during the price moves",
    )
    parser.add_argument(
        "--stream-processes",
        type=int,
        default=1,
        help="run_broker_streams processes sharing the sessions (with streams)",
    )
    parser.add_argument("--quick", action="store_true", help="10 + 10 accounts, a 3 s loop")
    parser.add_argument("--loop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.accounts, args.interval, args.moves_per_second, args.burst_repeat = 10, 3.0, 10.0, 5

    # The bench's own database and Redis, whatever the calling environment had.
    os.environ["DATABASE_URL"] = os.environ.get(
        "BENCH_DATABASE_URL", "mysql://root@127.0.0.1:3306/bench_events"
    )
    os.environ["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
    os.environ["PAPER_EVENTS_TRANSPORT"] = "redis"
    os.environ["BROKER_STREAMS_IN_PROCESS"] = "0"
    os.environ["BROKER_ALLOW_PRIVATE_HOSTS"] = "1"  # the simulator on localhost
    if args.loop:
        loop_main(args.interval)
        return
    global LOG_DIR
    LOG_DIR = Path(tempfile.mkdtemp(prefix="bench_events_"))

    from bench.common import setup_django

    env = {**os.environ, **setup_django(database_url=os.environ["DATABASE_URL"])}
    env["PYTHONPATH"] = str(ROOT)
    stamp = f"{int(time.time())}"
    runs = [("on", True), ("off", False)]
    keys = {tag: [f"ev{stamp}{tag}{n}" for n in range(args.accounts)] for tag, _ in runs}
    users = [f"{k}:{k}-secret:U{k}:investor" for ks in keys.values() for k in ks]
    sim_port, web_port = free_port(), free_port()
    sim_users = LOG_DIR / "bench_events_sim_users.txt"
    sim_users.write_text(",".join(users))
    simulator = start(
        "simulator",
        [
            sys.executable,
            "manage.py",
            "run_xts_simulator",
            "--port",
            str(sim_port),
            "--rate-limit",
            "0",
            "--user",
            ",".join(users),
        ],
        env,
    )
    web = start("web", [sys.executable, "manage.py", "serve_web", "--port", str(web_port)], env)
    results = []
    started = time.monotonic()
    try:
        wait_port(sim_port, simulator, "the XTS simulator")
        wait_port(web_port, web, "daphne")
        sim_url = f"http://127.0.0.1:{sim_port}"
        print(
            f"events bench: {args.accounts} XTS-simulator + {args.accounts} paper accounts, "
            f"{max(1, args.accounts // 2)} instruments moved {args.moves_per_second:g}/s, "
            f"monitoring loop every {args.interval:g} s (2 threads), {os.cpu_count()} cores; "
            f"logs in {LOG_DIR}",
            flush=True,
        )
        for tag, streams in runs:
            results.append(
                run_once(
                    args,
                    streams=streams,
                    env=env,
                    web_port=web_port,
                    sim_url=sim_url,
                    sim_keys=keys[tag],
                    tag=f"{stamp}{tag}",
                    servers={"XTS simulator": simulator, "web (daphne)": web, **service_pids()},
                )
            )
    finally:
        stop(web)
        stop(simulator)

    from bench.common import percentile

    for result in results:
        report(result)
    on, off = results
    print("ratio (streams off / streams on, p95):")
    for label, attr in (
        ("protection", "protection"),
        ("one-cancels-other", "oco"),
        ("order_update", "order_update"),
    ):
        a, b = percentile(getattr(off, attr), 95), percentile(getattr(on, attr), 95)
        goal = "met" if b < 1 else "missed"
        print(
            f"  {label:<20} {a / b if b else float('nan'):.1f}x "
            f"({a * 1000:.0f} ms -> {b * 1000:.0f} ms; goal p95 < 1000 ms with streams: {goal})"
        )
    total = sum(r.duplicates for r in results)
    missing = sum(sum(r.missing.values()) for r in results)
    print(f"total: {time.monotonic() - started:.0f} s")
    print(f"duplicates: {total}")
    if total or missing:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
