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
