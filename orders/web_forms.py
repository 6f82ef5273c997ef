"""Forms of the order pages: single and bracket orders, modify, filters, and batch CSV.

The field names are the API's (SPEC 4), so the `details` of a service's `ValidationFailed`
land next to the field they name without a mapping. The rules themselves live in orders.validation.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms

from accounts.models import BrokerAccount, Strategy
from accounts.selectors import active_accounts_by_name, default_account_id, paper_account_ids
from accounts.web_forms import add_service_errors
from orders.domain.identifiers import MAX_EXTERNAL_ID_LENGTH
from orders.models import Order, OrderLeg, OrderType, ProductType, Side
from orders.openalgo.fields import unstorable_text
from orders.validation import (
    BracketOrderRequest,
    SingleOrderRequest,
    TargetSpec,
    bracket_order_errors,
    single_order_errors,
)
from trading_site.core.market_hours import validate_nameable_day

PRICE_FIELD: dict[str, Any] = {
    "max_digits": 15,
    "decimal_places": 4,
    "required": False,
    "min_value": Decimal("0"),
}

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
# The client's own id is at most this long, as the API's external_id (the order keeps it
# whole: a longer one would be cut, and two ids alike in their first 64 characters taken
# for one).


def account_choices(user) -> list[tuple[int, str]]:
    """Every active account, each saying whether it trades paper or real money."""
    return [
        (a.pk, f"{a.account_name} ({a.get_broker_display()}) · {'PAPER' if a.is_paper else 'LIVE'}")
        for a in active_accounts_by_name(user=user)
    ]


def money_select(field: forms.Field, user) -> None:
    """The account select tells static/js/forms.js which accounts are paper (the badge
    beside it follows the choice)."""
    field.widget.attrs["data-paper-accounts"] = ",".join(
        str(pk) for pk in sorted(paper_account_ids(user=user))
    )


def _strategy_choices(user) -> list[tuple[str, str]]:
    names = Strategy.objects.filter(user=user).order_by("name").values_list("name", flat=True)
    return [("", "— none —"), *((n, n) for n in names)]


KIND_SINGLE, KIND_BRACKET = "SINGLE", "BRACKET"
TICKET_KINDS = [
    (KIND_SINGLE, "Single order"),
    (KIND_BRACKET, "Bracket: entry, stop-loss, targets"),
]
ENTRY_TYPES = [(OrderType.LIMIT, "Limit"), (OrderType.STOPLIMIT, "Stop-limit")]
MAX_TARGET_ROWS = 10
# Where the rules' field names differ from the ticket's (a bracket names its instrument as
# /api/algo-orders does).
BRACKET_TO_TICKET = {
    "trading_symbol": "symbol",
    "exchange_token": "exchange_instrument_id",
    "tp_price": "targets",
}


def _strip(value) -> str:
    return (value or "").strip() if isinstance(value, str) else ""


def choice_field(form: forms.BaseForm, name: str) -> forms.ChoiceField:
    """The form's choice field `name`, to set its choices per user."""
    field = form.fields[name]
    assert isinstance(field, forms.ChoiceField)
    return field


class OrderTicketForm(forms.Form):
    """The order ticket of the place-order page and of scheduled orders: one form for a single
    order and a bracket (`kind`); the fields of the other kind are ignored. Field names are
    the API's (SPEC 4), so the rules' errors land beside their field. Targets are rows of
    `target_price` and `target_lots` (posted lists); one target without lots takes them all.

    `collect_rule_errors()` runs the order rules (orders.validation) on the fields that did
    parse, so one submit shows every error."""

    kind = forms.ChoiceField(
        label="Order", choices=TICKET_KINDS, initial=KIND_SINGLE, widget=forms.RadioSelect
    )
    account_id = forms.TypedChoiceField(label="Account", coerce=int, choices=())
    symbol = forms.CharField(label="Instrument", max_length=100, required=False)
    exchange_instrument_id = forms.IntegerField(
        required=False, min_value=1, widget=forms.HiddenInput
    )
    exchange_segment = forms.CharField(required=False, max_length=10, widget=forms.HiddenInput)
    order_side = forms.ChoiceField(
        label="Side", choices=Side.choices, initial=Side.BUY, widget=forms.RadioSelect
    )
    product_type = forms.ChoiceField(
        label="Product", choices=ProductType.choices, initial=ProductType.MIS
    )
    # A single order.
    order_type = forms.ChoiceField(
        label="Order type", choices=OrderType.choices, initial=OrderType.LIMIT, required=False
    )
    order_quantity = forms.IntegerField(label="Quantity", required=False)
    limit_price = forms.DecimalField(label="Limit price", **PRICE_FIELD)
    stop_price = forms.DecimalField(label="Trigger price", **PRICE_FIELD)
    # A bracket.
    no_of_lots = forms.IntegerField(label="Lots", required=False)
    entry_type = forms.ChoiceField(
        label="Entry type", choices=ENTRY_TYPES, initial=OrderType.LIMIT, required=False
    )
    entry_price = forms.DecimalField(label="Entry price", **PRICE_FIELD)
    entry_stop_price = forms.DecimalField(label="Entry trigger", **PRICE_FIELD)
    sl_price = forms.DecimalField(label="Stop-loss price", **PRICE_FIELD)
    sl_stop_price = forms.DecimalField(
        label="Stop-loss trigger",
        help_text="Optional: where the stop-loss wakes up.",
        **PRICE_FIELD,
    )
    # Errors about the target rows are shown here (the rows themselves are posted lists).
    targets = forms.CharField(required=False, widget=forms.HiddenInput)
    strategy_name = forms.ChoiceField(label="Strategy", required=False, choices=())

    SINGLE_FIELDS = ("order_type", "order_quantity", "limit_price", "stop_price")
    BRACKET_FIELDS = (
        "no_of_lots",
        "entry_type",
        "entry_price",
        "entry_stop_price",
        "sl_price",
        "sl_stop_price",
        "targets",
    )

    def __init__(self, data=None, *args, user, target_rows=None, **kwargs):
        if data is not None and hasattr(data, "copy"):
            data = data.copy()
            # Links and older forms say "single" / "bracket".
            data["kind"] = _strip(data.get("kind") or KIND_SINGLE).upper()
        super().__init__(data, *args, **kwargs)
        self.user = user
        choice_field(self, "account_id").choices = account_choices(user)
        money_select(self.fields["account_id"], user)
        if not self.is_bound and not self.initial.get("account_id"):
            # The last-used account, else a paper one: never the alphabet's first.
            self.initial["account_id"] = default_account_id(user=user)
        choice_field(self, "strategy_name").choices = _strategy_choices(user)
        self._initial_targets = target_rows or []
        self.target_specs: list[TargetSpec] = []

    # ---- what the page shows --------------------------------------------------------

    @property
    def current_kind(self) -> str:
        value = self.data.get("kind") if self.is_bound else self.initial.get("kind")
        return KIND_BRACKET if _strip(value).upper() == KIND_BRACKET else KIND_SINGLE

    @property
    def target_rows(self) -> list[tuple[str, str]]:
        """(price, lots) of each target row to show (at least one, empty)."""
        if self.is_bound:
            prices = self.data.getlist("target_price") if hasattr(self.data, "getlist") else []
            lots = self.data.getlist("target_lots") if hasattr(self.data, "getlist") else []
            rows = [
                (_strip(p), _strip(q))
                for p, q in zip(prices, lots + [""] * (len(prices) - len(lots)), strict=False)
            ]
        else:
            rows = [(str(p), str(q)) for p, q in self._initial_targets]
        return rows or [("", "")]

    # ---- parsing ------------------------------------------------------------------

    def clean(self):
        super().clean()
        data = self.cleaned_data
        kind = data.get("kind")
        if kind == KIND_SINGLE:
            if data.get("order_quantity") is None and "order_quantity" not in self.errors:
                self.add_error("order_quantity", "is required")
            if not data.get("order_type") and "order_type" not in self.errors:
                self.add_error("order_type", "is required")
        elif kind == KIND_BRACKET:
            if data.get("no_of_lots") is None and "no_of_lots" not in self.errors:
                self.add_error("no_of_lots", "is required")
            entry_type = data.get("entry_type") or OrderType.LIMIT
            stop = data.get("entry_stop_price")
            if entry_type == OrderType.LIMIT and stop is not None:
                self.add_error(
                    "entry_stop_price", "leave it empty for a limit entry, or choose Stop-limit"
                )
            if (
                entry_type == OrderType.STOPLIMIT
                and stop is None
                and "entry_stop_price" not in self.errors
            ):
                self.add_error("entry_stop_price", "is required for a stop-limit entry")
            self.target_specs = self._parse_targets()
        return data

    def _parse_targets(self) -> list[TargetSpec]:
        rows = [(p, q) for p, q in self.target_rows if p or q]
        if not rows and self.is_bound and _strip(self.data.get("tp_price")):
            rows = [(_strip(self.data.get("tp_price")), "")]  # the one-target form of old
        if len(rows) > MAX_TARGET_ROWS:
            self.add_error("targets", f"at most {MAX_TARGET_ROWS} targets")
            return []
        specs = []
        for number, (price_text, lots_text) in enumerate(rows, start=1):
            try:
                price = Decimal(price_text.replace(",", ""))
                if not price.is_finite():
                    raise InvalidOperation
            except InvalidOperation:
                self.add_error("targets", f"target {number}: {price_text!r} is not a price")
                return []
            if not lots_text:
                if len(rows) > 1:
                    self.add_error(
                        "targets", f"target {number}: give its lots (several targets split them)"
                    )
                    return []
                specs.append(TargetSpec(price=price, percent=Decimal("100")))
                continue
            # isdecimal, not isdigit: "²" is a digit that int() refuses.
            if not lots_text.isdecimal() or int(lots_text) <= 0:
                self.add_error("targets", f"target {number}: lots must be a whole number above 0")
                return []
            specs.append(TargetSpec(price=price, lots=int(lots_text)))
        return specs

    # ---- requests -----------------------------------------------------------------

    def _value(self, name: str):
        return (getattr(self, "cleaned_data", {}) or {}).get(name)

    def to_request(self) -> SingleOrderRequest | BracketOrderRequest:
        """The placement request (fields that failed to parse are None)."""
        value = self._value
        # The ticket's fields both kinds of request take under the same names.
        common: dict[str, Any] = {
            "account_id": value("account_id"),
            "order_side": value("order_side"),
            "product_type": value("product_type"),
            "exchange_segment": value("exchange_segment") or "",
            "strategy_name": value("strategy_name") or "",
        }
        if value("kind") == KIND_BRACKET or self.current_kind == KIND_BRACKET:
            return BracketOrderRequest(
                **common,
                no_of_lots=value("no_of_lots"),
                entry_price=value("entry_price"),
                sl_price=value("sl_price"),
                trading_symbol=value("symbol") or "",
                exchange_token=value("exchange_instrument_id"),
                entry_stop_price=value("entry_stop_price")
                if (value("entry_type") or OrderType.LIMIT) == OrderType.STOPLIMIT
                else None,
                sl_stop_price=value("sl_stop_price"),
                targets=self.target_specs,
                targets_field="targets",
            )
        return SingleOrderRequest(
            **common,
            order_type=value("order_type"),
            order_quantity=value("order_quantity"),
            symbol=value("symbol") or "",
            exchange_instrument_id=value("exchange_instrument_id"),
            limit_price=value("limit_price"),
            stop_price=value("stop_price"),
        )

    def add_rule_errors(self, details: dict | None, *, fallback: str = "") -> None:
        """A service's ValidationFailed details, beside the ticket's fields."""
        add_service_errors(self, details, fallback=fallback, field_map=BRACKET_TO_TICKET)

    def collect_rule_errors(self) -> None:
        """After a failed is_valid(): the order rules on what did parse, added to the fields
        without an error yet (so the trader fixes everything in one go)."""
        request = self.to_request()
        if isinstance(request, BracketOrderRequest):
            errors = bracket_order_errors(user=self.user, request=request).errors
        else:
            errors = single_order_errors(user=self.user, request=request).errors
        for name, messages in errors.items():
            field = BRACKET_TO_TICKET.get(name, name)
            if field not in self.fields or field in self.errors:
                continue
            for message in messages:
                self.add_error(field, message)

    def to_template(self) -> dict:
        """The scheduled-order template (the API's fields) this ticket describes."""
        request = self.to_request()

        def text(value):
            return None if value is None else str(value)

        if isinstance(request, BracketOrderRequest):
            template = {
                "trading_symbol": request.trading_symbol,
                "exchange_token": request.exchange_token,
                "exchange_segment": request.exchange_segment,
                "order_side": request.order_side,
                "product_type": request.product_type,
                "no_of_lots": request.no_of_lots,
                "entry_price": text(request.entry_price),
                "entry_stop_price": text(request.entry_stop_price),
                "sl_price": text(request.sl_price),
                "sl_stop_price": text(request.sl_stop_price),
                "targets": [
                    {"price": str(t.price), "lots": t.lots}
                    if t.lots is not None
                    else {"price": str(t.price), "percent": str(t.percent)}
                    for t in request.targets
                ],
                "strategy_name": request.strategy_name,
            }
        else:
            template = {
                "symbol": request.symbol,
                "exchange_instrument_id": request.exchange_instrument_id,
                "exchange_segment": request.exchange_segment,
                "order_side": request.order_side,
                "order_type": request.order_type,
                "order_quantity": request.order_quantity,
                "product_type": request.product_type,
                "limit_price": text(request.limit_price),
                "stop_price": text(request.stop_price),
                "strategy_name": request.strategy_name,
            }
        return {k: v for k, v in template.items() if v not in (None, "", [])}


def ticket_initial_from_template(kind: str, template: dict) -> tuple[dict, list[tuple]]:
    """A stored scheduled-order template -> the ticket's initial values and target rows."""
    template = template if isinstance(template, dict) else {}
    initial = {"kind": KIND_BRACKET if kind == KIND_BRACKET else KIND_SINGLE}
    rows: list[tuple] = []
    if initial["kind"] == KIND_BRACKET:
        renames = {"trading_symbol": "symbol", "exchange_token": "exchange_instrument_id"}
        for name, value in template.items():
            if name in ("targets", "tp_price"):
                continue
            initial[renames.get(name, name)] = value
        initial["entry_type"] = (
            OrderType.STOPLIMIT
            if template.get("entry_stop_price") not in (None, "")
            else OrderType.LIMIT
        )
        for target in template.get("targets") or []:
            if isinstance(target, dict):
                rows.append((target.get("price", ""), target.get("lots") or ""))
        if not rows and template.get("tp_price") not in (None, ""):
            rows.append((template["tp_price"], ""))
    else:
        initial.update(template)
    return initial, rows


def _shown(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


class ModifyOrderForm(forms.Form):
    """New price and/or quantity for one working leg (PATCH /api/orders/{id}), pre-filled
    with the leg's current values; only the fields its order type has are shown, and only
    what the trader changed is sent."""

    leg_id = forms.IntegerField(required=False, widget=forms.HiddenInput)
    limit_price = forms.DecimalField(label="Limit price", **PRICE_FIELD)
    stop_price = forms.DecimalField(label="Trigger price", **PRICE_FIELD)
    quantity = forms.IntegerField(label="Quantity", required=False, min_value=1)

    def __init__(self, *args, leg, order, **kwargs):
        kwargs.setdefault(
            "initial",
            {
                "leg_id": leg.pk,
                "limit_price": _shown(leg.limit_price),
                "stop_price": _shown(leg.stop_price),
                "quantity": leg.quantity,
            },
        )
        kwargs["auto_id"] = f"leg{leg.pk}_%s"
        super().__init__(*args, **kwargs)
        self.leg = leg
        if leg.order_type not in (OrderType.LIMIT, OrderType.STOPLIMIT):
            del self.fields["limit_price"]
        if leg.order_type not in (OrderType.STOPLIMIT, OrderType.STOPMARKET):
            del self.fields["stop_price"]
        if order.kind == Order.Kind.BRACKET or leg.role != OrderLeg.Role.ENTRY:
            del self.fields["quantity"]  # a bracket's quantities follow its fills

    @property
    def title(self) -> str:
        return f"{self.leg.get_role_display()} leg ({self.leg.get_order_type_display()})"

    def changes(self) -> dict:
        """The values that differ from the leg's, by the names modify_order takes."""
        current = {
            "limit_price": self.leg.limit_price,
            "stop_price": self.leg.stop_price,
            "quantity": self.leg.quantity,
        }
        return {
            name: value
            for name, value in self.cleaned_data.items()
            if name in current and value is not None and value != current[name]
        }


class OrderFilterForm(forms.Form):
    account = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, choices=())
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Order.Status.choices])
    symbol = forms.CharField(required=False, max_length=100)
    strategy = forms.ChoiceField(required=False, choices=())
    since = forms.DateField(
        required=False,
        label="From",
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[validate_nameable_day],
    )
    until = forms.DateField(
        required=False,
        label="To",
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[validate_nameable_day],
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        choice_field(self, "account").choices = [
            ("", "All accounts"),
            *(
                (a.pk, a.account_name)
                for a in BrokerAccount.objects.filter(user=user).order_by("account_name")
            ),
        ]
        names = Strategy.objects.filter(user=user).order_by("name").values_list("name", flat=True)
        choice_field(self, "strategy").choices = [("", "Any strategy"), *((n, n) for n in names)]

    def clean(self):
        super().clean()
        data = self.cleaned_data
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
        choice_field(self, "account_id").choices = account_choices(user)
        money_select(self.fields["account_id"], user)
        if not self.is_bound and not self.initial.get("account_id"):
            self.initial["account_id"] = default_account_id(user=user)

    def clean(self):
        super().clean()
        data = self.cleaned_data
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


def _check_text(row: BatchRow) -> None:
    """A row's text as the API takes it: no NUL (an uploaded file is not a form field, whose
    NUL Django refuses) and an external_id of at most MAX_EXTERNAL_ID_LENGTH characters."""
    for name, value in row.values.items():
        if (unstorable := unstorable_text(value)) is not None:
            row.errors.setdefault(name, []).append(unstorable)
    if len(row.values.get("external_id", "")) > MAX_EXTERNAL_ID_LENGTH:
        row.errors.setdefault("external_id", []).append(
            f"must be at most {MAX_EXTERNAL_ID_LENGTH} characters"
        )


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
        _check_text(row)
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
            assert lots is not None  # an unreadable number is among the errors
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
                # The client's own id only (unique per account and day); a row without one
                # is shown by its line but holds no id.
                external_id=clean.get("external_id", ""),
            )
        rows.append(row)
    if not rows:
        problems.append("The CSV has a header but no rows.")
    return rows, problems
