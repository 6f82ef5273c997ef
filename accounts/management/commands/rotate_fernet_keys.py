"""Re-encrypt every stored secret with the newest key in FERNET_KEYS.

Rotation: put the new key first (FERNET_KEYS=new,old), restart every process, run this
command, then drop the old key. Rows are re-read and re-written under a row lock, a batch
per transaction, so a concurrent writer is never overwritten with an older value.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.crypto import DecryptionError
from accounts.models import BrokerAccount, BrokerSession

BATCH_SIZE = 200


def _rotate(model, field: str, *, stdout) -> tuple[int, list[int]]:
    rotated, unreadable = 0, []
    ids = list(model.objects.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), BATCH_SIZE):
        with transaction.atomic():
            for pk in ids[start : start + BATCH_SIZE]:
                try:
                    row = model.objects.select_for_update().filter(pk=pk).first()
                except DecryptionError:
                    unreadable.append(pk)
                    continue
                if row is None:
                    continue
                # update() runs the field's get_prep_value: encrypts with the newest key.
                model.objects.filter(pk=pk).update(**{field: getattr(row, field)})
                rotated += 1
    stdout.write(f"{model.__name__}.{field}: re-encrypted {rotated} row(s)")
    return rotated, unreadable


class Command(BaseCommand):
    help = "Re-encrypt broker credentials and access tokens with the newest FERNET_KEYS key."

    def handle(self, *args, **options):
        if not settings.FERNET_KEYS:
            raise CommandError("FERNET_KEYS is empty")
        _, bad_accounts = _rotate(BrokerAccount, "credentials", stdout=self.stdout)
        _, bad_sessions = _rotate(BrokerSession, "access_token", stdout=self.stdout)
        if bad_accounts or bad_sessions:
            raise CommandError(
                "Some rows cannot be decrypted with any key in FERNET_KEYS and were left as they "
                f"are: BrokerAccount ids {bad_accounts}, BrokerSession ids {bad_sessions}"
            )
        self.stdout.write(self.style.SUCCESS("All secrets now use the newest key."))
