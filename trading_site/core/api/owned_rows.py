"""One of the caller's rows over the API, answered in an envelope ({"strategy": {...}}): GET
it, DELETE it and (OwnedRowChangeView) PATCH it; and (OwnedRowsView) list them and create
one. The app says how its row is found (its selector: another user's row is a 404), changed
and removed (by the request's user, for the audit trail); the operations' schema follows
from the same attributes."""

from __future__ import annotations

from typing import Any, ClassVar

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView


# No docstrings on these views or their HTTP methods: the schema describes an operation by the
# docstring its view (or method) inherits.
class OwnedRowView(APIView):
    # The URL's keyword naming the row, the envelope's key and the row's serializer.
    url_kwarg: ClassVar[str]
    envelope: ClassVar[str]
    serializer_class: ClassVar[type[serializers.Serializer]]
    # The documented answer: {envelope: serializer_class()}, as an inline serializer.
    answer_schema: ClassVar[serializers.Serializer]
    # A soft delete answers the row it kept (else 204); its description in the schema.
    delete_answers_row: ClassVar[bool] = False
    delete_description: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if hasattr(cls, "answer_schema"):
            extend_schema_view(**cls.operations())(cls)

    @classmethod
    def operations(cls) -> dict[str, Any]:
        # A soft delete answers 200 with the row: spectacular documents any DELETE given a
        # bare serializer as 204 without a body, so the status is named.
        deleted = {200: cls.answer_schema} if cls.delete_answers_row else {204: None}
        delete = extend_schema(
            request=None, responses=deleted, description=cls.delete_description or None
        )
        return {"get": extend_schema(responses=cls.answer_schema), "delete": delete}

    def find(self, request, row_id: int) -> Any:  # pragma: no cover - every view overrides it
        raise NotImplementedError

    def remove(self, request, row: Any) -> Any | None:  # pragma: no cover - overridden
        """Delete the row (None: answered 204) or keep it changed (answered)."""
        raise NotImplementedError

    def row(self, request) -> Any:
        return self.find(request, self.kwargs[self.url_kwarg])

    def answer(self, row: Any) -> Response:
        return Response({self.envelope: self.serializer_class(row).data})

    def get(self, request, **kwargs):
        return self.answer(self.row(request))

    def delete(self, request, **kwargs):
        kept = self.remove(request, self.row(request))
        return Response(status=status.HTTP_204_NO_CONTENT) if kept is None else self.answer(kept)


class OwnedRowChangeView(OwnedRowView):
    # The body of a change: `changes_serializer_class` (fields to set) when given, else
    # `serializer_class` over the row.
    changes_serializer_class: ClassVar[type[serializers.Serializer] | None] = None

    @classmethod
    def operations(cls) -> dict[str, Any]:
        body = cls.changes_serializer_class or cls.serializer_class
        patch = extend_schema(request=body, responses=cls.answer_schema)
        return {**super().operations(), "patch": patch}

    def update(self, request, row: Any, changes: dict[str, Any]) -> Any:  # pragma: no cover
        raise NotImplementedError

    def change(self, request, *, partial: bool) -> Response:
        row = self.row(request)
        if self.changes_serializer_class is not None:
            body = self.changes_serializer_class(data=request.data)
        else:
            body = self.serializer_class(row, data=request.data, partial=partial)
        body.is_valid(raise_exception=True)
        return self.answer(self.update(request, row, body.validated_data))

    def patch(self, request, **kwargs):
        return self.change(request, partial=True)


# The caller's rows (GET: {list_envelope: [...]}) and a new one (POST: answered 201 as
# {envelope: {...}}). The app says how its rows are listed (its selector) and one is created
# (its service, for the request's user); the schema names the two answers.
class OwnedRowsView(APIView):
    list_envelope: ClassVar[str]
    envelope: ClassVar[str]
    serializer_class: ClassVar[type[serializers.Serializer]]
    # The body of a create: `create_serializer_class` when given, else `serializer_class`.
    create_serializer_class: ClassVar[type[serializers.Serializer] | None] = None
    # The documented answers, as inline serializers, and the list's operation id if its own.
    list_schema: ClassVar[serializers.Serializer]
    created_schema: ClassVar[serializers.Serializer]
    list_operation_id: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if hasattr(cls, "list_schema"):
            body = cls.create_serializer_class or cls.serializer_class
            extend_schema_view(
                get=extend_schema(operation_id=cls.list_operation_id, responses=cls.list_schema),
                post=extend_schema(request=body, responses={201: cls.created_schema}),
            )(cls)

    def rows(self, request) -> Any:  # pragma: no cover - every view overrides it
        raise NotImplementedError

    def create(self, request, fields: dict[str, Any]) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def get(self, request):
        rows = self.serializer_class(self.rows(request), many=True)
        return Response({self.list_envelope: rows.data})

    def post(self, request):
        body = (self.create_serializer_class or self.serializer_class)(data=request.data)
        body.is_valid(raise_exception=True)
        row = self.create(request, body.validated_data)
        return Response(
            {self.envelope: self.serializer_class(row).data}, status=status.HTTP_201_CREATED
        )
