"""The admin shows orders with their legs and audit trail, and never deletes the trail."""

from __future__ import annotations

from django.test import Client

from orders.models import OrderEvent
from orders.services import place_single_order
from tests import factories
from tests.factories import single_request


def _staff_client() -> Client:
    return factories.staff_client()


def test_an_order_page_shows_its_legs_and_events(trader, account, instrument):
    order = place_single_order(user=trader, request=single_request(account)).order
    client = _staff_client()
    for url in (
        "/admin/orders/order/",
        f"/admin/orders/order/{order.pk}/change/",
        "/admin/orders/orderleg/",
        "/admin/orders/orderevent/",
        "/admin/orders/brokerorder/",
        "/admin/orders/dailycounter/",
    ):
        assert client.get(url).status_code == 200, url
    page = client.get(f"/admin/orders/order/{order.pk}/change/").content.decode()
    assert order.legs.get().unique_identifier in page
    assert "leg_accepted" in page


def test_the_audit_trail_cannot_be_deleted_from_the_admin(trader, account, instrument):
    place_single_order(user=trader, request=single_request(account))
    event = OrderEvent.objects.first()
    client = _staff_client()
    response = client.post(f"/admin/orders/orderevent/{event.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert OrderEvent.objects.filter(pk=event.pk).exists()
