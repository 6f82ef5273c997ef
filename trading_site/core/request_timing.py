"""The skeleton of a middleware that times the rest of the stack (the access log line, the
request latency metric)."""

from __future__ import annotations

import time


class TimedMiddleware:
    """Runs the rest of the stack, then hands `record` the response and the perf_counter()
    reading taken before it, so each subclass takes the duration at the point it reports."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        self.record(request, response, started)
        return response

    def record(self, request, response, started: float) -> None:
        raise NotImplementedError
