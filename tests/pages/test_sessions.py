"""Sessions live in Redis and the database: a sign-out ends them everywhere, a Redis that does
not answer does not sign anyone out."""
import pytest
import redis

from apps.core import sessions

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, django_user_model):
    django_user_model.objects.create_user("sam", password="correct horse battery")
    response = client.post("/login/", {"username": "sam", "password": "correct horse battery"})
    assert response.status_code == 302
    return client


def test_a_session_is_read_from_redis_and_a_sign_out_ends_it(signed_in, client, settings):
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    copies = sessions.RedisCopies()
    cache_key = sessions.SessionStore.cache_key_prefix + key
    assert copies.get(cache_key)["_auth_user_id"]
    assert client.get("/applications/").status_code == 200
    assert client.post("/logout/").status_code in (200, 302)
    assert copies.get(cache_key) is None
    client.cookies[settings.SESSION_COOKIE_NAME] = key  # the old cookie, replayed
    response = client.get("/applications/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_pages_open_while_redis_does_not_answer(signed_in, monkeypatch):
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, socket_timeout=0.5)
    monkeypatch.setattr(sessions, "redis_connection", lambda *a, **k: dead)
    response = signed_in.get("/applications/")
    assert response.status_code == 200
    assert b"sam" in response.content  # still signed in: read from the database
