"""ASGI entry point: HTTP through Django, WebSockets through Channels (monitoring.routing).

WebSockets pass the origin check (allowed hosts; see monitoring.ws_auth), then channels'
AuthMiddlewareStack (the Django session cookie); the consumer also accepts an API token.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trading_site.settings")
# Django must be set up before anything imports models (the consumer does).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from monitoring.routing import websocket_urlpatterns  # noqa: E402
from monitoring.ws_auth import origin_validated  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": origin_validated(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
