"""WebSocket URL routes (SPEC 9)."""

from django.urls import path

from monitoring.consumers import UserUpdatesConsumer

websocket_urlpatterns = [
    path("ws/<int:user_id>/", UserUpdatesConsumer.as_asgi()),
]
