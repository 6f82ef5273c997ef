"""A Celery worker can give way to broker events on a shared machine (WORKER_NICENESS).

Broker events are what the desk must act on within a second (protection after a fill,
one-cancels-other, the browser's order_update); the monitoring loop is the safety net that
catches what an event missed. On one machine both want the same cores during a full cycle
of every user.

With WORKER_NICENESS set, a Celery worker (the loop, scheduled orders, housekeeping) lowers
its own CPU priority once, before its pool starts (`trading_site.celery`): the value is
added to its nice value and inherited by every pool process and thread. The web server and
the stream processes keep the default, so the kernel runs them first whenever they have
work. Raising a nice value needs no privilege; lowering it again would, so this is done
once per process and never undone.

Off by default (0). Measured on two cores (bench/events.py --cycle-during,
bench/monitoring.py): at 10 the events' p95s fell by a fifth at most (they were under a
second without it), while the steady cycle of 1,000 users took 14-19 s instead of 10.6 s:
the workers then wait behind MariaDB, itself at the default priority, for every query's
answer. Worth setting where the workers share cores with the stream processes but not with
the database.
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
