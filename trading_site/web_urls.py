"""The server-rendered web UI (each app's pages live in its own views module)."""

urlpatterns: list = []
