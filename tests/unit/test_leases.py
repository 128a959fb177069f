"""How replicas divide cohorts through leases: one row per situation."""

from datetime import UTC, datetime, timedelta

from service.domain.leases import Lease, Moves, divide, fair_share, free, held_by, margin, renew_every

NOW = datetime(2027, 3, 1, 9, tzinfo=UTC)
LATER = NOW + timedelta(seconds=20)
EARLIER = NOW - timedelta(seconds=1)


def lease(cohort: str, owner: str | None, expires_at: datetime = LATER, *, done: bool = False, token: int = 1) -> Lease:
    return Lease(cohort=cohort, owner=owner, token=token, expires_at=expires_at, done=done)


def test_a_lease_that_ran_out_is_free_and_no_longer_held():
    stale = lease("spring", "a", EARLIER)
    assert free(stale, NOW) and not held_by(stale, "a", NOW)
    assert not free(lease("spring", "a"), NOW) and held_by(lease("spring", "a"), "a", NOW)
    assert free(lease("spring", None, EARLIER), NOW)
    assert not free(lease("spring", None, EARLIER, done=True), NOW), "a finished rehearsal is nobody's work"


def test_the_first_replica_takes_its_share_and_leaves_the_rest():
    leases = [lease(name, None, EARLIER) for name in "abcdef"]
    assert divide(leases, "r1", replicas=1, now=NOW) == Moves(claim=6, release=())
    assert divide(leases, "r1", replicas=3, now=NOW) == Moves(claim=2, release=())


def test_a_replica_with_more_than_its_share_gives_back_the_last_by_name():
    leases = [lease(name, "r1") for name in "abcdef"]
    assert divide(leases, "r1", replicas=2, now=NOW) == Moves(claim=0, release=("d", "e", "f"))
    assert divide(leases, "r2", replicas=2, now=NOW) == Moves(claim=0, release=()), "nothing free until r1 gives some back"


def test_a_dead_replicas_cohorts_are_taken_once_its_leases_run_out():
    leases = [lease("a", "r1"), lease("b", "r1"), lease("c", "dead", EARLIER), lease("d", "dead", EARLIER)]
    assert divide(leases, "r1", replicas=1, now=NOW) == Moves(claim=2, release=())
    assert divide(leases, "r1", replicas=1, now=EARLIER - timedelta(seconds=1)) == Moves(claim=0, release=())


def test_finished_cohorts_do_not_count_in_the_share():
    leases = [lease("a", "r1", done=True), lease("b", "r1", done=True), lease("c", None, EARLIER), lease("d", "r2")]
    assert fair_share(2, 2) == 1
    assert divide(leases, "r1", replicas=2, now=NOW) == Moves(claim=1, release=())


def test_renewals_come_often_enough_that_the_margin_is_always_left():
    for seconds in (3, 30, 300):
        length = timedelta(seconds=seconds)
        # Just before a renewal the lease has length - renew_every left: more than the margin.
        assert length - renew_every(length) > margin(length)
