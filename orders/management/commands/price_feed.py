"""manage.py price_feed --interval 3: the simulated price feed, one step every interval."""

import time

from django.conf import settings
from django.core.management.base import BaseCommand

from orders.market.demo import tick_price_feed


class Command(BaseCommand):
    help = "Move the demo instruments' fair prices (a bounded random walk) until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=settings.PRICE_FEED_INTERVAL_SECONDS)
        parser.add_argument("--count", type=int, default=0, help="stop after N steps (0: never)")

    def handle(self, *args, **options):
        steps = 0
        try:
            while True:
                written = tick_price_feed()
                steps += 1
                self.stdout.write(f"step {steps}: {written} prices written")
                if options["count"] and steps >= options["count"]:
                    return
                time.sleep(max(options["interval"], 0.1))
        except KeyboardInterrupt:
            self.stdout.write("price feed stopped")
