"""Forms of the order pages: single and bracket orders, modify, filters, and batch CSV.

The field names are the API's (SPEC 4), so the `details` of H4's `InvalidInput` land next to
the field they name without a mapping. The rules themselves live in orders.validation.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django import forms

from accounts.models import BrokerAccount, Strategy
from orders.models import Order, OrderType, ProductType, Side
from orders.validation import BracketOrderRequest, SingleOrderRequest, TargetSpec
from trading_site.safe_json import DepthLimitedJSONField

PRICE_FIELD = {"max_digits": 15, "decimal_places": 4, "required": False, "min_value": Decimal("0")}

MAX_BATCH_ROWS = 500
MAX_CSV_BYTES = 512 * 1024
BATCH_COLUMNS = (
    "external_id",
    "trading_symbol",
    "order_side",
    "no_of_lots",
    "entry_price",
    "entry_stop_price",
    "sl_price",
    "sl_stop_price",
    "targets",
    "strategy_name",
    "product_type",
    "exchange_segment",
)
REQUIRED_COLUMNS = ("trading_symbol", "no_of_lots", "entry_price", "sl_price")


def _account_choices(user) -> list[tuple[int, str]]:
    return [
        (a.pk, f"{a.account_name} ({a.get_broker_display()})")
        for a in BrokerAccount.objects.filter(user=user, is_active=True).order_by("account_name")
    ]


def _strategy_choices(user) -> list[tuple[str, str]]:
    names = Strategy.objects.filter(user=user).order_by("name").values_list("name", flat=True)
    return [("", "— none —"), *((n, n) for n in names)]


class _OrderFormBase(forms.Form):
    account_id = forms.TypedChoiceField(label="Account", coerce=int, choices=())
    exchange_segment = forms.CharField(required=False, widget=forms.HiddenInput)
    order_side = forms.ChoiceField(label="Side", choices=Side.choices, initial=Side.BUY)
    product_type = forms.ChoiceField(
        label="Product", choices=ProductType.choices, initial=ProductType.MIS
    )
    strategy_name = forms.ChoiceField(label="Strategy", required=False, choices=())

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account_id"].choices = _account_choices(user)
        self.fields["strategy_name"].choices = _strategy_choices(user)


class SingleOrderForm(_OrderFormBase):
    symbol = forms.CharField(label="Instrument", max_length=100, required=False)
    exchange_instrument_id = forms.IntegerField(required=False, widget=forms.HiddenInput)
    order_type = forms.ChoiceField(
        label="Order type", choices=OrderType.choices, initial=OrderType.LIMIT
    )
    order_quantity = forms.IntegerField(label="Quantity", min_value=1)
    limit_price = forms.DecimalField(label="Limit price", **PRICE_FIELD)
    stop_price = forms.DecimalField(label="Stop (trigger) price", **PRICE_FIELD)

    field_order = [
        "account_id",
        "symbol",
        "exchange_instrument_id",
        "exchange_segment",
        "order_side",
        "order_type",
        "product_type",
        "order_quantity",
        "limit_price",
        "stop_price",
        "strategy_name",
    ]

    def to_request(self) -> SingleOrderRequest:
        d = self.cleaned_data
        return SingleOrderRequest(
            account_id=d["account_id"],
            order_side=d["order_side"],
            order_type=d["order_type"],
            order_quantity=d["order_quantity"],
            product_type=d["product_type"],
            symbol=d.get("symbol") or "",
            exchange_instrument_id=d.get("exchange_instrument_id"),
            exchange_segment=d.get("exchange_segment") or "",
            limit_price=d.get("limit_price"),
            stop_price=d.get("stop_price"),
            strategy_name=d.get("strategy_name") or "",
        )


class BracketOrderForm(_OrderFormBase):
    trading_symbol = forms.CharField(label="Instrument", max_length=100, required=False)
    exchange_token = forms.IntegerField(required=False, widget=forms.HiddenInput)
    no_of_lots = forms.IntegerField(label="Lots", min_value=1)
    entry_price = forms.DecimalField(label="Entry limit price", **PRICE_FIELD)
    entry_stop_price = forms.DecimalField(
        label="Entry stop (trigger) price",
        help_text="Leave blank for a plain limit entry.",
        **PRICE_FIELD,
    )
    sl_price = forms.DecimalField(label="Stop-loss limit price", **PRICE_FIELD)
    sl_stop_price = forms.DecimalField(label="Stop-loss trigger price", **PRICE_FIELD)
    tp_price = forms.DecimalField(label="Take-profit price", **PRICE_FIELD)

    field_order = [
        "account_id",
        "trading_symbol",
        "exchange_token",
        "exchange_segment",
        "order_side",
        "product_type",
        "no_of_lots",
        "entry_price",
        "entry_stop_price",
        "sl_price",
        "sl_stop_price",
        "tp_price",
        "strategy_name",
    ]

    def to_request(self) -> BracketOrderRequest:
        d = self.cleaned_data
        targets = (
            [TargetSpec(price=d["tp_price"], percent=Decimal("100"))]
            if d.get("tp_price") is not None
            else []
        )
        return BracketOrderRequest(
            account_id=d["account_id"],
            no_of_lots=d["no_of_lots"],
            entry_price=d.get("entry_price"),
            sl_price=d.get("sl_price"),
            order_side=d["order_side"],
            product_type=d["product_type"],
            trading_symbol=d.get("trading_symbol") or "",
            exchange_token=d.get("exchange_token"),
            exchange_segment=d.get("exchange_segment") or "",
            entry_stop_price=d.get("entry_stop_price"),
            sl_stop_price=d.get("sl_stop_price"),
            targets=targets,
            strategy_name=d.get("strategy_name") or "",
            targets_field="tp_price",
        )


class ModifyOrderForm(forms.Form):
    """New price and/or quantity for the order's open legs (PATCH /api/orders/{id})."""

    limit_price = forms.DecimalField(label="New limit price", **PRICE_FIELD)
    stop_price = forms.DecimalField(label="New stop price", **PRICE_FIELD)
    quantity = forms.IntegerField(label="New quantity", required=False, min_value=1)

    def clean(self):
        data = super().clean()
        if not any(data.get(k) is not None for k in ("limit_price", "stop_price", "quantity")):
            raise forms.ValidationError("Give a new price or a new quantity.")
        return data


class OrderFilterForm(forms.Form):
    account = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, choices=())
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Order.Status.choices])
    symbol = forms.CharField(required=False, max_length=100)
    strategy = forms.ChoiceField(required=False, choices=())
    since = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].choices = [
            ("", "All accounts"),
            *(
                (a.pk, a.account_name)
                for a in BrokerAccount.objects.filter(user=user).order_by("account_name")
            ),
        ]
        names = Strategy.objects.filter(user=user).order_by("name").values_list("name", flat=True)
        self.fields["strategy"].choices = [("", "Any strategy"), *((n, n) for n in names)]

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            self.add_error("until", "must be on or after the start date")
        return data


class BatchForm(forms.Form):
    account_id = forms.TypedChoiceField(label="Account", coerce=int, choices=())
    csv_text = forms.CharField(
        label="Paste CSV",
        required=False,
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false"}),
    )
    csv_file = forms.FileField(label="…or upload a CSV file", required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account_id"].choices = _account_choices(user)

    def clean(self):
        data = super().clean()
        upload = data.get("csv_file")
        if upload:
            if upload.size > MAX_CSV_BYTES:
                self.add_error("csv_file", f"the file is larger than {MAX_CSV_BYTES // 1024} KB")
                return data
            try:
                data["csv_text"] = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                self.add_error("csv_file", "the file is not UTF-8 text")
                return data
        if not (data.get("csv_text") or "").strip():
            self.add_error("csv_text", "paste CSV rows or upload a file")
        return data


@dataclass
class BatchRow:
    """One CSV line: what was read, the request built from it, and any problem found."""

    line: int
    values: dict[str, str]
    request: BracketOrderRequest | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)
    # Filled after placement.
    status: str = ""
    order_id: int | None = None
    error: str = ""

    @property
    def external_id(self) -> str:
        return self.values.get("external_id", "") or f"line-{self.line}"

    @property
    def ok(self) -> bool:
        return not self.errors


def _decimal(row: BatchRow, name: str, *, required: bool) -> Decimal | None:
    raw = (row.values.get(name) or "").strip().replace(",", "")
    if not raw:
        if required:
            row.errors.setdefault(name, []).append("is required")
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        row.errors.setdefault(name, []).append(f"{raw!r} is not a number")
        return None
    if not value.is_finite():
        row.errors.setdefault(name, []).append(f"{raw!r} is not a number")
        return None
    return value


def parse_targets(row: BatchRow, raw: str) -> list[TargetSpec]:
    """'2510' (one target, all lots), '2510:50%;2520:50%' (percent) or '2510:1;2520:2' (lots)."""
    targets: list[TargetSpec] = []
    for part in filter(None, (p.strip() for p in raw.replace("|", ";").split(";"))):
        price_text, _, share = part.partition(":")
        try:
            price = Decimal(price_text.strip())
            if not share.strip():
                targets.append(TargetSpec(price=price, percent=Decimal("100")))
            elif share.strip().endswith("%"):
                targets.append(TargetSpec(price=price, percent=Decimal(share.strip()[:-1])))
            else:
                targets.append(TargetSpec(price=price, lots=int(share.strip())))
        except (InvalidOperation, ValueError):
            row.errors.setdefault("targets", []).append(
                f"{part!r}: write price, price:percent% or price:lots"
            )
            return []
    return targets


def parse_batch_csv(text: str, *, account_id: int) -> tuple[list[BatchRow], list[str]]:
    """CSV text -> rows with their requests (or their parse errors), and file-level errors."""
    reader = csv.DictReader(io.StringIO(text.strip()))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if not header:
        return [], ["The CSV is empty."]
    reader.fieldnames = header
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        return [], [
            f"Missing column(s): {', '.join(missing)}. The header row names the columns: "
            f"{', '.join(BATCH_COLUMNS)}."
        ]
    unknown = [c for c in header if c and c not in BATCH_COLUMNS]
    problems = [f"Ignored unknown column(s): {', '.join(unknown)}."] if unknown else []
    rows: list[BatchRow] = []
    for values in reader:
        if len(rows) >= MAX_BATCH_ROWS:
            return rows, [*problems, f"A batch holds at most {MAX_BATCH_ROWS} rows."]
        clean = {k: (v or "").strip() for k, v in values.items() if k in BATCH_COLUMNS}
        if not any(clean.values()):
            continue
        row = BatchRow(line=reader.line_num, values=clean)
        lots_raw = clean.get("no_of_lots", "")
        lots = None
        try:
            lots = int(lots_raw)
        except ValueError:
            row.errors.setdefault("no_of_lots", []).append(f"{lots_raw!r} is not a whole number")
        entry = _decimal(row, "entry_price", required=True)
        entry_stop = _decimal(row, "entry_stop_price", required=False)
        sl = _decimal(row, "sl_price", required=True)
        sl_stop = _decimal(row, "sl_stop_price", required=False)
        targets = parse_targets(row, clean.get("targets", ""))
        if not row.errors:
            row.request = BracketOrderRequest(
                account_id=account_id,
                no_of_lots=lots,
                entry_price=entry,
                sl_price=sl,
                order_side=(clean.get("order_side") or "BUY").upper(),
                product_type=(clean.get("product_type") or "MIS").upper(),
                trading_symbol=clean.get("trading_symbol", ""),
                exchange_segment=clean.get("exchange_segment", ""),
                entry_stop_price=entry_stop,
                sl_stop_price=sl_stop,
                targets=targets,
                strategy_name=clean.get("strategy_name", ""),
                external_id=row.external_id,
            )
        rows.append(row)
    if not rows:
        problems.append("The CSV has a header but no rows.")
    return rows, problems


WEEKDAY_CHOICES = [
    (0, "Mon"),
    (1, "Tue"),
    (2, "Wed"),
    (3, "Thu"),
    (4, "Fri"),
    (5, "Sat"),
    (6, "Sun"),
]


class ScheduledOrderForm(forms.Form):
    """A schedule: when (IST time and weekdays) and what (the API's order fields as JSON)."""

    name = forms.CharField(max_length=100)
    account_id = forms.TypedChoiceField(label="Account", coerce=int, choices=())
    kind = forms.ChoiceField(choices=Order.Kind.choices, initial=Order.Kind.SINGLE)
    time_of_day = forms.TimeField(
        label="Time (IST)", widget=forms.TimeInput(attrs={"type": "time"})
    )
    weekdays = forms.TypedMultipleChoiceField(
        choices=WEEKDAY_CHOICES,
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        initial=[0, 1, 2, 3, 4],
    )
    enabled = forms.BooleanField(required=False, initial=True)
    template = DepthLimitedJSONField(
        label="Order fields (JSON)",
        help_text='The fields of POST /api/orders (single), e.g. {"symbol": "RELIANCE", '
        '"order_side": "BUY", "order_type": "MARKET", "order_quantity": 1}, or of '
        "POST /api/algo-orders (bracket).",
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account_id"].choices = _account_choices(user)

    def clean_template(self):
        value = self.cleaned_data["template"]
        if not isinstance(value, dict) or not value:
            raise forms.ValidationError("must be a JSON object with the order's fields")
        return value
