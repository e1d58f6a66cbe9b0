"""Chart version ranges pick what Helm (Masterminds/semver v3) picks; cases from its docs."""
import pytest

from apps.engine.source.semver import InvalidVersion, check_range, newest_matching

RELEASES = ["0.9.0", "1.0.0", "1.1.0", "1.2.0-rc.1", "1.2.3", "1.10.0", "2.0.0", "2.1.0-beta"]


@pytest.mark.parametrize("constraint, picked", [
    ("1.2.*", "1.2.3"),
    ("1.2.x", "1.2.3"),
    ("1.2", "1.2.3"),  # a missing part is a wildcard
    (">=1.0.0 <2.0.0", "1.10.0"),  # numeric order, not text order
    (">=1, <2", "1.10.0"),
    ("~1.1", "1.1.0"),
    ("~1.2.0", "1.2.3"),
    ("^1.0", "1.10.0"),
    ("^0.9", "0.9.0"),
    ("1.0 - 1.1", "1.1.0"),  # a hyphen range includes every 1.1.x
    ("*", "2.0.0"),  # pre-releases only when the range names one
    (">1.10", "2.0.0"),
    ("<=1.1", "1.1.0"),
    ("!=2.0.0", "1.10.0"),
    ("1.0.0 || 2.x", "2.0.0"),
    (">=1.2.0-0 <1.3", "1.2.3"),
    (">2.0.0-0", "2.1.0-beta"),
    ("1.2.0-rc.1", "1.2.0-rc.1"),
    ("1.0.0", "1.0.0"),
    ("3.*", None),
    ("<0.9.0", None),
])
def test_range_picks_the_newest_release_it_allows(constraint, picked):
    assert newest_matching(constraint, RELEASES) == picked


def test_a_tag_that_is_no_version_is_picked_only_by_its_exact_name():
    assert newest_matching("latest", ["latest", "1.0.0"]) == "latest"
    assert newest_matching("*", ["latest", "1.0.0"]) == "1.0.0"


@pytest.mark.parametrize("text", ["main", ">=a", "1.2.3.4", "HEAD~1", "v1 && v2"])
def test_what_is_no_range_is_refused(text):
    with pytest.raises(InvalidVersion, match="improper constraint"):
        check_range(text)
