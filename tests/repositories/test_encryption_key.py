"""Stored credentials under GITOPS_UI_ENCRYPTION_KEY, as a process that has read them before
sees them: decrypted values are remembered per process (apps/core/crypto.py), and that must
never hide a changed key or a changed secret."""
import pytest

from apps.core.crypto import SecretUnreadable
from apps.repositories.models import Repository

pytestmark = pytest.mark.django_db


def stored(repo):
    return Repository.objects.get(pk=repo.pk).password


def test_a_changed_key_makes_a_secret_read_before_unreadable(settings):
    settings.ENCRYPTION_KEY = "the first key"
    repo = Repository.objects.create(url="https://git.example.com/a.git", username="deploy",
                                     password="s3cret")
    assert stored(repo) == "s3cret"

    settings.ENCRYPTION_KEY = "another key"
    with pytest.raises(SecretUnreadable, match="GITOPS_UI_ENCRYPTION_KEY"):
        stored(repo)

    settings.ENCRYPTION_KEY = "the first key"
    assert stored(repo) == "s3cret"


def test_a_secret_entered_again_is_read_anew(settings):
    settings.ENCRYPTION_KEY = "the first key"
    repo = Repository.objects.create(url="https://git.example.com/b.git", username="deploy",
                                     password="old")
    assert stored(repo) == "old"
    repo.password = "new"
    repo.save()
    assert stored(repo) == "new"
    # The same value saved again is a new token (a fresh IV), still read right.
    repo.password = "old"
    repo.save()
    assert stored(repo) == "old"
