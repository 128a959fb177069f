"""Signed participant links: bound to what they were made for, refused when altered or late."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from service.domain.links import BadLink, LinkClaim, LinkProblem, LinkPurpose, sign, verify

SECRET = b"k" * 32
NOW = datetime(2027, 3, 1, 9, tzinfo=UTC)
CLAIM = LinkClaim(
    purpose=LinkPurpose.SESSION, person="zoë@example.org", pair_id="maya-zoe", session=1, revision=2, expires=NOW + timedelta(days=3)
)


def test_a_link_carries_its_claim_back():
    assert verify(sign(CLAIM, SECRET), SECRET, purpose=LinkPurpose.SESSION, now=NOW) == CLAIM


def test_a_link_works_until_it_expires():
    token = sign(CLAIM, SECRET)
    verify(token, SECRET, purpose=LinkPurpose.SESSION, now=CLAIM.expires - timedelta(seconds=1))
    with pytest.raises(BadLink) as refused:
        verify(token, SECRET, purpose=LinkPurpose.SESSION, now=CLAIM.expires)
    assert refused.value.problem is LinkProblem.EXPIRED


def test_a_link_works_for_its_own_purpose_only():
    with pytest.raises(BadLink) as refused:
        verify(sign(CLAIM, SECRET), SECRET, purpose=LinkPurpose.GOALS, now=NOW)
    assert refused.value.problem is LinkProblem.WRONG_PURPOSE


@pytest.mark.parametrize(
    "alter",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature changed
        lambda t: t[:10] + ("x" if t[10] != "x" else "y") + t[11:],  # payload changed
        lambda t: t.split(".")[0],  # signature dropped
        lambda t: "",
        lambda t: "..",
        lambda t: t + "%%",
    ],
)
def test_an_altered_link_is_refused(alter):
    with pytest.raises(BadLink) as refused:
        verify(alter(sign(CLAIM, SECRET)), SECRET, purpose=LinkPurpose.SESSION, now=NOW)
    assert refused.value.problem is LinkProblem.TAMPERED


def test_a_link_for_another_pair_cannot_be_forged_from_a_real_one():
    """Swapping the payload of a real link for another pair's keeps the old signature: refused."""
    mine = sign(CLAIM, SECRET)
    theirs = sign(replace(CLAIM, pair_id="other-pair"), b"not our secret" * 3)
    forged = theirs.split(".")[0] + "." + mine.split(".")[1]
    with pytest.raises(BadLink):
        verify(forged, SECRET, purpose=LinkPurpose.SESSION, now=NOW)


def test_a_link_signed_with_another_secret_is_refused():
    with pytest.raises(BadLink):
        verify(sign(CLAIM, b"another secret"), SECRET, purpose=LinkPurpose.SESSION, now=NOW)
