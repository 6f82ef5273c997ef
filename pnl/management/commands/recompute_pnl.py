"""Recompute stored daily PnL rows from the stored trades (pnl.services.recompute_past_days).

    manage.py recompute_pnl --multiplier-contracts [--dry-run]
    manage.py recompute_pnl --since 2026-11-01 [--until 2026-11-30] [--account 12 ...] [--dry-run]

Each account is recomputed under its exclusion in one transaction, by the daily run's own
code; a changed row leaves a `pnl_day_recomputed` audit row (before and after). Idempotent:
a second run changes nothing. README: "Recomputing past daily PnL".
"""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import BrokerAccount
from pnl import selectors, services
from pnl.models import PnlDaily
from trading_site.core.errors import Busy


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a date (YYYY-MM-DD)") from None


class Command(BaseCommand):
    help = (
        "Recompute stored daily PnL rows (realized, turnover, fills; unrealized where exact) "
        "from the stored trades, as the daily run computes them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", type=_date, help="first trading date (YYYY-MM-DD)")
        parser.add_argument("--until", type=_date, help="last trading date (default: today)")
        parser.add_argument(
            "--account",
            type=int,
            action="append",
            dest="accounts",
            metavar="ID",
            help="only this broker account (repeat for several)",
        )
        parser.add_argument(
            "--multiplier-contracts",
            action="store_true",
            help="only accounts that traded a contract whose multiplier is not 1 (MCX)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="show what would change; write nothing"
        )

    def handle(self, *args, **options) -> None:
        since, until = options["since"], options["until"]
        ids, multiplier_only = options["accounts"], options["multiplier_contracts"]
        if since is None and not multiplier_only and not ids:
            raise CommandError(
                "name the days (--since), the accounts (--account) or use --multiplier-contracts"
            )
        if since and until and since > until:
            raise CommandError(f"--since {since} is after --until {until}")
        accounts = self._accounts(ids, multiplier_only=multiplier_only, since=since, until=until)
        dry_run = options["dry_run"]
        changed = examined = 0
        skipped: list[str] = []
        for account in accounts:
            try:
                days = services.recompute_past_days(
                    account=account, first=since, last=until, dry_run=dry_run
                )
            except (Busy, ValueError) as exc:
                skipped.append(f"account {account.pk}: {exc}")
                self.stderr.write(f"account {account.pk} ({account.account_name}): skipped: {exc}")
                continue
            examined += len(days)
            for day in days:
                if day.changed:
                    changed += 1
                    self.stdout.write(
                        f"account {account.pk} ({account.account_name}) {day.trading_date}: "
                        f"{day.describe()}" + (f" [{day.note}]" if day.note else "")
                    )
                elif day.note:
                    self.stdout.write(
                        f"account {account.pk} ({account.account_name}) {day.trading_date}: "
                        f"unchanged [{day.note}]"
                    )
        summary = f"{changed} of {examined} stored day(s) in {len(accounts)} account(s) " + (
            "would change (dry run: nothing written)" if dry_run else "changed"
        )
        self.stdout.write(self.style.SUCCESS(summary))
        if skipped:
            raise CommandError("not recomputed, run again: " + "; ".join(skipped))

    def _accounts(
        self, ids: list[int] | None, *, multiplier_only: bool, since, until
    ) -> list[BrokerAccount]:
        if multiplier_only:
            found = selectors.accounts_trading_multiplier_contracts()
        else:
            days = PnlDaily.objects.all()
            if since:
                days = days.filter(trading_date__gte=since)
            if until:
                days = days.filter(trading_date__lte=until)
            found = BrokerAccount.objects.filter(pk__in=days.values("account_id")).order_by("pk")
        if ids:
            unknown = sorted(
                set(ids)
                - set(BrokerAccount.objects.filter(pk__in=ids).values_list("pk", flat=True))
            )
            if unknown:
                raise CommandError(f"no broker account with id {', '.join(map(str, unknown))}")
            found = found.filter(pk__in=ids)
        return list(found.select_related("user"))
