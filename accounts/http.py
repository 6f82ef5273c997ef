"""The request a view behind `login_required` receives, for type checking only."""

from __future__ import annotations

from django.http import HttpRequest

from accounts.models import User


class AuthenticatedHttpRequest(HttpRequest):
    """Django passes an ordinary HttpRequest; after `login_required` its user is a signed-in
    `User`, never AnonymousUser, and this annotation says so to the type checker."""

    user: User
