from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError

from csms.gateway import coverage
from csms.gateway.table import TABLE


class Command(BaseCommand):
    help = f"Write the OCPP coverage page ({coverage.PAGE}) from the message table."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--check", action="store_true",
                            help="only say whether the page is up to date (exit 1 if not)")

    def handle(self, *args, check: bool, **options) -> None:
        if check:
            with open(coverage.PAGE, encoding="utf-8") as page:
                if page.read() != coverage.markdown(TABLE):
                    raise CommandError(f"{coverage.PAGE} is out of date: run "
                                       "`python manage.py ocpp_coverage`")
            return
        coverage.write(TABLE)
        self.stdout.write(f"wrote {coverage.PAGE}")
