from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Organizations, users and ID tokens"

    def ready(self) -> None:
        # The background work's receivers, once the models are loaded.
        from accounts import tasks  # noqa: F401
