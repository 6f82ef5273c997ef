"""WebSocket URL routes (SPEC 9)."""

from typing import Any

from django.urls import path

from monitoring.consumers import UserUpdatesConsumer

# types-channels types a consumer route as its own URLPattern, which django.urls.path is not.
websocket_urlpatterns: list[Any] = [
    path("ws/<int:user_id>/", UserUpdatesConsumer.as_asgi()),  # type: ignore[arg-type]
]
