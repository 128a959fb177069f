"""An edit of the pairings as a change set: pure, case by case."""

from dataclasses import replace

from service.domain.changes import change_set, identify, settle
from service.domain.model import ChangeLimits
from tests.builders import cohort, pair, person

MAYA, ZOE, NOAH, INES = person("Maya"), person("Zoe"), person("Noah"), person("Ines")
ANN, BEN = person("Ann"), person("Ben")


def test_the_same_people_keep_their_key_and_new_people_start_a_generation():
    known = {"maya-zoe": pair(MAYA, ZOE, "maya-zoe")}
    same = identify([pair(MAYA, ZOE, "maya-zoe")], known)
    assert [p.id for p in same] == ["maya-zoe"]
    repaired = identify([pair(MAYA, INES, "maya-zoe")], known)
    assert [p.id for p in repaired] == ["maya-zoe.2"]
    again = identify([pair(MAYA, NOAH, "maya-zoe")], {**known, "maya-zoe.2": pair(MAYA, INES, "maya-zoe.2")})
    assert [p.id for p in again] == ["maya-zoe.3"]
    assert [p.id for p in identify([pair(ANN, BEN, "ann-ben")], known)] == ["ann-ben"]  # a new pair


def test_what_an_edit_changes():
    known = {"maya-zoe": pair(MAYA, ZOE, "maya-zoe"), "ann-ben": pair(ANN, BEN, "ann-ben")}
    live = {"maya-zoe", "ann-ben"}
    edited = identify([pair(MAYA, INES, "maya-zoe"), pair(NOAH, ZOE, "noah-zoe")], known)
    change = change_set(edited, known, live)
    assert change.joined == ("noah-zoe",)
    assert change.left == ("ann-ben",)
    assert change.repaired == (("maya-zoe", "maya-zoe.2"),)
    assert change.cancelled == ("ann-ben", "maya-zoe") and change.before == 2


def test_an_edit_that_cancels_too_much_waits_with_the_old_pairs_kept():
    pairs = [pair(person(f"Mentor {i}"), person(f"Mentee {i}"), f"p{i}") for i in range(10)]
    known = {p.id: p for p in pairs}
    live = set(known)
    limits = ChangeLimits(pairs=3, share=0.10)
    few = cohort(*pairs[1:])  # one of ten leaves: 10%, not more
    _, change, held = settle(replace_limits(few, limits), known, live, approved=())
    assert not held and change.left == ("p0",)
    many = cohort(*pairs[:3])  # seven leave
    kept, change, held = settle(replace_limits(many, limits), known, live, approved=())
    assert held and sorted(p.id for p in kept.pairs) == sorted(known)  # nothing is lost while it waits
    _, _, held = settle(replace_limits(many, limits), known, live, approved=change.cancelled)
    assert not held  # approved: applied


def test_an_approval_holds_for_the_cancellations_shown_or_fewer():
    pairs = [pair(person(f"Mentor {i}"), person(f"Mentee {i}"), f"p{i}") for i in range(10)]
    known = {p.id: p for p in pairs}
    limits = ChangeLimits(pairs=3, share=0.10)
    many = replace_limits(cohort(*pairs[:3]), limits)  # seven leave
    _, shown, held = settle(many, known, set(known), approved=())
    assert held and len(shown.cancelled) == 7
    # p3's last session takes place before the approval is applied: six are left to cancel.
    _, change, held = settle(many, known, set(known) - {"p3"}, approved=shown.cancelled)
    assert not held and len(change.cancelled) == 6
    # An edit that also removes p2 was not shown: it waits for its own approval.
    _, change, held = settle(replace_limits(cohort(*pairs[:2]), limits), known, set(known), approved=shown.cancelled)
    assert held and "p2" in change.cancelled


def replace_limits(c, limits):
    return replace(c, hold_above=limits)
