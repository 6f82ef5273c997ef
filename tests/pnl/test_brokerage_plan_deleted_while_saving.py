"""A brokerage plan an admin deletes while its save runs (the web page's or the admin's):
the save finds no row to change under its lock, saves nothing and says so (the page shows
its form again with the reason, a 409; the admin goes back to the list with an error
message). It once failed with a 500: the row's locked read raised DoesNotExist.

The delete lands at that moment on purpose: on the saving request's connection, just
before the save locks the row (after it saw the row there), another connection deletes it
through the admin's service and commits."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client

from orders.models import OrderEvent
from pnl import services
from pnl.models import BrokeragePlanSetting
from tests.concurrency import start_thread
from tests.factories import PERCENT_PLAN_FORM, make_account, make_user, staff_client

pytestmark = pytest.mark.django_db(transaction=True)

DELETED_MEANWHILE = "The brokerage plan was deleted while this save ran"


def _saved_plan(account) -> BrokeragePlanSetting:
    services.save_brokerage_plan(
        account=account,
        actor="test",
        mode="FLAT",
        flat_per_order=10,
        percent=0,
        cap_per_order=None,
        delivery_free=False,
    )
    return BrokeragePlanSetting.objects.get(account=account)


def _deleted_before_its_lock(row: BrokeragePlanSetting) -> Callable:
    """An execute wrapper: before the first locking read of the plans, `row` deleted by
    another admin on another connection, committed."""
    deleted: list[bool] = []
    errors: list[BaseException] = []

    def delete() -> None:
        services.delete_brokerage_plan(plan=row, actor="admin:other")

    def wrapper(execute, sql, params, many, context):
        if "FOR UPDATE" in sql and "pnl_brokerage_plans" in sql and not deleted:
            deleted.append(True)
            start_thread(errors, delete).join()
            assert not errors, errors
        return execute(sql, params, many, context)

    return wrapper


def _plan_event_actors(account) -> list[str]:
    rows = OrderEvent.objects.filter(account=account, kind="brokerage_plan_changed")
    return list(rows.order_by("id").values_list("actor", flat=True))


def test_the_web_page_says_the_plan_went_and_saves_nothing():
    user = make_user()
    account = make_account(user=user)
    row = _saved_plan(account)
    web = Client()
    web.force_login(user)

    with connection.execute_wrapper(_deleted_before_its_lock(row)):
        answer = web.post(f"/pnl/brokerage/{account.pk}/", PERCENT_PLAN_FORM)

    assert answer.status_code == 409
    assert DELETED_MEANWHILE in answer.content.decode()
    assert not BrokeragePlanSetting.objects.filter(account=account).exists()
    assert _plan_event_actors(account) == ["test", "admin:other"]  # saved, deleted: no more


def test_the_admin_says_the_plan_went_and_saves_nothing():
    account = make_account()
    row = _saved_plan(account)
    admin = staff_client(make_user(is_staff=True, is_superuser=True))

    with connection.execute_wrapper(_deleted_before_its_lock(row)):
        answer = admin.post(
            f"/admin/pnl/brokerageplansetting/{row.pk}/change/",
            {**PERCENT_PLAN_FORM, "_save": "Save"},
        )

    assert answer.status_code == 302
    assert answer["Location"] == "/admin/pnl/brokerageplansetting/"
    (message,) = get_messages(answer.wsgi_request)
    assert message.level_tag == "error" and DELETED_MEANWHILE in message.message
    assert not BrokeragePlanSetting.objects.filter(account=account).exists()
    assert _plan_event_actors(account) == ["test", "admin:other"]
