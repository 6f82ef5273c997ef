"""Rows copied into the cache and rebuilt from it (sessions and API keys): every concrete
field but the ones a caller keeps out, the password hash above all."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import models

_M = TypeVar("_M", bound=models.Model)

# Never copied into the cache: the password hash stays in the database only.
USER_FIELDS_NOT_CACHED = frozenset({"password"})


def row_fields(instance: models.Model, *, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {
        f.attname: getattr(instance, f.attname)
        for f in type(instance)._meta.concrete_fields
        if f.attname not in skip
    }


def from_cached_fields(model: type[_M], fields: dict[str, Any]) -> _M:
    """Rebuild a row; fields absent from the cache (the password) load lazily if touched,
    and `save()` writes only the loaded fields, so it cannot blank them."""
    names = [f.attname for f in model._meta.concrete_fields if f.attname in fields]
    return model.from_db("default", names, [fields[name] for name in names])
