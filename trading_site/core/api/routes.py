"""The API's route spelling, shared by every app's URLconf."""

from collections.abc import Callable
from typing import Any

from django.urls import URLPattern, path


def slash_optional(route: str, view: Callable[..., Any], name: str) -> list[URLPattern]:
    """The SPEC's slash-less path (named), plus the trailing-slash spelling clients often send."""
    return [path(route, view, name=name), path(route + "/", view)]
