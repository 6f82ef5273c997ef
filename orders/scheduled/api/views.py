"""CRUD for scheduled orders (SPEC 4): thin views over orders.scheduled.services."""

from __future__ import annotations

from drf_spectacular.utils import inline_serializer

from orders.scheduled import selectors
from orders.scheduled import services as scheduling
from orders.scheduled.api.serializers import ScheduledOrderSerializer
from orders.services.audit import user_actor
from trading_site.core.api.owned_rows import OwnedRowChangeView, OwnedRowsView

_ONE = inline_serializer("ScheduledOrderDetail", {"scheduled_order": ScheduledOrderSerializer()})


class ScheduledOrderListView(OwnedRowsView):
    rate_limit_group = "default"
    list_envelope = "scheduled_orders"
    envelope = "scheduled_order"
    serializer_class = ScheduledOrderSerializer
    list_schema = inline_serializer(
        "ScheduledOrderList", {"scheduled_orders": ScheduledOrderSerializer(many=True)}
    )
    created_schema = _ONE

    def rows(self, request):
        return selectors.scheduled_orders_with_recent_runs(user=request.user)

    def create(self, request, fields):
        return scheduling.create_scheduled_order(
            user=request.user, actor=user_actor(request.user), **fields
        )


class ScheduledOrderDetailView(OwnedRowChangeView):
    rate_limit_group = "default"
    url_kwarg = "schedule_id"
    envelope = "scheduled_order"
    serializer_class = ScheduledOrderSerializer
    answer_schema = _ONE

    def find(self, request, row_id):
        return selectors.scheduled_order_for(user=request.user, schedule_id=row_id)

    def update(self, request, row, changes):
        return scheduling.update_scheduled_order(
            schedule=row, actor=user_actor(request.user), **changes
        )

    def remove(self, request, row):
        scheduling.delete_scheduled_order(schedule=row, actor=user_actor(request.user))
