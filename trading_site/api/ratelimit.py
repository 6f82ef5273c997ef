"""Per-user token-bucket rate limits (placeholder until issue 2's limiter lands)."""

from rest_framework.throttling import BaseThrottle


class UserRateLimit(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        return True
