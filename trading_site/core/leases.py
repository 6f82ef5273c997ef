"""Leases: named mutual exclusion that lasts as long as its holder is alive.

The monitoring cycle of a user and every change of an account's legs hold one
(`orders.services.exclusion`, `monitoring.services`). Two backends, chosen by the stack:

- full stack (Redis): `SET key token NX PX ttl`. While held, one heartbeat thread per process
  renews every lease it holds every ttl/3 with a compare-and-set on the token, so a slow
  holder (a broker answering in 5 s) keeps its lease for as long as it works, and a killed
  one loses it within `ttl`. Release is a compare-and-delete: a lease that outlived its
  holder is never deleted by it once someone else holds it. A renewal that finds another
  token (or none) marks the lease lost; `check` (the fence, called by writers after they
  locked the rows they change) then raises `LeaseLost`, so a holder that stalled past its
  ttl stops instead of writing over the next holder's work.
- embedded (one process): a process-local lock per name; nothing expires (the process's
  death ends every lease with it).

Leases are re-entrant per thread: a holder calling code that takes the same lease (the event
handler placing protection, which records the broker's answer under the same exclusion)
passes through. Redis unreachable at acquisition: the lease is taken process-locally and
marked degraded (logged), because refusing would stop the kill switch and lose broker answers
during an outage; the row locks writers take keep their writes atomic meanwhile.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.conf import settings

logger = logging.getLogger(__name__)

REDIS = "redis"
LOCAL = "local"
DEGRADED = "local-degraded"  # Redis was unreachable: held in this process only

_KEY_PREFIX = "td:lease:"

# Lua run atomically by Redis: renew or release a key only while it still holds our token
# (the streams' leases use them too).
RENEW_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class LeaseBusy(Exception):
    """Someone else holds the lease and did not let go within the wait."""


class LeaseLost(Exception):
    """The lease ended while held (it expired after a stall, or Redis lost it): another
    holder may be at work, so this one must stop."""


@dataclass(eq=False)
class Lease:
    name: str
    token: str
    ttl: float
    backend: str
    thread_id: int
    depth: int = 1
    lost: bool = False
    renewed_at: float = field(default_factory=time.monotonic)
    # Called by the heartbeat thread after each renewal (e.g. a run's heartbeat): must not raise.
    on_renew: list[Callable[[], None]] = field(default_factory=list)


# ---- the backends' shared state -----------------------------------------------------------

_local = threading.local()  # .held: {name: Lease} of this thread
_registry_lock = threading.Lock()
_redis_leases: dict[str, Lease] = {}  # token -> lease, renewed by the heartbeat thread
_local_cond = threading.Condition()
_local_owners: dict[str, str] = {}  # name -> token (process-local leases)
_heartbeat: _Heartbeat | None = None


def _held() -> dict[str, Lease]:
    held = getattr(_local, "held", None)
    if held is None:
        held = _local.held = {}
    return held


def uses_redis() -> bool:
    return not settings.EMBEDDED


def _redis():
    from django_redis import get_redis_connection  # reason: only the full stack has Redis

    return get_redis_connection("default")


def _key(name: str) -> str:
    return _KEY_PREFIX + name


# ---- acquire and release ------------------------------------------------------------------


def acquire(name: str, *, ttl: float, wait: float = 0.0) -> Lease:
    """Take the lease `name` (re-entrant in this thread), waiting up to `wait` seconds for
    its holder to let go; raises LeaseBusy when it did not."""
    current = _held().get(name)
    if current is not None:
        current.depth += 1
        return current
    token = uuid.uuid4().hex
    lease = Lease(
        name=name, token=token, ttl=float(ttl), backend=LOCAL, thread_id=threading.get_ident()
    )
    if uses_redis():
        try:
            _acquire_redis(lease, wait)
            lease.backend = REDIS
        except LeaseBusy:
            raise
        except Exception as exc:  # Redis unreachable: degrade (see the module docstring)
            logger.warning(
                "lease %s taken in this process only: Redis is unavailable (%s)",
                name,
                exc,
                extra={"lease": name},
            )
            _acquire_local(lease, wait)
            lease.backend = DEGRADED
    else:
        _acquire_local(lease, wait)
    _held()[name] = lease
    return lease


def _acquire_redis(lease: Lease, wait: float) -> None:
    client = _redis()
    deadline = time.monotonic() + max(0.0, wait)
    pause = 0.01
    ttl_ms = max(1, int(lease.ttl * 1000))
    while True:
        if client.set(_key(lease.name), lease.token, nx=True, px=ttl_ms):
            lease.renewed_at = time.monotonic()
            with _registry_lock:
                _redis_leases[lease.token] = lease
            _ensure_heartbeat(due=lease.renewed_at + lease.ttl / 3)
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LeaseBusy(lease.name)
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, 0.1)


def _acquire_local(lease: Lease, wait: float) -> None:
    deadline = time.monotonic() + max(0.0, wait)
    with _local_cond:
        while lease.name in _local_owners:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LeaseBusy(lease.name)
            _local_cond.wait(remaining)
        _local_owners[lease.name] = lease.token


def release(lease: Lease) -> None:
    """Let go (the outermost release of a re-entrant holder); never someone else's lease."""
    lease.depth -= 1
    if lease.depth > 0:
        return
    held = _held()
    if held.get(lease.name) is lease:
        del held[lease.name]
    if lease.backend == REDIS:
        with _registry_lock:
            _redis_leases.pop(lease.token, None)
        try:
            _redis().eval(RELEASE_SCRIPT, 1, _key(lease.name), lease.token)
        except Exception:  # it expires on its own within its ttl
            logger.warning("lease %s not released: Redis unavailable", lease.name, exc_info=True)
    else:
        with _local_cond:
            if _local_owners.get(lease.name) == lease.token:
                del _local_owners[lease.name]
                _local_cond.notify_all()


@contextmanager
def held(name: str, *, ttl: float, wait: float = 0.0) -> Iterator[Lease]:
    lease = acquire(name, ttl=ttl, wait=wait)
    try:
        yield lease
    finally:
        release(lease)


# ---- what holders and watchers ask ----------------------------------------------------------


def held_here(name: str) -> Lease | None:
    """This thread's lease `name`, if it holds it."""
    return _held().get(name)


def check(name: str) -> None:
    """The fence: raise LeaseLost when this thread holds `name` but the lease is no longer
    its own (a renewal found it gone, or Redis now holds another token). No-op when this
    thread does not hold it, and when Redis cannot be asked (degraded, see above).

    Redis is asked even when the acquiring SET NX was a moment ago (a placement's fence
    follows it by milliseconds): that SET proved ownership when it ran, not after it; the
    key can be lost in between (Redis restarted, flushed or failed over) and another holder
    take it, which only this GET sees (tests: a holder whose lease ended meanwhile)."""
    lease = _held().get(name)
    if lease is None or lease.backend != REDIS:
        return
    if not lease.lost:
        try:
            current = _redis().get(_key(name))
        except Exception:
            logger.warning("lease %s not verified: Redis unavailable", name, exc_info=True)
            return
        if current is not None and not isinstance(current, str):
            current = current.decode()
        lease.lost = current != lease.token
    if lease.lost:
        raise LeaseLost(f"the lease {name} ended while held; another holder may be at work")


def is_held(name: str) -> bool:
    """Whether anyone (any process in the full stack) holds `name` now."""
    if uses_redis():
        try:
            if _redis().exists(_key(name)):
                return True
        except Exception:
            logger.warning("lease %s not looked up: Redis unavailable", name, exc_info=True)
            return True  # unknown: assume held, so nobody is declared dead on no evidence
    with _local_cond:
        return name in _local_owners


# ---- the heartbeat ----------------------------------------------------------------------------


class _Heartbeat:
    """Renews this process's Redis leases, each every ttl/3 (one thread per process)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.wake = threading.Event()
        # When the thread looks at the leases next (monotonic; under _registry_lock): a new
        # lease due later than that needs no wake-up (`_ensure_heartbeat`).
        self.next_look = 0.0
        self.thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            with _registry_lock:
                leases = list(_redis_leases.values())
            now = time.monotonic()
            due = [lease for lease in leases if now - lease.renewed_at >= lease.ttl / 3]
            for lease in due:
                self._renew(lease)
            with _registry_lock:
                periods = [lease.ttl / 3 for lease in _redis_leases.values()]
                pause = max(0.02, min(periods, default=1.0) / 2)
                self.next_look = time.monotonic() + pause
            self.wake.wait(pause)
            self.wake.clear()

    def _renew(self, lease: Lease) -> None:
        try:
            renewed = _redis().eval(
                RENEW_SCRIPT, 1, _key(lease.name), lease.token, max(1, int(lease.ttl * 1000))
            )
        except Exception:
            logger.warning("lease %s not renewed: Redis unavailable", lease.name, exc_info=True)
            return
        if not renewed:
            with _registry_lock:
                still_held = lease.token in _redis_leases
            if still_held:
                lease.lost = True
                logger.error("lease %s lost while held", lease.name, extra={"lease": lease.name})
            return
        lease.renewed_at = time.monotonic()
        for callback in list(lease.on_renew):
            try:
                callback()
            except Exception:
                logger.exception("lease renewal callback failed", extra={"lease": lease.name})


def _ensure_heartbeat(*, due: float) -> None:
    """A heartbeat thread in this process, woken when a lease due for renewal at `due`
    (monotonic) would otherwise wait past it: not for every lease taken (a placement takes
    one, ttl 15 s, while the thread looks every half second at least), a thread switch
    each."""
    global _heartbeat
    with _registry_lock:
        if _heartbeat is None or _heartbeat.pid != os.getpid():
            _heartbeat = _Heartbeat()
        if due < _heartbeat.next_look:
            _heartbeat.wake.set()
