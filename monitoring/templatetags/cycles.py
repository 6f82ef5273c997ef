"""Template tags of monitoring cycles: the header's last-cycle indicator, errors as lines."""

from __future__ import annotations

from django import template

from monitoring.models import MonitoringRun

register = template.Library()


@register.filter(name="error_text")
def error_text(error):
    """A monitoring error as one line: errors are strings, older rows may hold dicts."""
    if isinstance(error, dict):
        prefix = f"Step {error['step']}: " if error.get("step") else ""
        return prefix + str(error.get("message") or error.get("error") or error)
    return str(error)


@register.inclusion_tag("monitoring/_last_cycle.html")
def last_cycle_indicator(user):
    """The header's 'last cycle' indicator, rendered with the user's latest MonitoringRun."""
    run = None
    if user is not None and user.is_authenticated:
        run = (
            MonitoringRun.objects.filter(user=user)
            .only("status", "started_at", "finished_at", "duration_ms", "cycle_key")
            .order_by("-started_at", "-id")
            .first()
        )
    return {"run": run}
