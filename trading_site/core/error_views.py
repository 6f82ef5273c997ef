"""Django-level error pages: the JSON envelope under /api/, the product's own pages elsewhere
(templates/errors/: no stack trace, no URL list, whatever DEBUG says)."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from django.template import loader

from trading_site.core.api import errors
from trading_site.core.request_context import current_request_id


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def _page(name: str, status: int, **context) -> HttpResponse:
    # No RequestContext: a page for a failed request must not depend on the session, the
    # database or the user (they may be what failed).
    return HttpResponse(loader.get_template(f"errors/{name}.html").render(context), status=status)


def bad_request(request, exception=None):
    if _is_api(request):
        return errors.api_bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0
        return _page("413", 413, max_kib=limit // 1024)
    return _page("400", 400)


def permission_denied(request, exception=None):
    if _is_api(request):
        return errors.json_error_response("Permission denied", errors.PERMISSION_DENIED, 403)
    return _page("403", 403)


def not_found(request, exception=None):
    if _is_api(request):
        return errors.api_not_found(request, exception)
    return _page("404", 404)


def server_error(request):
    if _is_api(request):
        return errors.api_server_error(request)
    return _page("500", 500, request_id=current_request_id())


def csrf_failure(request, reason=""):
    if _is_api(request):
        return errors.api_csrf_failure(request, reason)
    from django.views.csrf import csrf_failure as default_csrf_failure

    return default_csrf_failure(request, reason)
