from rest_framework import serializers

from trading_site.core.api.fields import FlatFieldsCopied


class _Item(serializers.Serializer):
    name = serializers.CharField()


class _Shape(FlatFieldsCopied):
    price = serializers.DecimalField(max_digits=6, decimal_places=2)
    tags = serializers.ListField(child=serializers.CharField())
    item = _Item()


def test_flat_fields_are_copied_without_being_built_again(monkeypatch):
    built = []
    original = serializers.Field.__init__

    def counting_init(self, *args, **kwargs):
        built.append(type(self).__name__)
        original(self, *args, **kwargs)

    monkeypatch.setattr(serializers.Field, "__init__", counting_init)
    fields = _Shape(data={}).fields
    assert "DecimalField" not in built
    # A field holding a field of its own is built again, its child bound to the new one.
    assert "ListField" in built
    assert fields["tags"].child.parent is fields["tags"]
    assert fields["item"] is not _Shape._declared_fields["item"]


def test_each_serializer_binds_its_own_copies():
    first, second = _Shape(data={"price": "1.5"}), _Shape(data={"price": "x"})
    assert first.fields["price"] is not second.fields["price"]
    assert first.fields["price"].parent is first
    assert second.fields["price"].parent is second
    declared = _Shape._declared_fields["price"]
    assert declared.field_name is None and declared.label is None
    assert first.is_valid() is False and "price" not in first.errors
    assert second.is_valid() is False and "price" in second.errors
