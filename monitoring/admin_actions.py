"""Admin actions other apps' admins carry (wired in MonitoringConfig.ready)."""

from __future__ import annotations

import uuid

from django.contrib import admin, messages
from django.contrib.admin.exceptions import NotRegistered
from django.utils import timezone

from monitoring.tasks import run_monitoring_cycle


@admin.action(description="Run the selected users' monitoring cycle now")
def run_cycle_now(modeladmin, request, queryset):
    """Queue one extra cycle per user, under its own cycle key so it runs even when this
    slot's beat cycle already did (the cycle lock still keeps it from overlapping one)."""

    stamp = timezone.now().strftime("%Y%m%dT%H%M%S")
    count = 0
    for user_id in queryset.values_list("pk", flat=True):
        run_monitoring_cycle.delay(user_id, f"admin-{stamp}-{uuid.uuid4().hex[:6]}", "admin")
        count += 1
    modeladmin.message_user(
        request, f"Queued a monitoring cycle for {count} user(s).", messages.SUCCESS
    )


def attach_to_user_admin() -> None:
    """Add the action to whatever ModelAdmin the User model is registered with."""
    from django.contrib.auth import get_user_model

    try:
        user_admin = admin.site.get_model_admin(get_user_model())
    except NotRegistered:
        return
    actions = list(user_admin.actions or [])
    if run_cycle_now not in actions:
        user_admin.actions = [*actions, run_cycle_now]
