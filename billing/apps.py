from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Tariffs and invoices"

    def ready(self) -> None:
        from billing import services
        from stations import signals

        signals.transaction_changed.connect(services.on_transaction_changed,
                                            dispatch_uid="billing.price")
        signals.transactions_updated.connect(services.on_transactions_updated,
                                             dispatch_uid="billing.price_running")
        signals.connector_status_changed.connect(services.on_connector_status,
                                                 dispatch_uid="billing.idle_end")
