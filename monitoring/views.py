"""The monitoring page: the user's recent cycles, each step's outcome and duration, errors."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render

from accounts.http import AuthenticatedHttpRequest
from monitoring.models import MonitoringRun

CYCLES_PER_PAGE = 25


@login_required
def monitoring_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    runs = MonitoringRun.objects.filter(user=request.user).order_by("-started_at", "-id")
    only_errors = request.GET.get("errors") == "1"
    if only_errors:
        runs = runs.exclude(status=MonitoringRun.Status.OK)
    page = Paginator(runs, CYCLES_PER_PAGE).get_page(request.GET.get("page"))
    context = {"page": page, "runs": page.object_list, "only_errors": only_errors}
    if request.headers.get("X-Requested-With") == "fetch":
        return render(request, "monitoring/_runs.html", context)
    return render(request, "monitoring/monitoring.html", context)
