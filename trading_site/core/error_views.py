"""Django-level error pages: the JSON envelope under /api/, plain pages elsewhere."""

from django.http import HttpResponseNotFound, HttpResponseServerError

from trading_site.core.api import errors


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def not_found(request, exception=None):
    if _is_api(request):
        return errors.api_not_found(request, exception)
    return HttpResponseNotFound("<h1>Not found</h1>")


def server_error(request):
    if _is_api(request):
        return errors.api_server_error(request)
    return HttpResponseServerError("<h1>Server error</h1>")


def csrf_failure(request, reason=""):
    if _is_api(request):
        return errors.api_csrf_failure(request, reason)
    from django.views.csrf import csrf_failure as default_csrf_failure

    return default_csrf_failure(request, reason)
