"""Admin building blocks shared by the apps: rows the system writes, shown read-only."""

from __future__ import annotations

from django.contrib import admin


class _NoHandWrites:
    """Nothing added or changed here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class _NoWrites(_NoHandWrites):
    """Nothing added, changed or deleted here."""

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdmin(_NoWrites, admin.ModelAdmin):
    """Visible, searchable, never edited or deleted here."""


class DeletableReadOnlyAdmin(_NoHandWrites, admin.ModelAdmin):
    """Visible, never added or edited by hand; staff may delete rows (old sessions, runs)."""


class ReadOnlyInline(_NoWrites, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True
