"""manage.py seed_demo: the demo user, paper account, instruments and prices (idempotent)."""

from django.core.management.base import BaseCommand

from orders.market.demo import seed_demo_data


class Command(BaseCommand):
    help = "Create the demo user, its paper account, the bundled instruments and fair prices."

    def handle(self, *args, **options):
        info = seed_demo_data()
        self.stdout.write(
            f"demo login: {info.username} / {info.password} "
            f"(paper account {info.account_id}, {info.instrument_count} instruments)"
        )
