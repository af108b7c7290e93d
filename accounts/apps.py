from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Organizations, users and ID tokens"

    def ready(self) -> None:
        # Receivers of the stations app's signals: local list outcomes, audited commands.
        from accounts import local_lists, people  # noqa: F401
