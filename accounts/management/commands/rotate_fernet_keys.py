"""Re-encrypt every stored secret with the newest key in FERNET_KEYS.

Rotation: put the new key first (FERNET_KEYS=new,old), restart every process, run this
command, then drop the old key. Rows are re-read and re-written under a row lock, a batch
per transaction, so a concurrent writer is never overwritten with an older value.
"""

from __future__ import annotations

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.crypto import DecryptionError, EncryptedJSONField, EncryptedTextField

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


def encrypted_fields() -> list[tuple[type, str]]:
    """Every (model, field) stored encrypted, in every app: broker credentials and access
    tokens, two-factor secrets, alert-webhook secrets, and whatever is added later."""
    return [
        (model, field.name)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, EncryptedTextField | EncryptedJSONField)
    ]


class Command(BaseCommand):
    help = "Re-encrypt every encrypted column (credentials, tokens, secrets) with the newest key."

    def handle(self, *args, **options):
        if not settings.FERNET_KEYS:
            raise CommandError("FERNET_KEYS is empty")
        unreadable = {}
        for model, field in encrypted_fields():
            _, bad = _rotate(model, field, stdout=self.stdout)
            if bad:
                unreadable[f"{model.__name__}.{field}"] = bad
        if unreadable:
            raise CommandError(
                "Some rows cannot be decrypted with any key in FERNET_KEYS and were left as they "
                f"are (ids): {unreadable}"
            )
        self.stdout.write(self.style.SUCCESS("All secrets now use the newest key."))
