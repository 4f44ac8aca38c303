"""Connector bugs found by the chaos run (``python -m bench --chaos RATE``).

Each test is the smallest reproduction of one finding, against the simulator
(BENCHMARKS.md, "What the chaos run found"). An open finding is marked
``xfail(strict=True)``: it fails on the code it was found on and turns the
suite red (XPASS) once the bug is fixed, so that the mark is removed with the
fix; a fixed finding stays as a regression test.
"""

import pytest
import responses

from openeducat_moodle.moodle import MoodleClient, MoodleTransientError
from openeducat_moodle.sync.push import PushSettings, PushSync
from openeducat_moodle.sync.rows import (
    Batch,
    Department,
    Enrolment,
    Person,
    Program,
    Snapshot,
    Subject,
)
from openeducat_moodle.sync.store import MemoryStore
from tests.fake_moodle import FakeMoodle

BASE = "https://moodle.test"


@pytest.fixture
def fm():
    sim = FakeMoodle(token="simtoken")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        sim.install(rsps, base_url=BASE)
        yield sim


def _institution(students=3, subjects=1):
    """One program with ``subjects`` subjects (one course each) and one batch
    (one group per course), ``students`` students in that batch."""
    people = range(1, students + 1)
    subject_ids = tuple(range(1, subjects + 1))
    return Snapshot.build(
        departments=[Department(1, "Science", "SCI")],
        programs=[Program(1, "Physics", "PHY", 1, subject_ids)],
        subjects=[Subject(i, f"Subject {i}", f"S{i}", 1) for i in subject_ids],
        batches=[Batch(1, "Physics 2026", "PHY26", 1)],
        students=[
            Person(i, "student", f"First{i}", f"Last{i}", f"s{i}@school.test")
            for i in people
        ],
        enrolments=[Enrolment(i, i, 1, 1, subject_ids) for i in people],
    )


def test_group_membership_is_not_lost_when_an_enrolment_batch_is_cut(fm):
    """Chaos finding 1, fixed in bea4059: when enrol_manual_enrol_users
    failed part way (a transient error on a later chunk), the enrolments of
    the chunks that went through were stored as synced, with the hash of a
    payload that holds their group, but their memberships were never sent;
    the next push found them unchanged and never added them to the group."""
    snapshot = _institution(students=3)
    client = MoodleClient(BASE, "simtoken", batch_size=1)  # one call per student
    store = MemoryStore()
    # the first enrolment goes through, the second call meets a 503
    fm.inject("http503", function="enrol_manual_enrol_users", after=1)
    with pytest.raises(MoodleTransientError):
        PushSync(client, store, PushSettings()).run(snapshot)

    PushSync(client, store, PushSettings()).run(snapshot)  # the retry

    (group,) = fm.groups.values()
    students = {fm.find_user(idnumber=f"oec_student_{i}")["id"] for i in (1, 2, 3)}
    assert fm.group_members(group["id"]) == students


def test_a_refused_group_membership_is_tried_again(fm):
    snapshot = _institution(students=3)
    client = MoodleClient(BASE, "simtoken")
    store = MemoryStore()

    def second_student(member):
        return member["userid"] == fm.find_user(idnumber="oec_student_2")["id"]

    # Moodle's database refuses one membership, then recovers
    rule = fm.reject_records("core_group_add_group_members", second_student)
    first = PushSync(client, store, PushSettings()).run(snapshot)
    fm.rejections.remove(rule)
    PushSync(client, store, PushSettings()).run(snapshot)

    (group,) = fm.groups.values()
    students = {fm.find_user(idnumber=f"oec_student_{i}")["id"] for i in (1, 2, 3)}
    assert first.total("failed") == 1  # reported
    assert fm.group_members(group["id"]) == students  # and done on the retry


def test_the_groups_phase_keeps_its_progress_when_look_ups_fail(fm):
    snapshot = _institution(students=1, subjects=10)
    client = MoodleClient(BASE, "simtoken")
    store = MemoryStore()
    # the courses are created, then Moodle fails before the groups
    fm.inject("http503", function="core_group_create_groups")
    with pytest.raises(MoodleTransientError):
        PushSync(client, store, PushSettings()).run(snapshot)

    for _run in range(10):
        # Moodle fails one call in five: here the 5th course look-up
        fm.faults.clear()
        fm.inject("http503", function="core_group_get_course_groups", after=4)
        try:
            PushSync(client, store, PushSettings()).run(snapshot)
            break
        except MoodleTransientError:
            continue

    assert len(fm.groups) == 10
