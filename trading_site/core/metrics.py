"""Prometheus metrics: counters, histograms and gauges, served as text at GET /metrics.

Full stack: every process writes into Redis hashes, so /metrics on any web process shows the
sum over all web processes and Celery workers. One write is one round trip (a Lua script that
also names the metric in the set /metrics reads, on the server: a Redis restarted or flushed
is named again by the next write, with no state kept here). Inside a request
(MetricsMiddleware) the samples wait for its end and go with its latency in one round trip,
written whatever the request's outcome; a process killed mid-request loses that request's
samples with it. Elsewhere (tasks, the stream processes) each call writes at once.
Embedded: a dictionary in the one process.

Call sites:
    metrics.inc("orders_placed_total", broker="PAPER")
    metrics.observe("cycle_duration_seconds", 1.42)
    metrics.set_gauge("some_level", 3)                # last write wins, across processes
    metrics.add_gauge("websocket_connections", +1)    # adds up across processes

A metrics write never breaks the caller: a Redis error is logged (at most once a minute) and
the samples dropped. After a failed call to Redis (a write here, or the rate limiter's or the
token cache's: one breaker, `trading_site.core.redis_breaker`) the writes are dropped, not
sent, for RATE_LIMIT_STORE_RETRY_SECONDS, so a Redis that hangs does not hold every request
(every task, every stream event) for a socket timeout; then one write asks again. Nothing is
held for later: the samples of an outage are lost, memory stays as it was.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import defaultdict
from contextvars import ContextVar

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse
from redis.exceptions import NoScriptError

from trading_site.core.metrics_access import metrics_access_denied
from trading_site.core.redis_breaker import store_outage
from trading_site.core.request_timing import TimedMiddleware

logger = logging.getLogger(__name__)

COUNTER, HISTOGRAM, GAUGE = "counter", "histogram", "gauge"
_KIND_CODE = {COUNTER: "c", HISTOGRAM: "h", GAUGE: "g"}
_CODE_KIND = {code: kind for kind, code in _KIND_CODE.items()}

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

DESCRIPTIONS = {
    "http_request_duration_seconds": "HTTP request latency by method, route and status",
    "orders_placed_total": "Orders accepted by a broker",
    "orders_rejected_total": "Orders rejected by validation or a broker",
    "cycle_duration_seconds": "Duration of one user's monitoring cycle",
    "cycle_step_failures_total": "Monitoring steps that failed, by step",
    "cycles_skipped_total": "Cycles not run because the user's previous one still ran "
    "(the workers are behind the interval: add workers)",
    "websocket_connections": "Open WebSocket connections",
    "broker_events_received_total": "Broker events received from the streams, by source and kind",
    "broker_event_handler_seconds": "From receiving a broker event to its handler's return",
    "broker_event_handler_errors_total": "Broker events whose handler raised",
    "broker_event_finish_errors_total": "Accounts whose PnL after a burst of broker events "
    "failed or stayed busy (the next cycle computes it)",
    "broker_stream_reconnects_total": "Broker stream reconnects, by source",
    "broker_stream_lease_takeovers_total": "Streams taken over from another (dead) process",
    "broker_stream_events_not_dispatched_total": "Stream events not acted on (joined, ...)",
    "paper_events_dropped_total": "Paper events dropped by the backlog cap before a reader",
    "paper_events_publish_errors_total": "Paper events that could not be published",
}

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_SEP = "\x1f"  # between a histogram series' labels and its bucket/sum/count suffix


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels_text(labels: dict[str, object]) -> str:
    return ",".join(f'{key}="{_escape(labels[key])}"' for key in sorted(labels))


# One write: (kind, metric name, {field: value}, replace). A replace (a gauge set) writes the
# value; otherwise the value is added to the field.
_Write = tuple[str, str, dict[str, float], bool]


class _MemoryStore:
    """The embedded store: {(kind, name): {field: value}} under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)

    def write(self, writes: list[_Write]) -> None:
        with self._lock:
            for kind, name, fields, replace in writes:
                series = self._data[(kind, name)]
                for field, value in fields.items():
                    series[field] = value if replace else series.get(field, 0.0) + value

    def snapshot(self) -> dict[tuple[str, str], dict[str, float]]:
        with self._lock:
            return {key: dict(series) for key, series in self._data.items()}

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


# KEYS[1] the set of names, KEYS[2..] one hash per write; ARGV per write: its name in the
# set, "add" or "set", its number of fields, then field, value pairs.
_WRITE_SCRIPT = """
local at = 1
for k = 2, #KEYS do
  local name, mode, fields = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2])
  at = at + 3
  for _ = 1, fields do
    if mode == 'set' then
      redis.call('HSET', KEYS[k], ARGV[at], ARGV[at + 1])
    else
      redis.call('HINCRBYFLOAT', KEYS[k], ARGV[at], ARGV[at + 1])
    end
    at = at + 2
  end
  redis.call('SADD', KEYS[1], name)
end
return 0
"""
_WRITE_SHA = hashlib.sha1(_WRITE_SCRIPT.encode()).hexdigest()


class _RedisStore:
    """Hashes `metrics:<kind>:<name>` plus a set naming every metric that has been written."""

    def _client(self):
        from django_redis import get_redis_connection

        return get_redis_connection("default")

    def _key(self, suffix: str) -> str:
        return cache.make_key("metrics:" + suffix)

    def write(self, writes: list[_Write]) -> None:
        """Every write in one round trip, the names set included (see the module docstring)."""
        keys = [self._key("names")]
        args: list[str | float | int] = []
        for kind, name, fields, replace in writes:
            series = f"{_KIND_CODE[kind]}:{name}"
            keys.append(self._key(series))
            args += [series, "set" if replace else "add", len(fields)]
            for field, value in fields.items():
                args += [field, value]
        client = self._client()
        try:
            client.evalsha(_WRITE_SHA, len(keys), *keys, *args)
        except NoScriptError:  # the first call since Redis started: EVAL caches it
            client.eval(_WRITE_SCRIPT, len(keys), *keys, *args)

    def snapshot(self) -> dict[tuple[str, str], dict[str, float]]:
        client = self._client()
        names = sorted(n.decode() for n in client.smembers(self._key("names")))
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self._key(name))
        result: dict[tuple[str, str], dict[str, float]] = {}
        for name, series in zip(names, pipe.execute(), strict=True):
            code, metric = name.split(":", 1)
            result[(_CODE_KIND[code], metric)] = {
                field.decode(): float(value) for field, value in series.items()
            }
        return result

    def clear(self) -> None:
        client = self._client()
        names = [n.decode() for n in client.smembers(self._key("names"))]
        if names:
            client.delete(*[self._key(n) for n in names])
        client.delete(self._key("names"))


class _RequestBatch:
    """The writes of one request, held until its end (MetricsMiddleware). A write that comes
    after the batch was written (a thread the request started, still running) goes at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writes: list[_Write] | None = []

    def hold(self, write: _Write) -> bool:
        with self._lock:
            if self._writes is None:
                return False
            self._writes.append(write)
            return True

    def take(self) -> list[_Write]:
        with self._lock:
            writes, self._writes = self._writes or [], None
            return writes


_request_batch: ContextVar[_RequestBatch | None] = ContextVar("metrics_request_batch", default=None)


_memory = _MemoryStore()
_redis = _RedisStore()
_last_error_log = 0.0


def _store():
    return _memory if settings.EMBEDDED else _redis


def _guarded(write) -> None:
    """Run `write` unless the breaker keeps Redis off (see the module docstring); never
    raises."""
    global _last_error_log
    if not store_outage.should_ask():
        return  # dropped: Redis failed a moment ago (see the module docstring)
    try:
        store_outage.call(write)
    except Exception:  # metrics are best effort; the request or task must go on
        now = time.monotonic()
        if now - _last_error_log > 60:
            _last_error_log = now
            logger.warning("metrics write failed; samples are being dropped", exc_info=True)


def _write(kind: str, name: str, fields: dict[str, float], *, replace: bool = False) -> None:
    """Held for the end of the request when in one (full stack), else written now."""
    write = (kind, name, fields, replace)
    batch = _request_batch.get()
    if batch is not None and batch.hold(write):
        return
    _guarded(lambda: _store().write([write]))


def inc(name: str, value: float = 1, **labels: object) -> None:
    """Add `value` to the counter `name` with these labels."""
    _write(COUNTER, name, {_labels_text(labels): float(value)})


def observe(name: str, seconds: float, **labels: object) -> None:
    """Record one observation in the histogram `name` (buckets in seconds)."""
    series = _labels_text(labels)
    index = next((i for i, bound in enumerate(BUCKETS) if seconds <= bound), len(BUCKETS))
    increments = {
        f"{series}{_SEP}{index}": 1.0,
        f"{series}{_SEP}sum": float(seconds),
        f"{series}{_SEP}count": 1.0,
    }
    _write(HISTOGRAM, name, increments)


def observe_many(name: str, samples: list[float], **labels: object) -> None:
    """Record many observations of one series in one write (a batch collected in memory)."""
    if not samples:
        return
    series = _labels_text(labels)
    increments: dict[str, float] = {
        f"{series}{_SEP}sum": float(sum(samples)),
        f"{series}{_SEP}count": float(len(samples)),
    }
    for seconds in samples:
        index = next((i for i, bound in enumerate(BUCKETS) if seconds <= bound), len(BUCKETS))
        field = f"{series}{_SEP}{index}"
        increments[field] = increments.get(field, 0.0) + 1.0
    _write(HISTOGRAM, name, increments)


def set_gauge(name: str, value: float, **labels: object) -> None:
    """Set the gauge `name` (the last write wins, whichever process wrote it)."""
    _write(GAUGE, name, {_labels_text(labels): float(value)}, replace=True)


def add_gauge(name: str, delta: float, **labels: object) -> None:
    """Move the gauge `name` up or down by `delta`: per-process changes add up."""
    _write(GAUGE, name, {_labels_text(labels): float(delta)})


def reset_metrics() -> None:
    """Forget every sample (tests and benchmarks)."""
    _store().clear()


def snapshot() -> dict[tuple[str, str], dict[str, float]]:
    """Every series as stored: (kind, name) -> {labels (and bucket) field: value} (tests and
    benchmarks read figures from it)."""
    return _store().snapshot()


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _series(name: str, labels: str, value: float) -> str:
    return f"{name}{{{labels}}} {_number(value)}" if labels else f"{name} {_number(value)}"


def _join_labels(labels: str, extra: str) -> str:
    return f"{labels},{extra}" if labels else extra


def render_prometheus() -> str:
    """Every metric in the Prometheus text exposition format 0.0.4."""
    lines: list[str] = []
    for (kind, name), series in sorted(_store().snapshot().items(), key=lambda kv: kv[0][1]):
        lines.append(f"# HELP {name} {DESCRIPTIONS.get(name, name.replace('_', ' '))}")
        lines.append(f"# TYPE {name} {kind}")
        if kind != HISTOGRAM:
            for labels, value in sorted(series.items()):
                lines.append(_series(name, labels, value))
            continue
        by_labels: dict[str, dict[str, float]] = defaultdict(dict)
        for field, value in series.items():
            labels, _, part = field.rpartition(_SEP)
            by_labels[labels][part] = value
        for labels, parts in sorted(by_labels.items()):
            cumulative = 0.0
            for index, bound in enumerate(BUCKETS):
                cumulative += parts.get(str(index), 0.0)
                le = _join_labels(labels, f'le="{_number(float(bound))}"')
                lines.append(_series(f"{name}_bucket", le, cumulative))
            cumulative += parts.get(str(len(BUCKETS)), 0.0)
            lines.append(_series(f"{name}_bucket", _join_labels(labels, 'le="+Inf"'), cumulative))
            lines.append(_series(f"{name}_sum", labels, parts.get("sum", 0.0)))
            lines.append(_series(f"{name}_count", labels, parts.get("count", 0.0)))
    return "\n".join(lines) + "\n"


def metrics_view(request):
    """GET /metrics for Prometheus: with the METRICS_TOKEN (`Authorization: Bearer <token>`
    or `X-Metrics-Token`), or for a signed-in staff member. Anyone else learns nothing,
    not even whether metrics exist."""
    denied = metrics_access_denied(request)
    if denied is not None:
        return denied
    return HttpResponse(
        render_prometheus(), content_type="text/plain; version=0.0.4; charset=utf-8"
    )


class MetricsMiddleware(TimedMiddleware):
    """Records every request's latency by method, URL route (the pattern) and status, and
    writes it with every sample the request took in one round trip at its end (full stack)."""

    def __call__(self, request):
        if settings.EMBEDDED:
            return super().__call__(request)
        batch = _RequestBatch()
        reset = _request_batch.set(batch)
        try:
            return super().__call__(request)
        finally:
            _request_batch.reset(reset)
            writes = batch.take()
            if writes:
                _guarded(lambda: _store().write(writes))

    def record(self, request, response, started: float) -> None:
        match = getattr(request, "resolver_match", None)
        # The pattern, not the path: /api/orders/<int:order_id> is one series, not millions.
        route = "/" + match.route if match is not None and match.route else "unmatched"
        observe(
            "http_request_duration_seconds",
            time.perf_counter() - started,
            # A client may send any method name: each new one would be a series kept in
            # Redis forever. Known methods by name, the rest as one "OTHER".
            method=request.method if request.method in KNOWN_METHODS else "OTHER",
            route=route,
            status=response.status_code,
        )
