from django.apps import AppConfig


class StationsConfig(AppConfig):
    name = "stations"
    verbose_name = "Sites, stations and transactions"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from stations import bulk

        connection_created.connect(bulk.room_for_prepared_statements,
                                   dispatch_uid="stations.prepared_statements")
