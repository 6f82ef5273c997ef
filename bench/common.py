"""Shared helpers of the order benchmarks: a dedicated MariaDB database, its schema, seed
rows, a gunicorn server started as the README's full-stack mode runs it, and latency maths.

Every benchmark runs against `bench_orders` (or BENCH_DATABASE_URL), never `test`, with rate
limits off (RATE_LIMIT_ENABLED=0) and the bench-only floor endpoints mounted (bench.settings).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "mysql://root@127.0.0.1:3306/bench_orders"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/4"


def bench_environment(*, database_url: str | None = None) -> dict[str, str]:
    """The environment of the benchmark process and the servers it starts."""
    sys.path.insert(0, str(ROOT))
    from trading_site.envconfig import load_or_create_secret

    # One key kept under var/ so a reused bench database stays readable run after run.
    fernet_key = load_or_create_secret(ROOT / "var" / "bench_fernet_key", kind="fernet")
    env = {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": database_url or os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        "RATE_LIMIT_ENABLED": "0",
        "DJANGO_DEBUG": "0",
        "SECRET_KEY": os.environ.get(
            "SECRET_KEY", "bench-secret-key-not-for-production-0123456789"
        ),
        "FERNET_KEYS": os.environ.get("FERNET_KEYS", fernet_key),
        "LOG_LEVEL": "WARNING",
        "TRADING_WINDOW_ALWAYS_OPEN": "1",
        "PRICE_FEED_ENABLED": "0",
    }
    return env


def setup_django(*, database_url: str | None = None) -> dict[str, str]:
    """Configure this process for the bench database and start Django."""
    env = bench_environment(database_url=database_url)
    for key, value in env.items():
        os.environ.setdefault(key, value)
    # Always the bench's settings (importing trading_site already set the product's default).
    os.environ["DJANGO_SETTINGS_MODULE"] = env["DJANGO_SETTINGS_MODULE"]
    sys.path.insert(0, str(ROOT))
    create_database(os.environ["DATABASE_URL"])
    import django

    django.setup()
    ensure_schema()
    ensure_instrument_master()
    return {key: os.environ[key] for key in env}


def create_database(database_url: str) -> None:
    import dj_database_url
    import MySQLdb

    config = dj_database_url.parse(database_url)
    if "mysql" not in config["ENGINE"]:
        return
    connection = MySQLdb.connect(
        host=config["HOST"] or "127.0.0.1",
        port=int(config["PORT"] or 3306),
        user=config["USER"] or "root",
        passwd=config["PASSWORD"] or "",
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE DATABASE IF NOT EXISTS `{config['NAME']}` "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
    connection.close()


def ensure_schema() -> None:
    """Create every missing table with the schema editor (no migrations are run here: the
    benchmark database follows the models as they are in the working tree)."""
    from django.apps import apps
    from django.db import connection

    existing = set(connection.introspection.table_names())
    with connection.schema_editor() as editor:
        for model in apps.get_models(include_auto_created=False):
            if model._meta.managed and not model._meta.proxy:
                if model._meta.db_table not in existing:
                    editor.create_model(model)
                    existing.add(model._meta.db_table)
                    continue
                # A reused database gets the columns, indexes and constraints added to the
                # models since (a bench must measure the schema in the working tree).
                table = model._meta.db_table
                with connection.cursor() as cursor:
                    columns = {
                        column.name
                        for column in connection.introspection.get_table_description(cursor, table)
                    }
                    present = connection.introspection.get_constraints(cursor, table)
                for field in model._meta.local_concrete_fields:
                    if field.column not in columns:
                        print(f"adding column {field.column} to {table} ...")
                        editor.add_field(model, field)
                for index in model._meta.indexes:
                    fields = [model._meta.get_field(name.lstrip("-")) for name in index.fields]
                    wanted = [getattr(field, "column", None) for field in fields]
                    if index.name in present and present[index.name]["columns"] != wanted:
                        print(f"replacing index {index.name} of {table} (its columns changed) ...")
                        editor.remove_index(model, index)
                        del present[index.name]
                    if index.name not in present:
                        print(f"adding index {index.name} to {table} ...")
                        editor.add_index(model, index)
                for constraint in model._meta.constraints:
                    if constraint.name not in present:
                        print(f"adding constraint {constraint.name} to {table} ...")
                        editor.add_constraint(model, constraint)


# A real broker's instrument master lists some 100,000 contracts (NSE's derivatives alone
# ~90,000); the demo's few hundred hid reads that scan it (see tests/trading_site/
# test_index_use.py). Every bench database holds one of this size.
MASTER_SIZE = int(os.environ.get("BENCH_INSTRUMENT_MASTER", "100000"))
MASTER_FIRST_ID = 5_000_001


def ensure_instrument_master(size: int = MASTER_SIZE) -> None:
    """Top the bench database's instrument master up to `size` NSE F&O option contracts
    (ids from MASTER_FIRST_ID, unpriced, never traded by a bench), in bulk."""
    from orders.models import Instrument

    have = Instrument.objects.filter(
        exchange_segment="NSEFO", exchange_instrument_id__gte=MASTER_FIRST_ID
    ).count()
    if have >= size:
        return
    print(f"loading an instrument master of {size:,} contracts ...", flush=True)
    strikes = range(have, size)
    Instrument.objects.bulk_create(
        (
            Instrument(
                exchange_segment="NSEFO",
                exchange_instrument_id=MASTER_FIRST_ID + n,
                instrument_type="OPTIDX",
                trading_symbol=f"NIFTY{n // 2:06d}{'CE' if n % 2 else 'PE'}",
                name="NIFTY",
                series="OPTIDX",
                lot_size=75,
                underlying="NIFTY",
                option_type="CE" if n % 2 else "PE",
            )
            for n in strikes
        ),
        batch_size=5000,
        ignore_conflicts=True,
    )


@dataclass
class Trader:
    user_id: int
    account_id: int
    token: str


def bench_instrument(*, instrument_id: int, symbol: str, spread: Decimal = Decimal("0")):
    """An NSE cash instrument (lot 1, tick 0.05, wide band) with fair prices around 100."""
    from orders.models import FairPrice, Instrument

    instrument, _ = Instrument.objects.get_or_create(
        exchange_segment="NSECM",
        exchange_instrument_id=instrument_id,
        defaults={
            "trading_symbol": symbol,
            "name": symbol,
            "series": "EQ",
            "lot_size": 1,
            "tick_size": Decimal("0.05"),
            "freeze_quantity": 100000,
            "price_band_low": Decimal("1"),
            "price_band_high": Decimal("100000"),
        },
    )
    half = spread / 2
    FairPrice.objects.update_or_create(
        instrument=instrument,
        defaults={
            "buy_fair_price": Decimal("100") + half,
            "sell_fair_price": Decimal("100") - half,
            "avg_fair_price": Decimal("100"),
            "last_traded_price": Decimal("100"),
        },
    )
    return instrument


def bench_account(*, user, name: str, **fields):
    """A paper account (unless `fields` name another broker) with money for any run."""
    from accounts.models import BrokerAccount

    return BrokerAccount.objects.create(
        user=user,
        account_name=name,
        cash_available=Decimal("100000000"),
        net_margin=Decimal("100000000"),
        **{"broker": "PAPER", **fields},
    )


def seed_traders(count: int, *, prefix: str) -> tuple[list[Trader], object]:
    """`count` users, each with a paper account and an API token, and one instrument priced
    at 100 (limit buys at 99 stay open: every request is a real placement)."""
    from accounts.models import User
    from accounts.services import create_auth_session

    instrument = bench_instrument(instrument_id=2885, symbol="RELIANCE")
    stamp = int(time.time() * 1000)
    traders = []
    for n in range(count):
        user = User.objects.create_user(
            username=f"{prefix}-{stamp}-{n}",
            email=f"{prefix}-{stamp}-{n}@bench.invalid",
            password="bench-password-123",
        )
        account = bench_account(user=user, name=f"paper-{n}")
        token, _ = create_auth_session(user=user, client_ip="127.0.0.1", user_agent="bench")
        traders.append(Trader(user_id=user.pk, account_id=account.pk, token=token))
    return traders, instrument


class Server:
    """gunicorn serving trading_site.wsgi as `make web` does (its workers, worker class and
    threads; DB_CONN_MAX_AGE=60), minus the access log."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        port: int,
        workers: int = 2,
        worker_class: str = "sync",
        threads: int = 1,
    ):
        self.port = port
        self.process = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "gunicorn"),
                "trading_site.wsgi",
                "-w",
                str(workers),
                "-k",
                worker_class,
                "--threads",
                str(threads),
                "-b",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env={**os.environ, **env, "DB_CONN_MAX_AGE": "60"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._wait_ready()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                assert self.process.stderr is not None
                raise RuntimeError(
                    f"gunicorn exited: {self.process.stderr.read().decode()[-2000:]}"
                )
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not become ready")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def process_tree_rss(pid: int) -> list[tuple[int, str, int]]:
    """(pid, command name, RSS in KiB) of a process and all its descendants (Linux /proc):
    a gunicorn master and its workers, a Celery worker and its pool children."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            status = (Path("/proc") / str(current) / "status").read_text().splitlines()
        except OSError:
            continue
        values = dict(line.split(":", 1) for line in status if ":" in line)
        rss = int(values.get("VmRSS", "0 kB").split()[0])
        found.append((current, values.get("Name", "?").strip(), rss))
        todo.extend(children.get(current, []))
    return found


def print_rss(label: str, pid: int) -> None:
    """One line: the RSS of the process tree at `pid`, per process (MiB)."""
    tree = process_tree_rss(pid)
    shown = ", ".join(f"{name} {pid_} {rss / 1024:.0f}" for pid_, name, rss in tree)
    total = sum(rss for _pid, _name, rss in tree) / 1024
    print(f"RSS {label:<28} {total:.0f} MiB in {len(tree)} processes ({shown} MiB)")


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def summarize(name: str, latencies: list[float], elapsed: float, *, unit_count: int | None = None):
    """Print count, throughput and p50/p95/p99 (milliseconds); return the figures."""
    count = unit_count if unit_count is not None else len(latencies)
    figures = {
        "count": count,
        "per_second": count / elapsed if elapsed else float("nan"),
        "p50_ms": percentile(latencies, 50) * 1000,
        "p95_ms": percentile(latencies, 95) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "mean_ms": (statistics.fmean(latencies) * 1000) if latencies else float("nan"),
    }
    print(
        f"{name:<28} n={count:<7} {figures['per_second']:>9.1f}/s  "
        f"p50={figures['p50_ms']:.2f} ms  p95={figures['p95_ms']:.2f} ms  "
        f"p99={figures['p99_ms']:.2f} ms"
    )
    return figures


# ---- a lightweight HTTP/1.1 client ---------------------------------------------------------
# The bench client shares the 2 cores with the server: one asyncio process speaking plain
# HTTP/1.1 (keep-alive when the server allows it) costs far less CPU per request than a
# thread per client with a full-featured client library, so the server gets the machine.


class HttpConnection:
    """One keep-alive connection (re-opened when the server closes it, as gunicorn's sync
    workers do after every response)."""

    def __init__(self, host: str, port: int, headers: dict[str, str] | None = None):
        self.host, self.port = host, port
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._fixed = f"Host: {host}:{port}\r\n{extra}"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        import asyncio

        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self._writer is None:
            await self._open()
        assert self._writer is not None
        head = f"{method} {path} HTTP/1.1\r\n{self._fixed}"
        if body or method in ("POST", "PUT", "PATCH"):
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self._writer.write(head.encode() + b"\r\n" + body)
        try:
            return await self._read_response()
        except (ConnectionError, OSError, ValueError):
            # A keep-alive connection the server dropped between requests: one fresh try.
            await self.close()
            await self._open()
            self._writer.write(head.encode() + b"\r\n" + body)
            return await self._read_response()

    async def _read_response(self) -> tuple[int, bytes]:
        reader = self._reader
        assert reader is not None
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("connection closed")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = None, False, False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await reader.readline()
                    break
                parts.append(await reader.readexactly(size))
                await reader.readline()
            body = b"".join(parts)
        elif length is not None:
            body = await reader.readexactly(length)
        else:
            body = await reader.read()
            close = True
        if close:
            await self.close()
        return status, body


def run_clients(
    base_url: str,
    *,
    clients: list[dict[str, str]],
    method: str,
    path_for,
    body_for,
    total: int,
) -> tuple[list[float], float, dict[int, int]]:
    """`total` requests spread over len(clients) concurrent clients (each a coroutine with
    its own connection and headers, one request at a time), in one asyncio process.
    Returns the latencies (seconds), the wall time and the status-code counts."""
    import asyncio
    import json
    from collections import Counter
    from urllib.parse import urlsplit

    url = urlsplit(base_url)
    host, port = url.hostname, url.port
    assert host is not None and port is not None
    per_client = [
        total // len(clients) + (1 if i < total % len(clients) else 0) for i in range(len(clients))
    ]
    latencies: list[float] = []
    statuses: Counter = Counter()

    async def one(index: int, count: int) -> None:
        connection = HttpConnection(host, port, clients[index])
        try:
            for n in range(count):
                body = body_for(index, n)
                payload = json.dumps(body).encode() if body is not None else b""
                started = time.perf_counter()
                status, _ = await connection.request(method, path_for(index, n), payload)
                latencies.append(time.perf_counter() - started)
                statuses[status] += 1
        finally:
            await connection.close()

    async def main() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(one(i, c) for i, c in enumerate(per_client)))
        return time.perf_counter() - started

    elapsed = asyncio.run(main())
    return latencies, elapsed, dict(statuses)
