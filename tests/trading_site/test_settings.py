import pytest
from django.conf import settings


def test_the_suite_runs_against_mariadb_and_redis():
    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.mysql"
    assert settings.EMBEDDED is False
    assert settings.CACHES["default"]["BACKEND"] == "django_redis.cache.RedisCache"


@pytest.mark.django_db
def test_healthz_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_only_settings_read_the_environment():
    """Configuration has one home: every other module reads django.conf.settings (the entry
    points only name the settings module)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    allowed = {"trading_site/settings.py", "trading_site/envconfig.py"}
    reads = re.compile(r"os\.environ(?!\.setdefault\(\"DJANGO_SETTINGS_MODULE\")|os\.getenv")
    offenders = []
    for package in ("trading_site", "accounts", "orders", "pnl", "monitoring"):
        for path in (root / package).rglob("*.py"):
            relative = path.relative_to(root).as_posix()
            if relative not in allowed and reads.search(path.read_text()):
                offenders.append(relative)
    assert offenders == []
