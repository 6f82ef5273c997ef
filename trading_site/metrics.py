"""Prometheus-style metrics (placeholder until issue 2's metrics land)."""


class MetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)
