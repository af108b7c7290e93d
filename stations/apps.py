from django.apps import AppConfig


class StationsConfig(AppConfig):
    name = "stations"
    verbose_name = "Sites, stations and transactions"

    def ready(self) -> None:
        # Imported once the models are: the receivers of the local lists, the live pages and
        # the background work.
        from django.db.backends.signals import connection_created

        from stations import events, persistence, tasks  # noqa: F401
        from stations.services import local_lists  # noqa: F401

        connection_created.connect(persistence.room_for_prepared_statements,
                                   dispatch_uid="stations.prepared_statements")
