"""Web pages of scheduled orders (listed on the settings page): create, edit, delete."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.http import AuthenticatedHttpRequest
from orders.scheduled.forms import ScheduledOrderForm
from orders.scheduled.models import ScheduledOrder
from orders.scheduled.services import (
    create_scheduled_order,
    delete_scheduled_order,
    update_scheduled_order,
)
from orders.services.audit import user_actor
from orders.views import ticket_context
from orders.web_forms import ticket_initial_from_template
from trading_site.core.errors import DomainError
from trading_site.core.form_keys import claim_form_key, posted_form_key


@login_required
@require_http_methods(["GET", "POST"])
def scheduled_edit(request: AuthenticatedHttpRequest, pk: int | None = None) -> HttpResponse:
    schedule = get_object_or_404(ScheduledOrder, pk=pk, user=request.user) if pk else None
    initial: dict = {}
    target_rows: list = []
    if schedule is not None:
        initial, target_rows = ticket_initial_from_template(schedule.kind, schedule.template)
        initial.update(
            {
                "name": schedule.name,
                "account_id": schedule.account_id,
                "time_of_day": schedule.time_of_day,
                "weekdays": schedule.weekdays,
                "enabled": schedule.enabled,
            }
        )
    form = ScheduledOrderForm(
        request.POST or None, user=request.user, initial=initial, target_rows=target_rows
    )
    if request.method == "POST":
        if not claim_form_key(user_id=request.user.pk, key=posted_form_key(request.POST)):
            # The same rendered form posted twice (a double click, a resubmitted reload).
            messages.info(request, "This schedule form was already saved; nothing was added.")
            return redirect("settings")
        if form.is_valid():
            d = form.cleaned_data
            fields = {
                "name": d["name"],
                "account_id": d["account_id"],
                "kind": d["kind"],
                "time_of_day": d["time_of_day"],
                "weekdays": sorted(d["weekdays"]),
                "enabled": d["enabled"],
                "template": form.to_template(),
            }
            # The services validate the template as the API does (the one validator).
            actor = user_actor(request.user)
            try:
                if schedule is None:
                    schedule = create_scheduled_order(user=request.user, actor=actor, **fields)
                else:
                    schedule = update_scheduled_order(schedule=schedule, actor=actor, **fields)
            except DomainError as exc:
                form.add_rule_errors(exc.details, fallback=exc.message)
            else:
                messages.success(request, f"Scheduled order “{schedule.name}” saved.")
                return redirect("settings")
        else:
            form.collect_rule_errors()
    context = ticket_context(form, user=request.user)
    context["schedule"] = schedule
    return render(
        request,
        "orders/scheduled_form.html",
        context,
        status=400 if request.method == "POST" else 200,
    )


@login_required
@require_POST
def scheduled_delete(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    schedule = get_object_or_404(ScheduledOrder, pk=pk, user=request.user)
    name = schedule.name
    delete_scheduled_order(schedule=schedule, actor=user_actor(request.user))
    messages.success(request, f"Scheduled order “{name}” deleted.")
    return redirect("settings")
