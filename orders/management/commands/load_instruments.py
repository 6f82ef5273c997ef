"""manage.py load_instruments FILE: load an XTS instrument master (bad lines reported)."""

from django.core.management.base import BaseCommand, CommandError

from orders.market.instruments import BUNDLED_MASTER, load_instrument_file


class Command(BaseCommand):
    help = "Load an XTS instrument master file ('|'-separated); --bundled loads the sample."

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="path to the master file")
        parser.add_argument(
            "--bundled", action="store_true", help=f"load the bundled {BUNDLED_MASTER.name}"
        )

    def handle(self, *args, **options):
        path = BUNDLED_MASTER if options["bundled"] else options["file"]
        if not path:
            raise CommandError("give a FILE or --bundled")
        try:
            summary = load_instrument_file(path)
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        for line_number, message in summary.errors:
            self.stderr.write(f"line {line_number}: {message}")
        self.stdout.write(summary.describe())
