"""Settings come from the environment: embedded by default, production-clean when configured."""

import subprocess
import sys

import pytest

from tests.support import ROOT

PRODUCTION = {
    "SECRET_KEY": "k" * 20 + "-production-secret-0123456789-abcdefghijklmnop",
    "DEBUG": "false",
    "ALLOWED_HOSTS": "csms.example.com",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_COOKIES": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "TRUSTED_PROXIES": "127.0.0.1",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/csms",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def settings_value(expression: str, env: dict[str, str]) -> str:
    code = f"from django.conf import settings; print({expression})"
    return manage("shell", "-c", code, env=env).stdout.strip().splitlines()[-1]


def base_env() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}


def test_embedded_defaults_with_nothing_set():
    env = base_env()
    assert settings_value("settings.DATABASES['default']['ENGINE']", env) == (
        "django.db.backends.sqlite3")
    assert settings_value("settings.CHANNEL_LAYERS['default']['BACKEND']", env) == (
        "channels.layers.InMemoryChannelLayer")
    assert settings_value("settings.CELERY_TASK_ALWAYS_EAGER", env) == "True"


def test_urls_switch_to_postgresql_and_redis():
    env = {**base_env(), "DATABASE_URL": PRODUCTION["DATABASE_URL"],
           "REDIS_URL": PRODUCTION["REDIS_URL"], "SECRET_KEY": PRODUCTION["SECRET_KEY"]}
    assert settings_value("settings.DATABASES['default']['ENGINE']", env) == (
        "django.db.backends.postgresql")
    assert settings_value("settings.CHANNEL_LAYERS['default']['BACKEND']", env) == (
        "csms.layers.ResilientRedisChannelLayer")
    assert settings_value("settings.CELERY_BROKER_URL", env) == PRODUCTION["REDIS_URL"]


def test_secret_key_from_a_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-a-file-secret\n")
    env = {**base_env(), "SECRET_KEY_FILE": str(secret)}
    assert settings_value("settings.SECRET_KEY", env) == "from-a-file-secret"


def test_the_production_path_refuses_to_start_without_a_secret_key():
    env = {**base_env(), **PRODUCTION}
    del env["SECRET_KEY"]
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr and "SECRET_KEY_FILE" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_embedded_demo_keeps_a_random_key_of_its_own():
    first = settings_value("settings.SECRET_KEY", base_env())
    assert settings_value("settings.SECRET_KEY", base_env()) == first  # sessions survive
    assert "insecure" not in first and "demo" not in first and len(first) >= 50
    assert (ROOT / ".secret-key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(("debug", "public", "anonymous"), [
    ("false", None, 302), ("true", None, 200), ("false", "true", 200)])
def test_the_api_docs_are_private_in_production_unless_configured(debug, public, anonymous):
    env = {**base_env(), "DEBUG": debug, **({"API_DOCS_PUBLIC": public} if public else {})}
    code = ("from django.test import Client; c = Client(); "
            "print(c.get('/api/docs/').status_code, c.get('/api/schema/').status_code)")
    result = manage("shell", "-c", code, env=env)
    docs, schema = result.stdout.split()[-2:]
    assert int(docs) == anonymous, result.stderr[-2000:]
    assert int(schema) == (200 if anonymous == 200 else 401)  # a client: sign in, or a token


def test_check_deploy_is_clean_with_the_documented_production_environment():
    result = manage("check", "--deploy", "--fail-level", "WARNING",
                    env={**base_env(), **PRODUCTION})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_a_server_process_imports_the_views_before_its_first_request():
    # Imported lazily, they cost the first HTTP request 0.8 s of a loop that holds chargers.
    code = ("import sys, csms.asgi; print(all(m in sys.modules for m in "
            "('csms.urls', 'stations.web.views', 'billing.api.views')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=base_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "True", result.stderr[-2000:]


@pytest.mark.parametrize(("configured", "expected"), [(None, 0.001), ("0.002", 0.002)])
def test_a_server_process_hands_the_gil_over_within_the_configured_interval(configured,
                                                                           expected):
    env = base_env()
    env.pop("GIL_SWITCH_INTERVAL", None)
    if configured is not None:
        env["GIL_SWITCH_INTERVAL"] = configured
    code = "import sys, csms.asgi; print(sys.getswitchinterval())"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert float(result.stdout.strip().splitlines()[-1]) == expected, result.stderr[-2000:]


def test_a_server_process_times_its_garbage_collections_into_its_metrics():
    # A full collection stops every charger's answer at once; /metrics has to show it.
    code = ("import gc, csms.asgi; from prometheus_client import generate_latest; "
            "gc.collect(); gc.collect(0); print(generate_latest().decode())")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=base_env(),
                            capture_output=True, text=True, timeout=120)
    counts = dict(line.rsplit(" ", 1) for line in result.stdout.splitlines()
                  if line.startswith("csms_gc_pause_seconds_count"))
    assert float(counts.get('csms_gc_pause_seconds_count{generation="2"}', 0)) >= 1, result.stderr
    assert float(counts.get('csms_gc_pause_seconds_count{generation="0"}', 0)) >= 1, result.stderr
