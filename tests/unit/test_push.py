"""The push sync core against the Moodle simulator: what Moodle ends up holding."""

import dataclasses
import datetime
import math

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
NOW = datetime.datetime(2026, 9, 1, 8, 0)


def institution():
    return Snapshot.build(
        departments=[
            Department(1, "Science"),
            Department(2, "Physics", parent_id=1),
            Department(3, "Quantum", parent_id=2),
            Department(4, "Arts"),
            Department(5, "Loop A", parent_id=6),
            Department(6, "Loop B", parent_id=5),
            Department(7, "Orphan", parent_id=99),
        ],
        programs=[
            Program(10, "BSc Physics", "BSCPHY", 2, (100, 101, 102)),
            Program(11, "MSc Quantum", "MSCQ", 3, (100, 103)),
            Program(12, "BA Arts", "BAART", 4, (100, 104)),
        ],
        subjects=[
            Subject(100, "Mathematics", "MATH"),
            Subject(101, "Mechanics", "MECH"),
            Subject(102, "Optics", "OPT"),
            Subject(103, "Field Theory", "QFT"),
            Subject(104, "History", "HIST"),
        ],
        batches=[
            Batch(20, "Physics 2026", "PHY26", 10),
            Batch(21, "Arts 2026", "ART26", 12),
        ],
        students=[
            Person(30, "student", "Ann", "Lee", "ann@uni.test"),
            Person(31, "student", "Bob", "Ng", "bob@uni.test"),
            Person(32, "student", "Cat", "Oz", None),
            Person(33, "student", "Dan", "Po", "dan@uni.test"),
        ],
        faculty=[
            Person(40, "faculty", "Eve", "Qi", "eve@uni.test", subject_ids=(100, 101))
        ],
        enrolments=[
            Enrolment(50, 30, 10, 20, (100, 101)),
            Enrolment(51, 31, 10, 20, ()),
            Enrolment(52, 32, 12, 21, ()),
            Enrolment(53, 33, 12, 21, ()),
        ],
    )


@pytest.fixture
def fm():
    fake = FakeMoodle(token="simtoken")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.install(rsps, base_url=BASE)
        yield fake


@pytest.fixture
def store():
    return MemoryStore()


def push(fm, store, snapshot, batch_size=100, **kw):
    client = MoodleClient(BASE, "simtoken", batch_size=batch_size)
    sync = PushSync(client, store, PushSettings(**kw), now=NOW)
    return sync.run(snapshot)


def category(fm, idnumber):
    return fm.find_category(idnumber=idnumber)


def moodle_state(fm):
    """What Moodle holds, by idnumber, independent of Moodle ids."""
    cats = {c["id"]: c for c in fm.categories.values()}
    courses = {c["id"]: c for c in fm.courses.values() if c["id"] != 1}
    users = {u["id"]: u for u in fm.users.values() if u.get("idnumber")}
    state = {
        "categories": {
            c["idnumber"]: cats[c["parent"]]["idnumber"] if c["parent"] else None
            for c in cats.values()
            if c.get("idnumber")
        },
        "courses": {
            c["idnumber"]: (c["shortname"], cats[c["categoryid"]]["idnumber"])
            for c in courses.values()
        },
        "users": {u["idnumber"]: u["username"] for u in users.values()},
        "enrolments": set(),
        "groups": {},
    }
    for course in courses.values():
        for user in users.values():
            for role in fm.enrolled_roles(course["id"], user["id"]):
                state["enrolments"].add((user["idnumber"], course["idnumber"], role))
    for group in fm.groups.values():
        course = courses[group["courseid"]]
        members = sorted(users[u]["idnumber"] for u in fm.group_members(group["id"]))
        state["groups"][(group["idnumber"], course["idnumber"])] = members
    return state


EXPECTED_ENROLMENTS = {
    ("oec_student_30", "oec_subj_100_course_10", 5),
    ("oec_student_30", "oec_subj_101_course_10", 5),
    ("oec_student_31", "oec_subj_100_course_10", 5),
    ("oec_student_31", "oec_subj_101_course_10", 5),
    ("oec_student_31", "oec_subj_102_course_10", 5),
    ("oec_student_33", "oec_subj_100_course_12", 5),
    ("oec_student_33", "oec_subj_104_course_12", 5),
    ("oec_faculty_40", "oec_subj_100_course_10", 3),
    ("oec_faculty_40", "oec_subj_100_course_11", 3),
    ("oec_faculty_40", "oec_subj_100_course_12", 3),
    ("oec_faculty_40", "oec_subj_101_course_10", 3),
}


def test_full_push_produces_exactly_the_expected_moodle(fm, store):
    result = push(fm, store, institution())
    state = moodle_state(fm)
    assert state["categories"] == {
        "oec_dept_1": None,
        "oec_dept_2": "oec_dept_1",
        "oec_dept_3": "oec_dept_2",
        "oec_dept_4": None,
        "oec_course_10": "oec_dept_2",
        "oec_course_11": "oec_dept_3",
        "oec_course_12": "oec_dept_4",
    }
    assert state["courses"] == {
        "oec_subj_100_course_10": ("MATH_BSCPHY", "oec_course_10"),
        "oec_subj_101_course_10": ("MECH_BSCPHY", "oec_course_10"),
        "oec_subj_102_course_10": ("OPT_BSCPHY", "oec_course_10"),
        "oec_subj_100_course_11": ("MATH_MSCQ", "oec_course_11"),
        "oec_subj_103_course_11": ("QFT_MSCQ", "oec_course_11"),
        "oec_subj_100_course_12": ("MATH_BAART", "oec_course_12"),
        "oec_subj_104_course_12": ("HIST_BAART", "oec_course_12"),
    }
    assert state["users"] == {
        "oec_student_30": "ann@uni.test",
        "oec_student_31": "bob@uni.test",
        "oec_student_33": "dan@uni.test",
        "oec_faculty_40": "eve@uni.test",
    }
    assert state["enrolments"] == EXPECTED_ENROLMENTS
    assert state["groups"] == {
        ("oec_batch_20", "oec_subj_100_course_10"): [
            "oec_student_30",
            "oec_student_31",
        ],
        ("oec_batch_20", "oec_subj_101_course_10"): [
            "oec_student_30",
            "oec_student_31",
        ],
        ("oec_batch_20", "oec_subj_102_course_10"): ["oec_student_31"],
        ("oec_batch_21", "oec_subj_100_course_12"): ["oec_student_33"],
        ("oec_batch_21", "oec_subj_104_course_12"): ["oec_student_33"],
    }
    # New accounts get a password generated by Moodle.
    ann = fm.find_user(idnumber="oec_student_30")
    assert ann["auth"] == "manual"
    # What could not be sent is reported on its record, and nothing looped.
    blocked = {
        r["key"]: r["reason"]
        for p in result.phases.values()
        for r in p.records
        if r["action"] == "blocked"
    }
    assert "cycle" in blocked["oec_dept_5"] and "cycle" in blocked["oec_dept_6"]
    assert "99" in blocked["oec_dept_7"]
    assert "email" in blocked["oec_student_32"]
    assert store.get("user", "oec_student_32").state == "blocked"
    assert "email" in store.get("user", "oec_student_32").last_error
    # The mapping table holds every object with its Moodle id and idnumber.
    course = store.get("course", "oec_subj_100_course_12")
    assert course.moodle_id == fm.find_course(idnumber="oec_subj_100_course_12")["id"]
    assert course.state == "synced" and len(course.sync_hash) == 64
    assert store.get("enrolment", "oec_student_31@oec_subj_102_course_10").res_id == 51


def test_second_push_makes_no_write_call(fm, store):
    push(fm, store, institution())
    fm.reset_calls()
    result = push(fm, store, institution())
    assert fm.write_call_count() == 0
    assert sum(fm.call_counts.values()) == 0
    assert result.total("unchanged") == 7 + 7 + 4 + 5 + 11


def test_writes_are_batched_close_to_the_minimum(fm, store):
    snapshot = institution()
    push(fm, store, snapshot, batch_size=2)
    counts = fm.call_counts
    assert counts["core_course_create_courses"] <= math.ceil(7 / 2) + 1
    assert counts["core_user_create_users"] == math.ceil(4 / 2)
    assert counts["enrol_manual_enrol_users"] <= math.ceil(11 / 2) + 1
    assert counts["core_group_create_groups"] == math.ceil(5 / 2)
    # Groups of freshly created courses are not looked up.
    assert counts["core_group_get_course_groups"] == 0


def test_renamed_subject_updates_its_courses(fm, store):
    snapshot = institution()
    push(fm, store, snapshot)
    fm.reset_calls()
    snapshot.subjects[100] = dataclasses.replace(
        snapshot.subjects[100], name="Calculus", code="CALC"
    )
    push(fm, store, snapshot)
    names = {
        c["idnumber"]: (c["shortname"], c["fullname"])
        for c in fm.courses.values()
        if c.get("idnumber", "").startswith("oec_subj_100_")
    }
    assert names == {
        "oec_subj_100_course_10": ("CALC_BSCPHY", "Calculus (BSc Physics)"),
        "oec_subj_100_course_11": ("CALC_MSCQ", "Calculus (MSc Quantum)"),
        "oec_subj_100_course_12": ("CALC_BAART", "Calculus (BA Arts)"),
    }
    assert fm.call_counts["core_course_update_courses"] == 1
    assert fm.write_call_count() == 1


def test_withdrawal_unenrols_and_removes_the_mapping(fm, store):
    snapshot = institution()
    push(fm, store, snapshot)
    fm.reset_calls()
    snapshot.enrolments[50] = dataclasses.replace(
        snapshot.enrolments[50], subject_ids=(100,)
    )
    del snapshot.enrolments[53]
    push(fm, store, snapshot)
    state = moodle_state(fm)
    assert state["enrolments"] == EXPECTED_ENROLMENTS - {
        ("oec_student_30", "oec_subj_101_course_10", 5),
        ("oec_student_33", "oec_subj_100_course_12", 5),
        ("oec_student_33", "oec_subj_104_course_12", 5),
    }
    assert fm.call_counts["enrol_manual_unenrol_users"] == 1
    assert store.get("enrolment", "oec_student_30@oec_subj_101_course_10") is None
    # Unenrolment removed the group membership too.
    assert state["groups"][("oec_batch_20", "oec_subj_101_course_10")] == [
        "oec_student_31"
    ]


def test_existing_moodle_objects_are_adopted_not_duplicated(fm, store):
    client = MoodleClient(BASE, "simtoken")
    client.create_users(
        [
            {
                "username": "legacy.ann",
                "firstname": "A",
                "lastname": "L",
                "email": "ann@uni.test",
                "createpassword": 1,
            },
            {
                "username": "bob.old",
                "firstname": "B",
                "lastname": "N",
                "email": "bob.old@uni.test",
                "idnumber": "oec_student_31",
                "createpassword": 1,
            },
        ]
    )
    cat = client.create_categories([{"name": "Old Science", "idnumber": "oec_dept_1"}])
    users_before = len(fm.users)
    push(fm, store, institution())
    assert len(fm.users) == users_before + 2  # Dan and Eve only
    ann = fm.find_user(idnumber="oec_student_30")
    assert ann["username"] == "legacy.ann"  # adopted by email, username kept
    assert ann["firstname"] == "Ann"  # OpenEduCat wins
    assert fm.find_user(idnumber="oec_student_31")["email"] == "bob@uni.test"
    science = fm.find_category(idnumber="oec_dept_1")
    assert science["id"] == cat.outcomes[0].value["id"]
    assert science["name"] == "Science"


def test_rebuilt_mapping_table_creates_no_duplicates(fm, store):
    push(fm, store, institution())
    counts = (len(fm.categories), len(fm.courses), len(fm.users), len(fm.groups))
    before = moodle_state(fm)
    fresh = MemoryStore()
    push(fm, fresh, institution())
    assert (
        len(fm.categories),
        len(fm.courses),
        len(fm.users),
        len(fm.groups),
    ) == counts
    assert moodle_state(fm) == before
    assert fm.call_counts["core_course_create_courses"] == 1  # the first push only
    assert fresh.get("course", "oec_subj_104_course_12").moodle_id


def test_archived_student_is_suspended_never_deleted(fm, store):
    snapshot = institution()
    push(fm, store, snapshot)
    snapshot.students[31] = dataclasses.replace(snapshot.students[31], active=False)
    push(fm, store, snapshot)
    bob = fm.find_user(idnumber="oec_student_31")
    assert bob["suspended"] in (1, True)
    assert fm.call_counts.get("core_user_delete_users", 0) == 0


def test_sso_accounts_get_no_password(fm, store):
    push(fm, store, institution(), auth="oauth2")
    assert fm.find_user(idnumber="oec_student_30")["auth"] == "oauth2"
    sent = [p for f, p in fm.calls if f == "core_user_create_users"]
    assert all(
        "createpassword" not in u and "password" not in u for u in sent[0]["users"]
    )


def test_department_filter_serves_only_its_part(fm, store):
    push(fm, store, institution(), department_ids=frozenset({4}))
    state = moodle_state(fm)
    assert set(state["categories"]) == {"oec_dept_4", "oec_course_12"}
    assert set(state["courses"]) == {"oec_subj_100_course_12", "oec_subj_104_course_12"}
    assert set(state["users"]) == {"oec_student_33", "oec_faculty_40"}


def test_record_error_is_kept_with_backoff_and_the_rest_goes_through(fm, store):
    snapshot = institution()
    # Another Moodle course already uses a shortname we need.
    MoodleClient(BASE, "simtoken").create_courses(
        [{"fullname": "Squatter", "shortname": "OPT_BSCPHY", "categoryid": 1}]
    )
    push(fm, store, snapshot)
    failed = store.get("course", "oec_subj_102_course_10")
    assert failed.state == "error" and failed.retry_count == 1
    assert "shortnametaken" in failed.last_error
    assert failed.next_retry == NOW + datetime.timedelta(minutes=5)
    assert fm.find_course(idnumber="oec_subj_101_course_10")  # the rest went through
    fm.reset_calls()
    push(fm, store, snapshot)  # not due yet: no new attempt
    assert fm.call_counts["core_course_create_courses"] == 0


def test_transient_failure_keeps_what_succeeded(fm, store):
    fm.inject("http503", times=1, function="core_user_create_users")
    with pytest.raises(MoodleTransientError):
        push(fm, store, institution())
    assert store.get("course", "oec_subj_100_course_10").state == "synced"
    assert store.get("user", "oec_student_30") is None
    push(fm, store, institution())
    assert moodle_state(fm)["enrolments"] == EXPECTED_ENROLMENTS


def test_dry_run_plans_everything_and_writes_nothing(fm, store):
    client = MoodleClient(BASE, "simtoken")
    result = PushSync(client, store, PushSettings(), dry_run=True, now=NOW).run(
        institution()
    )
    assert fm.write_call_count() == 0
    assert store.rows == {}
    assert result.phases["subjects"].created == 7
    assert result.phases["enrolments"].created == 11
    assert result.phases["users"].blocked == 1


def test_batch_move_moves_the_membership_without_re_enrolling(fm, store):
    snapshot = institution()
    push(fm, store, snapshot)
    snapshot.batches[22] = Batch(22, "Physics B", "PHY26B", 10)
    snapshot.enrolments[50] = dataclasses.replace(snapshot.enrolments[50], batch_id=22)
    fm.reset_calls()
    push(fm, store, snapshot)
    assert fm.call_counts["enrol_manual_enrol_users"] == 0
    assert fm.call_counts["core_group_delete_group_members"] == 1
    assert fm.call_counts["core_group_add_group_members"] == 1
    groups = moodle_state(fm)["groups"]
    assert groups[("oec_batch_20", "oec_subj_100_course_10")] == ["oec_student_31"]
    assert groups[("oec_batch_22", "oec_subj_100_course_10")] == ["oec_student_30"]
    assert groups[("oec_batch_22", "oec_subj_101_course_10")] == ["oec_student_30"]
    assert moodle_state(fm)["enrolments"] == EXPECTED_ENROLMENTS
    fm.reset_calls()
    push(fm, store, snapshot)
    assert fm.write_call_count() == 0


def test_an_adopted_object_whose_update_fails_is_reported(fm, store):
    client = MoodleClient(BASE, "simtoken")
    client.create_courses(
        [
            {
                "fullname": "Old",
                "shortname": "OLD",
                "categoryid": 1,
                "idnumber": "oec_subj_100_course_10",
            },
            {"fullname": "Squatter", "shortname": "MATH_BSCPHY", "categoryid": 1},
        ]
    )
    result = push(fm, store, institution())
    subjects = result.phases["subjects"]
    assert (subjects.adopted, subjects.failed, subjects.created) == (1, 1, 6)
    failed = [r for r in subjects.records if r["action"] == "failed"]
    assert [r["key"] for r in failed] == ["oec_subj_100_course_10"]
    mapping = store.get("course", "oec_subj_100_course_10")
    assert mapping.state == "error" and "shortnametaken" in mapping.last_error
    assert fm.find_course(idnumber="oec_subj_100_course_10")["shortname"] == "OLD"


def test_a_push_without_now_runs_and_stamps_naive_utc(fm):
    """What every job does: no ``now=``. ``datetime.UTC`` (3.11+) broke this on
    Python 3.10, the official odoo:17.0 image's interpreter."""
    store = MemoryStore()
    before = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    client = MoodleClient(BASE, "simtoken")
    PushSync(client, store, PushSettings()).run(institution())
    after = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert fm.find_category(idnumber="oec_dept_1") is not None
    stamps = {m.last_sync for m in store.rows.values() if m.last_sync}
    assert stamps
    assert all(s.tzinfo is None and before <= s <= after for s in stamps)
