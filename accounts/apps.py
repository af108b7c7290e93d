from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Organizations, users and ID tokens"

    def ready(self) -> None:
        # The background work's receivers, once the models are loaded.
        from django.contrib.auth.signals import user_logged_out

        from accounts import people, tasks  # noqa: F401

        user_logged_out.connect(people.logged_out, dispatch_uid="accounts.logged_out")
