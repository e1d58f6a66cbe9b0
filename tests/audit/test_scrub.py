"""What an audit entry may hold: values of secret-looking keys never, at any depth."""
from apps.audit.services import scrub


def test_secret_looking_keys_keep_only_the_fact_of_a_change():
    details = {"changed": {"source": {"from": {}, "to": {"helm": {"values": {
        "db": {"password": "hunter2", "host": "db"}, "apiKey": "k-123",
        "ssh_private_key": "-----BEGIN", "Authorization": "Bearer x"}}}}},
        "username": "robot", "items": [{"token": "t-1"}, "plain"]}
    assert scrub(details) == {"changed": {"source": {"from": {}, "to": {"helm": {"values": {
        "db": {"password": "(changed)", "host": "db"}, "apiKey": "(changed)",
        "ssh_private_key": "(changed)", "Authorization": "(changed)"}}}}},
        "username": "robot", "items": [{"token": "(changed)"}, "plain"]}
