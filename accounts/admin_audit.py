"""An admin whose saves and deletions leave the audit rows the app's services leave, with the
admin as the actor (admin:<id>): staff changing a trader's standing instructions (a
schedule, a strategy, the regenerate permission) are on the trail as the trader would be."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import transaction

from accounts.audit import admin_actor


class AuditedDeleteAdmin(admin.ModelAdmin):
    """Each row deleted (the delete page's, and each of the bulk "delete selected") by the
    app's service (`delete_audited`), which records it; the bulk delete in one transaction,
    as the delete page is, so the rows and their records commit together."""

    def delete_audited(self, obj: Any, *, actor: str) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def delete_model(self, request, obj):
        self.delete_audited(obj, actor=admin_actor(request.user))

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for obj in queryset.order_by("pk"):
                self.delete_audited(obj, actor=admin_actor(request.user))


class AuditedAdmin(AuditedDeleteAdmin):
    """The app says what a row is on the trail (`audited_state`), how a save of it is
    recorded (`record_saved`: `before` None for a new row) and how it is deleted with its
    record (`delete_audited`, its service). The admin's add, change and delete views run in
    one transaction, so a change and its row commit together."""

    def audited_state(self, obj: Any) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def record_saved(self, obj: Any, *, before: dict[str, Any] | None, actor: str) -> None:
        raise NotImplementedError  # pragma: no cover - overridden

    def save_model(self, request, obj, form, change):
        stored = type(obj)._default_manager.filter(pk=obj.pk).first() if change else None
        # Kept on the form, which save_related (after the many-to-many fields) sees too.
        form.audited_before = self.audited_state(stored) if stored is not None else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        actor = admin_actor(request.user)
        self.record_saved(form.instance, before=form.audited_before, actor=actor)
