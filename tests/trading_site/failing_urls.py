"""The product's URLs plus views that crash, to test the 500 envelope (tests only)."""

from django.urls import include, path
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from trading_site import urls as product_urls


class CrashingApiView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError("boom with password=hunter2 inside")


def crashing_plain_view(request):
    raise RuntimeError("plain boom")


urlpatterns = [
    path("api/test-crash", CrashingApiView.as_view()),
    path("api/test-plain-crash", crashing_plain_view),
    path("test-page-crash", crashing_plain_view),
    path("", include(product_urls.urlpatterns)),
]

handler404 = product_urls.handler404
handler500 = product_urls.handler500
