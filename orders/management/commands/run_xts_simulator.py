"""manage.py run_xts_simulator --port 8701: the paper exchange over the XTS wire format."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from orders.brokers.xts.simulator import Faults, XtsSimulator, parse_users

# Fault knobs taken as they are: each a --flag named after its Faults field, with its default.
PLAIN_FAULT_KNOBS = ("latency_ms", "error_rate", "timeout_rate", "timeout_seconds", "reject_rate")


class Command(BaseCommand):
    help = "Serve the XTS simulator (uvicorn). Fault knobs here and at POST /_sim/faults."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8701)
        parser.add_argument(
            "--user",
            action="append",
            default=[],
            help="appKey:secretKey:userID:investor|dealer[:code1;code2] (repeatable; default "
            "settings.XTS_SIMULATOR_USERS)",
        )
        defaults = Faults()
        for knob in PLAIN_FAULT_KNOBS:
            default = getattr(defaults, knob)
            parser.add_argument("--" + knob.replace("_", "-"), type=type(default), default=default)
        parser.add_argument(
            "--token-ttl", type=float, default=float(settings.XTS_SIMULATOR_TOKEN_TTL_SECONDS)
        )
        parser.add_argument(
            "--no-thousands-separators",
            action="store_true",
            default=not settings.XTS_SIMULATOR_THOUSANDS_SEPARATORS,
            help='amounts as "2853.50" instead of "2,853.50"',
        )
        parser.add_argument(
            "--rate-limit",
            type=int,
            default=int(settings.XTS_SIMULATOR_RATE_LIMIT_PER_SECOND),
            help="answer e-apirl-0004 past this many requests per second per login (0: off)",
        )

    def handle(self, *args, **options):
        import uvicorn

        try:
            users = parse_users(",".join(options["user"]) or settings.XTS_SIMULATOR_USERS)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        faults = Faults(
            **{knob: options[knob] for knob in PLAIN_FAULT_KNOBS},
            token_ttl_seconds=options["token_ttl"],
            thousands_separators=not options["no_thousands_separators"],
            rate_limit_per_second=options["rate_limit"],
        )
        app = XtsSimulator(users=users, faults=faults)
        self.stdout.write(
            f"XTS simulator on http://{options['host']}:{options['port']} "
            f"(logins: {', '.join(users)}); faults at POST /_sim/faults, counters at "
            "GET /_sim/stats"
        )
        uvicorn.run(app, host=options["host"], port=options["port"], log_level="info")
