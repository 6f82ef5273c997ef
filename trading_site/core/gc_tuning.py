"""The garbage collector's settings of a long-lived server process: daphne
(trading_site.server, once it listens) and each gunicorn worker (trading_site.wsgi, once the
application is loaded).

Everything loaded by then (Django, the apps, the URL map, the server) lives as long as the
process: frozen, it is left out of every later collection's walk. CPython's default
thresholds (700, 10, 10) set off a full collection every few thousand surviving
allocations, and each one walked that whole heap:
- a broadcast to 10,000 WebSocket connections allocates short-lived futures, tasks and dicts
  by the hundred thousand; one such collection took 1.1 s under the profiler, the event loop
  stopped (bench/ws.py);
- a batch of 500 orders builds some 3,000 model rows and their dicts: full collections cost
  about 30 ms of CPU per batch, a tenth of the request (bench/orders_batch.py).
Rarer young collections let those objects die by reference counting first; cycles are still
collected, just in larger, later batches.
"""

from __future__ import annotations

import gc

# Generation-0 threshold (CPython's default is 700).
GC_YOUNG_THRESHOLD = 50_000


def tune_for_server() -> None:
    """Freeze what is loaded so far and make young collections rarer (see the module)."""
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
