"""The token bucket: headers on every authenticated response, 429, refill, shared state."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from rest_framework.test import APIClient

from tests.factories import api_client_for, make_user
from trading_site.core.api.ratelimit import (
    PROCESS_BUCKETS_MAX_KEYS,
    LocalBuckets,
    TokenBucket,
    group_buckets,
    group_rate,
    parse_rate,
    process_buckets,
    take_group_token,
    take_process_token,
    take_token,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def tight_reads(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "read": "3/2", "default": "50/1"}


def test_authenticated_responses_carry_the_rate_limit_headers(tight_reads):
    client = api_client_for(make_user())
    response = client.get("/api/accounts")
    assert response.status_code == 200
    assert response["X-RateLimit-Limit"] == "3"
    assert response["X-RateLimit-Remaining"] == "2"
    assert int(response["X-RateLimit-Reset"]) >= 1


def test_remaining_counts_down_and_the_bucket_then_answers_429(tight_reads):
    client = api_client_for(make_user())
    remaining = [client.get("/api/accounts")["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    response = client.get("/api/accounts")
    assert response.status_code == 429
    assert response.json()["code"] == "RATE_LIMITED"
    assert response["Retry-After"] == "1"
    assert response["X-RateLimit-Remaining"] == "0"
    assert response["X-RateLimit-Limit"] == "3"


def test_bucket_refills_after_waiting(tight_reads):
    client = api_client_for(make_user())
    for _ in range(3):
        client.get("/api/accounts")
    assert client.get("/api/accounts").status_code == 429
    time.sleep(0.6)  # 2 tokens per second: one is back
    assert client.get("/api/accounts").status_code == 200


def test_each_user_has_an_own_bucket(tight_reads):
    first, second = api_client_for(make_user()), api_client_for(make_user())
    for _ in range(3):
        first.get("/api/accounts")
    assert first.get("/api/accounts").status_code == 429
    assert second.get("/api/accounts").status_code == 200


def test_writes_use_the_default_group_not_the_read_bucket(tight_reads):
    client = api_client_for(make_user())
    for _ in range(3):
        client.get("/api/accounts")
    response = client.post("/api/strategies", {"name": "s"}, format="json")
    assert response.status_code == 201
    assert response["X-RateLimit-Limit"] == "50"


def test_unauthenticated_responses_have_no_rate_limit_headers():
    anonymous = APIClient().get("/api/accounts")
    assert anonymous.status_code == 401
    assert "X-RateLimit-Limit" not in anonymous


def test_rate_limit_enabled_false_switches_it_off(settings, tight_reads):
    settings.RATE_LIMIT_ENABLED = False
    client = api_client_for(make_user())
    assert all(client.get("/api/accounts").status_code == 200 for _ in range(5))


def test_take_token_is_atomic_under_concurrency():
    key = "test:concurrent"

    def take(_):
        return take_token(key, capacity=10, refill_per_second=0).allowed

    with ThreadPoolExecutor(max_workers=8) as pool:
        allowed = list(pool.map(take, range(40)))
    assert allowed.count(True) == 10


def test_take_token_reports_retry_after_and_reset():
    for _ in range(2):
        take_token("test:report", capacity=2, refill_per_second=0.5)
    refused = take_token("test:report", capacity=2, refill_per_second=0.5)
    assert refused.allowed is False
    assert refused.remaining == 0
    assert refused.limit == 2
    assert 1.5 < refused.retry_after <= 2.0
    assert 3.5 < refused.reset_seconds <= 4.0


def test_embedded_bucket_path_limits_the_same_way(settings):
    settings.EMBEDDED = True
    results = [take_token("test:embedded", capacity=2, refill_per_second=0) for _ in range(3)]
    assert [r.allowed for r in results] == [True, True, False]
    assert [r.remaining for r in results] == [1, 0, 0]


class _Clock:
    """A clock the test moves by hand: a bucket's refill without sleeping."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_connections_bucket_allows_its_burst_then_its_rate():
    clock = _Clock()
    bucket = TokenBucket(capacity=3, refill_per_second=2, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.4  # 0.8 of a token back: not yet one
    assert not bucket.take()
    clock.now += 0.1
    assert bucket.take()
    clock.now += 60  # a long quiet spell refills up to the burst, never past it
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_a_connections_bucket_refuses_a_nonsense_size():
    with pytest.raises(ValueError):
        TokenBucket(capacity=0, refill_per_second=1)
    with pytest.raises(ValueError):
        TokenBucket(capacity=1, refill_per_second=-1)


def test_parse_rate_rejects_nonsense():
    assert parse_rate("60/1") == (60, 1.0)
    with pytest.raises(ValueError):
        parse_rate("sixty")
    with pytest.raises(ValueError):
        parse_rate("0/1")


def test_api_keeps_answering_when_redis_is_down(settings):
    """Auth falls back to the database and the limiter to this process's buckets (both
    logged): the answer and its headers are as usual."""
    user = make_user()
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }
    client = api_client_for(user)
    response = client.get("/api/accounts")
    assert response.status_code == 200
    assert response["X-RateLimit-Limit"] == str(group_rate("read")[0])


def test_local_buckets_keep_at_most_max_keys_and_a_busy_key_stays_limited():
    clock = _Clock()
    buckets = LocalBuckets(max_keys=100, clock=clock)
    taken = [buckets.take("guessed", capacity=3, refill_per_second=0) for _ in range(4)]
    assert [t.allowed for t in taken] == [True, True, True, False]
    for n in range(5000):  # an attacker making up a new key for every request
        buckets.take(f"rotated:{n}", capacity=3, refill_per_second=0)
        if n % 50 == 0:  # the key still in use is the most recently used: never forgotten
            assert not buckets.take("guessed", capacity=3, refill_per_second=0).allowed
    assert len(buckets) == 100


def test_the_process_buckets_stay_bounded_under_many_distinct_keys():
    for n in range(PROCESS_BUCKETS_MAX_KEYS + 2000):
        take_process_token(f"test:distinct:{n}", capacity=5, refill_per_second=1)
    assert len(process_buckets) == PROCESS_BUCKETS_MAX_KEYS


def test_keys_made_up_for_the_groups_never_evict_a_broker_calls_bucket(settings):
    """While Redis is down, API and login callers fill the groups' store; the broker calls'
    fallback (`take_process_token`) keeps its own buckets, so an emptied one stays empty."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }
    assert take_process_token("test:broker", capacity=1, refill_per_second=0).allowed
    for n in range(PROCESS_BUCKETS_MAX_KEYS + 10):
        assert take_group_token("default", f"user:made-up-{n}:default").allowed
    assert len(group_buckets) == PROCESS_BUCKETS_MAX_KEYS
    assert not take_process_token("test:broker", capacity=1, refill_per_second=0).allowed


def test_local_buckets_are_atomic_under_concurrency():
    buckets = LocalBuckets(max_keys=10)

    def take(_):
        return buckets.take("shared", capacity=10, refill_per_second=0).allowed

    with ThreadPoolExecutor(max_workers=8) as pool:
        allowed = list(pool.map(take, range(40)))
    assert allowed.count(True) == 10


def test_local_buckets_answer_like_the_shared_bucket():
    clock = _Clock()
    buckets = LocalBuckets(max_keys=10, clock=clock)
    for _ in range(2):
        buckets.take("report", capacity=2, refill_per_second=0.5)
    refused = buckets.take("report", capacity=2, refill_per_second=0.5)
    assert (refused.allowed, refused.remaining, refused.limit) == (False, 0, 2)
    assert refused.retry_after == 2.0 and refused.reset_seconds == 4.0
    clock.now += 2
    assert buckets.take("report", capacity=2, refill_per_second=0.5).allowed
