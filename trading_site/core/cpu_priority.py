"""The monitoring loop gives way to broker events on a shared machine.

Broker events are what the desk must act on within a second (protection after a fill,
one-cancels-other, the browser's order_update); the monitoring loop is the safety net that
catches what an event missed, and a full cycle of every user is minutes of CPU spread over
its interval. On one machine both want the same cores: at the cycle's peak the stream
process waited its turn behind the loop's threads, and its events' p95 rose from tenths of
a second to several seconds (bench/events.py --cycle-during).

So a Celery worker (the loop, scheduled orders, housekeeping) lowers its own CPU priority
once, before its pool starts (`trading_site.celery`): WORKER_NICENESS is added to its nice
value, inherited by every pool process and thread. The web server and the stream processes
keep the default, so the kernel runs them first whenever they have work, and the loop takes
every cycle left over. Raising a nice value needs no privilege; lowering it again would, so
this is done once per process and never undone.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("trading_site.cpu_priority")

MAX_NICENESS = 19


def lower_priority(niceness: int) -> int:
    """Add `niceness` (0 to 19; 0 changes nothing) to this process's nice value and return
    the nice value it has now. Threads and processes it starts later inherit it."""
    if not 0 <= niceness <= MAX_NICENESS:
        raise ValueError(f"WORKER_NICENESS must be 0 to {MAX_NICENESS}, not {niceness}")
    if niceness == 0:
        return os.nice(0)
    now = os.nice(niceness)
    logger.info("CPU priority lowered: nice %s", now, extra={"niceness": niceness})
    return now
