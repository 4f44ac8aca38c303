"""The push sync core against the Moodle simulator: what Moodle ends up holding."""

import dataclasses
import datetime
import math

import pytest
import responses

from openeducat_moodle.moodle import (
    MoodleClient,
    MoodleRecordError,
    MoodleTransientError,
)
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
from tests.fake_moodle.errors import MoodleError as SimulatedError
from tests.fake_moodle.errors import invalid_parameter, moodle_exception

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
    # Bob's account carries our idnumber: ours. Ann's only matches her email:
    # by default it waits for a Moodle Manager's review.
    assert fm.find_user(idnumber="oec_student_31")["email"] == "bob@uni.test"
    assert fm.find_user(idnumber="oec_student_30") is None
    waiting = store.get("user", "oec_student_30")
    assert waiting.state == "blocked" and "review" in waiting.last_error
    legacy = fm.find_user(username="legacy.ann")
    waiting.extra["adopt"] = {"moodle_id": legacy["id"]}
    push(fm, store, institution())
    ann = fm.find_user(idnumber="oec_student_30")
    assert ann["id"] == legacy["id"]
    assert ann["username"] == "legacy.ann"  # adopted by email, username kept
    assert ann["firstname"] == "Ann"  # OpenEduCat wins
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
    # Not in its program's category, where the push looks (issue 15: never
    # the whole site): the create is refused; the retry asks for the course
    # by its idnumber and adopts it.
    first = push(fm, store, institution()).phases["subjects"]
    assert (first.adopted, first.failed, first.created) == (0, 1, 6)
    later = NOW + datetime.timedelta(hours=1)
    sync = PushSync(client, store, PushSettings(), now=later)
    subjects = sync.run(institution()).phases["subjects"]
    assert (subjects.adopted, subjects.failed, subjects.created) == (1, 1, 0)
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


# --- issue 13: one record never holds back the rest ---------------------------

USER_COLUMNS = {
    "username": 100,
    "firstname": 100,
    "lastname": 100,
    "email": 100,
    "idnumber": 255,
    "auth": 20,
    "lang": 30,
    "country": 2,
    "phone1": 20,
    "city": 120,
}
# Moodle 4.5's columns (lib/db/install.xml) behind each write function.
COLUMNS = {
    "core_course_create_courses": (
        "courses",
        {"fullname": 254, "shortname": 255, "idnumber": 100},
    ),
    "core_course_create_categories": ("categories", {"name": 255, "idnumber": 100}),
    "core_group_create_groups": ("groups", {"name": 254, "idnumber": 100}),
    "core_user_create_users": ("users", USER_COLUMNS),
    "core_user_update_users": ("users", USER_COLUMNS),
}


def moodle_database(fm, monkeypatch, refuse=None):
    """Put Moodle's database under the simulator's write functions: a value
    longer than its column, or a record ``refuse`` names a reason for, ends
    the whole call in ``dml_write_exception`` (one transaction), as on
    MariaDB."""

    def too_long(columns, record):
        for column, limit in columns.items():
            value = record.get(column)
            if isinstance(value, str) and len(value) > limit:
                return f"Data too long for column '{column}' at row 1"
        return None

    def checked(original, key, columns):
        def write(**params):
            for record in params[key]:
                problem = too_long(columns, record) or (refuse and refuse(record))
                if problem:
                    raise SimulatedError(
                        "dml_write_exception",
                        "dmlwriteexception",
                        "Error writing to database",
                        problem,
                    )
            return original(**params)

        return write

    for function, (key, columns) in COLUMNS.items():
        name = "ws_" + function
        monkeypatch.setattr(fm, name, checked(getattr(fm, name), key, columns))


def sent(fm, function, key):
    """Every record the simulator received for ``function``."""
    return [record for f, params in fm.calls if f == function for record in params[key]]


def records(result, action):
    return {
        r["key"]: r["reason"]
        for p in result.phases.values()
        for r in p.records
        if r["action"] == action
    }


def test_a_subject_code_too_long_for_moodle_is_shortened_stably(fm, store, monkeypatch):
    """OpenEduCat allows a 256-character subject code; Moodle's shortname
    column holds 255. Two such codes alike in their first 250 characters get
    two distinct shortnames, the same ones on every push."""
    moodle_database(fm, monkeypatch)
    snapshot = institution()
    snapshot.subjects[102] = dataclasses.replace(
        snapshot.subjects[102], code="Q" * 250 + "-OPTICS-AND-WAVES"
    )
    snapshot.subjects[103] = dataclasses.replace(
        snapshot.subjects[103], code="Q" * 250 + "-ELECTRODYNAMICS"
    )
    result = push(fm, store, snapshot)
    shortnames = {
        c["idnumber"]: c["shortname"]
        for c in fm.courses.values()
        if c.get("idnumber") in ("oec_subj_102_course_10", "oec_subj_103_course_11")
    }
    assert len(shortnames) == 2
    assert len(set(shortnames.values())) == 2
    for shortname in shortnames.values():
        assert len(shortname) == 255 and shortname.startswith("Q" * 246 + "~")
    # What Moodle received always fitted.
    assert all(
        len(c["shortname"]) <= 255
        for c in sent(fm, "core_course_create_courses", "courses")
    )
    # The registrar is told, on the result and on the mapping row.
    shortened = records(result, "shortened")
    assert shortened["oec_subj_102_course_10"] == (
        "shortname shortened from 274 characters to 255 (Moodle allows 255)"
    )
    assert result.phases["subjects"].shortened == 2
    mapping = store.get("course", "oec_subj_103_course_11")
    assert mapping.state == "synced"
    assert mapping.extra["shortened"] == [
        "shortname shortened from 271 characters to 255 (Moodle allows 255)"
    ]
    # Everything else went through.
    assert moodle_state(fm)["enrolments"] == EXPECTED_ENROLMENTS
    # The shortened payload hashes the same on the next push: no call.
    fm.reset_calls()
    result = push(fm, store, snapshot)
    assert sum(fm.call_counts.values()) == 0
    assert result.phases["subjects"].shortened == 0


def test_one_record_moodle_refuses_never_holds_back_the_rest(fm, store, monkeypatch):
    """One course Moodle's database refuses (emoji on a 3-byte utf8 MySQL: the
    planner cannot foresee it) and one user whose email is too long for
    Moodle: both stand alone, every other course, user, group and enrolment
    goes through, and the next push makes no call for them until they
    change."""
    moodle_database(
        fm,
        monkeypatch,
        refuse=lambda record: (
            "Incorrect string value: '\\xF0\\x9F\\xA4\\x96' for column 'fullname'"
            if "\U0001f916" in record.get("fullname", "")
            else None
        ),
    )
    snapshot = institution()
    snapshot.subjects[102] = dataclasses.replace(
        snapshot.subjects[102], name="Optics \U0001f916"
    )
    long_email = "bob." + "b" * 120 + "@uni.test"
    snapshot.students[31] = dataclasses.replace(
        snapshot.students[31], email=long_email, login="bob"
    )

    result = push(fm, store, snapshot, batch_size=4)

    course = store.get("course", "oec_subj_102_course_10")
    assert course.state == "error" and course.retry_count == 1
    assert course.next_retry == NOW + datetime.timedelta(minutes=5)
    assert "dmlwriteexception" in course.last_error
    bob = store.get("user", "oec_student_31")
    assert bob.state == "blocked"
    assert bob.last_error == (
        "email address is 133 characters; Moodle allows 100: shorten it in OpenEduCat"
    )
    assert records(result, "blocked")["oec_student_31"] == bob.last_error
    # Moodle never received the email; the course was split out of its batch.
    assert long_email not in {
        u["email"] for u in sent(fm, "core_user_create_users", "users")
    }
    alone = [
        params["courses"]
        for f, params in fm.calls
        if f == "core_course_create_courses" and len(params["courses"]) == 1
    ]
    assert "oec_subj_102_course_10" in [c[0]["idnumber"] for c in alone]
    # Everything else, of every kind, is in Moodle.
    state = moodle_state(fm)
    assert set(state["courses"]) == {
        "oec_subj_100_course_10",
        "oec_subj_101_course_10",
        "oec_subj_100_course_11",
        "oec_subj_103_course_11",
        "oec_subj_100_course_12",
        "oec_subj_104_course_12",
    }
    assert set(state["users"]) == {"oec_student_30", "oec_student_33", "oec_faculty_40"}
    assert state["enrolments"] == {
        e for e in EXPECTED_ENROLMENTS if e[0] != "oec_student_31"
    }
    assert state["groups"] == {
        ("oec_batch_20", "oec_subj_100_course_10"): ["oec_student_30"],
        ("oec_batch_20", "oec_subj_101_course_10"): ["oec_student_30"],
        ("oec_batch_21", "oec_subj_100_course_12"): ["oec_student_33"],
        ("oec_batch_21", "oec_subj_104_course_12"): ["oec_student_33"],
    }
    # The next push makes no call for them (nor for anything else).
    fm.reset_calls()
    push(fm, store, snapshot)
    assert sum(fm.call_counts.values()) == 0
    # Once fixed in OpenEduCat, they go, and what depends on them follows.
    snapshot.subjects[102] = dataclasses.replace(snapshot.subjects[102], name="Optics")
    snapshot.students[31] = dataclasses.replace(
        snapshot.students[31], email="bob@uni.test"
    )
    push(fm, store, snapshot)
    state = moodle_state(fm)
    assert state["enrolments"] == EXPECTED_ENROLMENTS
    assert state["groups"][("oec_batch_20", "oec_subj_102_course_10")] == [
        "oec_student_31"
    ]
    assert store.get("course", "oec_subj_102_course_10").state == "synced"
    assert store.get("user", "oec_student_31").state == "synced"


def test_a_lookup_moodle_refuses_fails_only_the_records_that_needed_it(
    fm, store, monkeypatch
):
    original = fm.ws_core_user_get_users_by_field

    def refusing(field, values):
        if field == "email" and "bob@uni.test" in values:
            raise invalid_parameter("The field 'email' value is invalid")
        return original(field=field, values=values)

    monkeypatch.setattr(fm, "ws_core_user_get_users_by_field", refusing)
    result = push(fm, store, institution())
    bob = store.get("user", "oec_student_31")
    assert bob.state == "error" and "invalidparameter" in bob.last_error
    assert result.phases["users"].failed == 1
    assert set(moodle_state(fm)["users"]) == {
        "oec_student_30",
        "oec_student_33",
        "oec_faculty_40",
    }
    assert moodle_state(fm)["enrolments"] == {
        e for e in EXPECTED_ENROLMENTS if e[0] != "oec_student_31"
    }


# --- issue 13, item 6: a course deleted in Moodle -----------------------------


def test_a_course_deleted_in_moodle_blocks_only_what_needs_it(fm, store):
    """A new batch needs groups in a course deleted in Moodle: only what lives
    in that course waits; the course is created again by the next push (as
    after a drift check), with its groups and enrolments."""
    snapshot = institution()
    push(fm, store, snapshot)
    lost = fm.find_course(idnumber="oec_subj_100_course_10")["id"]
    fm.delete_course_outside_connector(lost)
    snapshot.batches[22] = Batch(22, "Physics B", "PHY26B", 10)
    snapshot.students[34] = Person(34, "student", "Fay", "Ra", "fay@uni.test")
    snapshot.enrolments[54] = Enrolment(54, 34, 10, 22, ())

    result = push(fm, store, snapshot)

    assert [(x["key"], x["moodle_id"]) for x in result.lost] == [
        ("oec_subj_100_course_10", lost)
    ]
    blocked = records(result, "blocked")
    assert "deleted in Moodle" in blocked["oec_batch_22@oec_subj_100_course_10"]
    assert "deleted in Moodle" in blocked["oec_student_34@oec_subj_100_course_10"]
    assert store.get("course", "oec_subj_100_course_10") is None
    assert store.get("group", "oec_batch_20@oec_subj_100_course_10") is None
    # Moodle deleted the enrolments with the course: they wait for it.
    enrolment = store.get("enrolment", "oec_student_30@oec_subj_100_course_10")
    assert (enrolment.state, enrolment.sync_hash) == ("blocked", None)
    # The rest went through.
    groups = moodle_state(fm)["groups"]
    assert groups[("oec_batch_22", "oec_subj_101_course_10")] == ["oec_student_34"]
    assert groups[("oec_batch_22", "oec_subj_102_course_10")] == ["oec_student_34"]
    assert fm.call_counts["enrol_manual_unenrol_users"] == 0

    result = push(fm, store, snapshot)
    again = fm.find_course(idnumber="oec_subj_100_course_10")
    assert again["id"] != lost
    state = moodle_state(fm)
    assert state["enrolments"] == EXPECTED_ENROLMENTS | {
        ("oec_student_34", f"oec_subj_{s}_course_10", 5) for s in (100, 101, 102)
    }
    assert state["groups"][("oec_batch_20", "oec_subj_100_course_10")] == [
        "oec_student_30",
        "oec_student_31",
    ]
    assert state["groups"][("oec_batch_22", "oec_subj_100_course_10")] == [
        "oec_student_34"
    ]
    fm.reset_calls()
    push(fm, store, snapshot)
    assert fm.write_call_count() == 0


def test_a_changed_course_deleted_in_moodle_is_created_again_at_once(fm, store):
    snapshot = institution()
    push(fm, store, snapshot)
    lost = fm.find_course(idnumber="oec_subj_104_course_12")["id"]
    fm.delete_course_outside_connector(lost)
    snapshot.subjects[104] = dataclasses.replace(
        snapshot.subjects[104], name="World History"
    )
    result = push(fm, store, snapshot)
    course = fm.find_course(idnumber="oec_subj_104_course_12")
    assert course["id"] != lost and course["fullname"] == "World History (BA Arts)"
    assert store.get("course", "oec_subj_104_course_12").moodle_id == course["id"]
    subjects = result.phases["subjects"]
    assert (subjects.created, subjects.failed) == (1, 0)
    assert [x["key"] for x in result.lost] == ["oec_subj_104_course_12"]
    # Its group and enrolments follow in the same push.
    state = moodle_state(fm)
    assert state["enrolments"] == EXPECTED_ENROLMENTS
    assert state["groups"][("oec_batch_21", "oec_subj_104_course_12")] == [
        "oec_student_33"
    ]
    fm.reset_calls()
    push(fm, store, snapshot)
    assert fm.write_call_count() == 0


# --- issue 13, item 10: mass unenrolments are held ----------------------------


def cohort(size):
    """The institution and ``size`` more students in program 10 (3 courses)."""
    snapshot = institution()
    for i in range(size):
        snapshot.students[100 + i] = Person(
            100 + i, "student", f"S{i}", "Cohort", f"s{i}@uni.test"
        )
        snapshot.enrolments[200 + i] = Enrolment(200 + i, 100 + i, 10, 20, ())
    return snapshot


def enrolled(store):
    """Enrolment mapping rows Moodle enrolled (blocked ones never were)."""
    return sum(1 for m in store.of_kind("enrolment").values() if m.sync_hash)


def withdrawn(snapshot, ids):
    return dataclasses.replace(
        snapshot,
        enrolments={k: v for k, v in snapshot.enrolments.items() if k not in ids},
    )


def test_a_mass_unenrolment_is_held_until_confirmed(fm, store):
    snapshot = cohort(20)  # 11 + 60 enrolments
    push(fm, store, snapshot)
    first = withdrawn(snapshot, set(range(200, 210)))  # 30 unenrolments
    result = push(fm, store, first)

    held = result.held_unenrolments
    assert (held["count"], held["limit"], held["enrolments"]) == (30, 10, 71)
    assert "confirms" in held["reason"]
    assert len(held["keys"]) == 30
    assert "oec_student_100@oec_subj_100_course_10" in held["keys"]
    assert fm.call_counts["enrol_manual_unenrol_users"] == 0
    assert result.phases["enrolments"].held == 30
    assert len(records(result, "held")) == 30
    assert enrolled(store) == 71
    assert moodle_state(fm)["enrolments"] >= {
        ("oec_student_100", "oec_subj_100_course_10", 5)
    }
    # The dry run lists them.
    client = MoodleClient(BASE, "simtoken")
    dry = PushSync(client, store, PushSettings(), dry_run=True, now=NOW).run(first)
    assert set(records(dry, "held")) == set(held["keys"])
    assert dry.held_unenrolments["count"] == 30

    # A confirmation covers what it lists and nothing more: 30 more withdrawn
    # since stay held.
    second = withdrawn(first, set(range(210, 220)))
    result = push(fm, store, second, unenrol_confirmed=frozenset(held["keys"]))
    assert result.phases["enrolments"].unenrolled == 30
    assert result.held_unenrolments["count"] == 30
    assert not set(result.held_unenrolments["keys"]) & set(held["keys"])
    assert enrolled(store) == 41
    assert not any(
        u == "oec_student_100" for u, _c, _r in moodle_state(fm)["enrolments"]
    )
    assert any(u == "oec_student_110" for u, _c, _r in moodle_state(fm)["enrolments"])
    # Confirmed, they go.
    keys = frozenset(result.held_unenrolments["keys"])
    result = push(fm, store, second, unenrol_confirmed=keys)
    assert result.held_unenrolments is None
    assert result.phases["enrolments"].unenrolled == 30
    assert enrolled(store) == 11
    assert moodle_state(fm)["enrolments"] == EXPECTED_ENROLMENTS


def test_unenrolments_below_the_limit_go_without_confirmation(fm, store):
    snapshot = cohort(20)
    push(fm, store, snapshot)
    result = push(fm, store, withdrawn(snapshot, {200, 201, 202}))  # 9
    assert result.held_unenrolments is None
    assert result.phases["enrolments"].unenrolled == 9
    # No limit at all when both bounds are off.
    result = push(
        fm,
        store,
        withdrawn(snapshot, set(range(200, 220))),
        unenrol_limit_percent=0,
        unenrol_limit_count=0,
    )
    assert result.held_unenrolments is None
    assert result.phases["enrolments"].unenrolled == 51


@pytest.mark.parametrize(
    ("enrolments", "settings", "limit"),
    [
        (100_000, {}, 200),  # large: 5 % would be 5 000
        (1_000, {}, 50),  # small: 200 would be a fifth
        (100, {}, 10),  # tiny: never below the floor
        (1_000, {"unenrol_limit_count": 0}, 50),
        (100_000, {"unenrol_limit_percent": 0}, 200),
        (1_000, {"unenrol_limit_count": 0, "unenrol_limit_percent": 0}, None),
        (1_001, {"unenrol_limit_percent": 2.5}, 26),
    ],
)
def test_the_unenrolment_limit(enrolments, settings, limit):
    sync = PushSync(None, MemoryStore(), PushSettings(**settings), now=NOW)
    assert sync._unenrol_limit(enrolments) == limit


# --- issue 13, item 8: failed unenrolments follow the backoff -----------------


def test_a_failed_unenrolment_follows_the_backoff(fm, store, monkeypatch):
    snapshot = institution()
    push(fm, store, snapshot)
    course = fm.find_course(idnumber="oec_subj_104_course_12")["id"]
    original = fm.ws_enrol_manual_unenrol_users
    refusing = {"on": True}

    def unenrol(enrolments):
        if refusing["on"] and any(e["courseid"] == course for e in enrolments):
            raise moodle_exception("wsnoinstance", "Manual enrolment is disabled")
        return original(enrolments=enrolments)

    monkeypatch.setattr(fm, "ws_enrol_manual_unenrol_users", unenrol)
    del snapshot.enrolments[53]  # Dan leaves: two unenrolments
    key = "oec_student_33@oec_subj_104_course_12"
    client = MoodleClient(BASE, "simtoken")

    def push_at(when):
        fm.reset_calls()
        return PushSync(client, store, PushSettings(), now=when).run(snapshot)

    result = push_at(NOW)
    assert result.phases["enrolments"].unenrolled == 1
    assert result.phases["enrolments"].failed == 1
    assert store.get("enrolment", "oec_student_33@oec_subj_100_course_12") is None
    mapping = store.get("enrolment", key)
    assert (mapping.state, mapping.retry_count) == ("error", 1)
    assert mapping.next_retry == NOW + datetime.timedelta(minutes=5)
    assert "wsnoinstance" in mapping.last_error
    assert mapping.extra["failed_hash"] == "unenrol"
    assert len(mapping.extra["attempts"]) == 1

    # Not due yet: no call.
    result = push_at(NOW + datetime.timedelta(minutes=4))
    assert fm.call_counts["enrol_manual_unenrol_users"] == 0
    assert records(result, "waiting") == {key: mapping.last_error}
    # Due: tried again, and rescheduled further.
    when = NOW + datetime.timedelta(minutes=6)
    push_at(when)
    assert fm.call_counts["enrol_manual_unenrol_users"] == 1
    mapping = store.get("enrolment", key)
    assert (mapping.state, mapping.retry_count) == ("error", 2)
    assert mapping.next_retry == when + datetime.timedelta(minutes=30)
    # The schedule spent (4 h, 24 h, then failed), it waits for a person.
    for _ in range(3):
        when = store.get("enrolment", key).next_retry
        push_at(when)
    mapping = store.get("enrolment", key)
    assert (mapping.state, mapping.retry_count) == ("failed", 5)
    push_at(when + datetime.timedelta(days=30))
    assert fm.call_counts["enrol_manual_unenrol_users"] == 0
    # Retried by a person (the mapping's Retry: state error, due now), it goes.
    refusing["on"] = False
    mapping.state, mapping.retry_count, mapping.next_retry = "error", 0, when
    store.save([mapping])
    push_at(when + datetime.timedelta(days=30))
    assert store.get("enrolment", key) is None
    assert fm.enrolled_roles(course, fm.find_user(idnumber="oec_student_33")["id"]) == (
        set()
    )


def test_the_import_reports_a_lookup_moodle_refuses_as_a_gap(fm, store, monkeypatch):
    from openeducat_moodle.sync.reconcile import Importer

    push(fm, store, institution())
    original = fm.ws_core_user_get_users_by_field

    def refusing(field, values):
        if "oec_student_31" in values:
            raise invalid_parameter("The field 'idnumber' value is invalid")
        return original(field=field, values=values)

    monkeypatch.setattr(fm, "ws_core_user_get_users_by_field", refusing)
    rebuilt = MemoryStore()
    importer = Importer(MoodleClient(BASE, "simtoken"), rebuilt, PushSettings(), NOW)
    importer.run(institution())
    gaps = {g["key"]: g["reason"] for g in importer.gaps}
    assert "invalidparameter" in gaps["oec_student_31"]
    assert importer.matched["user"] == 3
    assert rebuilt.get("user", "oec_student_30").state == "synced"


def test_a_refused_course_lookup_fails_the_courses_and_nothing_else(
    fm, store, monkeypatch
):
    original = fm.ws_core_course_get_courses_by_field

    def refusing(field, value):
        # The listing of a category is refused, and so is each look-up by
        # idnumber that the push falls back on.
        if field in ("", "category", "idnumber"):
            raise invalid_parameter("Invalid field name")
        return original(field=field, value=value)

    # The categories are there before (a push makes no look-up in those it
    # made itself).
    client = MoodleClient(BASE, "simtoken")
    PushSync(client, store, PushSettings(), now=NOW).run(
        institution(), phases=["departments", "programs"]
    )
    monkeypatch.setattr(fm, "ws_core_course_get_courses_by_field", refusing)
    result = push(fm, store, institution())
    assert result.phases["subjects"].failed == 7
    course = store.get("course", "oec_subj_100_course_10")
    assert course.state == "error" and "invalidparameter" in course.last_error
    state = moodle_state(fm)
    assert len(state["categories"]) == 7 and len(state["users"]) == 4
    assert result.phases["enrolments"].blocked == 11 + 2  # and Cat's, as always


def test_a_synced_department_that_falls_into_a_cycle_is_findable_by_state(fm):
    store = MemoryStore()
    snap = institution()
    push(fm, store, snap)
    science = store.get("category", "oec_dept_1")
    assert science.state == "synced" and science.moodle_id
    # Science (1) and Physics (2) now point at each other.
    looped = dataclasses.replace(snap.departments[1], parent_id=2)
    snap = dataclasses.replace(snap, departments={**snap.departments, 1: looped})
    push(fm, store, snap)
    science = store.get("category", "oec_dept_1")
    assert science.state == "blocked"
    assert "cycle" in science.last_error or "parent" in science.last_error
    # It is still the Moodle category it was: what hangs below it still syncs.
    assert science.moodle_id == fm.find_category(idnumber="oec_dept_1")["id"]
    assert store.get("category", "oec_course_10").state == "synced"


def memberships(fm):
    """(group idnumber, user idnumber) pairs Moodle holds."""
    users = {u["id"]: u.get("idnumber") for u in fm.users.values()}
    return {
        (group.get("idnumber"), users.get(userid))
        for group in fm.groups.values()
        for userid in fm.group_members(group["id"])
    }


def test_memberships_follow_when_moodle_stopped_during_the_enrolments(fm):
    """Found on a real Moodle: the enrolments of the chunks sent before the
    outage were saved as done while their group memberships were never sent,
    and no later push made them."""
    snap = institution()
    expected_store = MemoryStore()
    expected = FakeMoodle(token="simtoken")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        expected.install(rsps, base_url="https://expected.test")
        client = MoodleClient("https://expected.test", "simtoken", batch_size=1)
        PushSync(client, expected_store, PushSettings(), now=NOW).run(snap)
    store = MemoryStore()
    fm.inject("drop", times=1, function="enrol_manual_enrol_users", after=2)
    with pytest.raises(MoodleTransientError):
        push(fm, store, snap, batch_size=1)
    push(fm, store, snap, batch_size=1)
    assert memberships(fm) == memberships(expected)
    assert len(memberships(fm)) > 0
    fm.reset_calls()
    push(fm, store, snap, batch_size=1)
    assert fm.write_call_count() == 0


def test_a_course_listing_refused_falls_back_to_one_look_up_per_course(fm, monkeypatch):
    """Moodle refuses to list every course while any course of the site is
    being deleted (seen on real 4.5 and 5.1 sites)."""
    store = MemoryStore()
    push(fm, store, institution())
    key = "oec_subj_100_course_10"
    store.delete([store.get("course", key)])  # the mapping row is lost
    original = MoodleClient.get_courses_by_field

    def racing(client, field="", value=""):
        if not field:
            raise MoodleRecordError("Can't find data record", errorcode="invalidrecord")
        return original(client, field, value)

    monkeypatch.setattr(MoodleClient, "get_courses_by_field", racing)
    courses = len(fm.courses)
    push(fm, store, institution())
    assert len(fm.courses) == courses  # adopted, not created twice
    assert store.get("course", key).moodle_id == fm.find_course(idnumber=key)["id"]


# ---------------------------------------------------------------------------
# Course details (summary, dates) and people's contact data
# ---------------------------------------------------------------------------

from openeducat_moodle.sync.push import course_summary
from openeducat_moodle.sync.reconcile import DriftCheck

D = datetime.date


def dated(snapshot=None, tz="UTC"):
    """The institution, its batches dated: BSc Physics has two (one archived,
    one without an end), MSc Quantum none, BA Arts one."""
    snapshot = snapshot or institution()
    snapshot.tz = tz
    for row in (
        (20, 10, True, D(2026, 9, 1), D(2027, 6, 30)),
        (22, 10, True, D(2026, 10, 15), D(2027, 7, 31)),
        (23, 10, False, D(2025, 9, 1), D(2028, 6, 30)),
        (24, 10, True, D(2025, 1, 1), None),
        (21, 12, True, D(2026, 9, 7), D(2027, 5, 28)),
    ):
        bid, program, active, start, end = row
        snapshot.batches[bid] = Batch(
            bid, f"Batch {bid}", f"B{bid}", program, active, start, end
        )
    return snapshot


def utc(*args):
    return int(datetime.datetime(*args, tzinfo=datetime.timezone.utc).timestamp())


def moodle_course(fm, idnumber):
    return fm.find_course(idnumber=idnumber)


def test_courses_carry_a_summary_and_their_program_s_batch_dates(fm, store):
    push(fm, store, dated())

    physics = moodle_course(fm, "oec_subj_101_course_10")
    assert physics["summary"] == (
        "<p><strong>Subject:</strong> Mechanics (MECH)</p>"
        "<p><strong>Program:</strong> BSc Physics (BSCPHY)</p>"
        "<p><strong>Department:</strong> Physics</p>"
    )
    assert physics["summaryformat"] == 1
    # the earliest start and the latest end of the active batches with both
    # dates (the archived batch and the one without an end are left out)
    assert (physics["startdate"], physics["enddate"]) == (
        utc(2026, 9, 1),
        utc(2027, 8, 1) - 60,
    )
    arts = moodle_course(fm, "oec_subj_104_course_12")
    assert (arts["startdate"], arts["enddate"]) == (
        utc(2026, 9, 7),
        utc(2027, 5, 29) - 60,
    )
    # a program without batches: no dates sent, Moodle's own defaults
    (quantum,) = [
        r
        for r in sent(fm, "core_course_create_courses", "courses")
        if r["idnumber"] == "oec_subj_103_course_11"
    ]
    assert "startdate" not in quantum and "enddate" not in quantum
    assert quantum["summary"].endswith("<p><strong>Department:</strong> Quantum</p>")


def test_course_dates_are_the_batches_days_in_the_institution_s_time_zone(fm, store):
    push(fm, store, dated(tz="America/New_York"))

    physics = moodle_course(fm, "oec_subj_100_course_10")
    # 2026-09-01 00:00 EDT (UTC-4) to 2027-07-31 23:59 EDT
    assert physics["startdate"] == utc(2026, 9, 1, 4)
    assert physics["enddate"] == utc(2027, 8, 1, 4) - 60


def test_a_summary_is_escaped_html(fm, store):
    summary = course_summary(
        Subject(1, "Waves <script>alert(1)</script>", "W<1>"),
        Program(2, 'R&D "Lab"', "RD"),
        Department(3, "Physics <b>"),
    )
    assert summary == (
        "<p><strong>Subject:</strong> Waves &lt;script&gt;alert(1)&lt;/script&gt; "
        "(W&lt;1&gt;)</p>"
        '<p><strong>Program:</strong> R&amp;D "Lab" (RD)</p>'
        "<p><strong>Department:</strong> Physics &lt;b&gt;</p>"
    )
    # as pushed (Moodle refuses tags in a course's full name, not in a summary)
    snapshot = dated()
    snapshot.subjects[101] = Subject(101, "Waves & co", "M&M")
    push(fm, store, snapshot)
    assert moodle_course(fm, "oec_subj_101_course_10")["summary"].startswith(
        "<p><strong>Subject:</strong> Waves &amp; co (M&amp;M)</p>"
    )


def test_an_end_before_the_start_sends_no_end_date(fm, store):
    snapshot = dated()
    snapshot.batches = {
        21: Batch(21, "Arts", "ART26", 12, True, D(2026, 9, 7), D(2026, 9, 1)),
    }

    result = push(fm, store, snapshot)

    arts = moodle_course(fm, "oec_subj_104_course_12")
    assert (arts["startdate"], arts["enddate"]) == (utc(2026, 9, 7), 0)
    assert result.phases["subjects"].failed == 0


def test_changed_batch_dates_update_only_their_program_s_courses(fm, store):
    snapshot = dated()
    push(fm, store, snapshot)
    fm.reset_calls()
    push(fm, store, snapshot)
    assert fm.write_call_count() == 0

    snapshot.batches[21] = dataclasses.replace(
        snapshot.batches[21], end_date=D(2027, 6, 30)
    )
    result = push(fm, store, snapshot)

    assert fm.call_counts["core_course_update_courses"] == 1
    assert fm.write_call_count() == 1
    assert result.phases["subjects"].updated == 2  # BA Arts' two courses
    arts = moodle_course(fm, "oec_subj_100_course_12")
    assert arts["enddate"] == utc(2027, 7, 1) - 60
    assert (
        moodle_course(fm, "oec_subj_100_course_10")["enddate"] == utc(2027, 8, 1) - 60
    )


def test_an_archived_batch_no_longer_dates_its_program_s_courses(fm, store):
    snapshot = dated()
    push(fm, store, snapshot)
    snapshot.batches[22] = dataclasses.replace(snapshot.batches[22], active=False)

    push(fm, store, snapshot)

    physics = moodle_course(fm, "oec_subj_100_course_10")
    assert physics["enddate"] == utc(2027, 7, 1) - 60


def test_drift_finds_a_summary_and_dates_edited_in_moodle_and_the_push_restores_them(
    fm, store
):
    snapshot = dated()
    push(fm, store, snapshot)
    course = moodle_course(fm, "oec_subj_100_course_10")
    pushed = dict(course)
    course.update(summary="<p>Edited in Moodle</p>", startdate=utc(2026, 1, 1))
    other = moodle_course(fm, "oec_subj_104_course_12")
    other["enddate"] = 0
    client = MoodleClient(BASE, "simtoken")
    fm.reset_calls()

    check = DriftCheck(client, store, PushSettings(), now=NOW)
    check.run(snapshot)

    assert fm.write_call_count() == 0
    assert {r["key"]: r["reason"] for r in check.drifted} == {
        "oec_subj_100_course_10": "changed in Moodle: summary, startdate",
        "oec_subj_104_course_12": "changed in Moodle: enddate",
    }
    push(fm, store, snapshot)
    course = moodle_course(fm, "oec_subj_100_course_10")
    for field in ("summary", "summaryformat", "startdate", "enddate"):
        assert course[field] == pushed[field], field
    assert (
        moodle_course(fm, "oec_subj_104_course_12")["enddate"] == utc(2027, 5, 29) - 60
    )
    fm.reset_calls()
    DriftCheck(client, store, PushSettings(), now=NOW).run(snapshot)
    push(fm, store, snapshot)
    assert fm.write_call_count() == 0


def with_contacts(snapshot=None):
    snapshot = snapshot or institution()
    snapshot.students[30] = dataclasses.replace(
        snapshot.students[30],
        city=" Lyon ",
        country="fr",
        phone="+33 4 77 00 00 00",
        address="1 rue de l'Église, Bât B",
    )
    snapshot.students[31] = dataclasses.replace(
        snapshot.students[31],
        phone="+44 (0)20 7946 0958 / 1234",  # 26 characters: compacted
    )
    snapshot.students[33] = dataclasses.replace(
        snapshot.students[33],
        phone="+44 20 7946 0958 extension 1234",  # too long even compacted
        city="   ",
    )
    return snapshot


def test_contact_data_reaches_moodle(fm, store):
    result = push(fm, store, with_contacts())

    ann = fm.find_user(idnumber="oec_student_30")
    assert {k: ann[k] for k in ("city", "country", "phone1", "address")} == {
        "city": "Lyon",
        "country": "FR",
        "phone1": "+33 4 77 00 00 00",
        "address": "1 rue de l'Église, Bât B",
    }
    bob = fm.find_user(idnumber="oec_student_31")
    assert bob["phone1"] == "+4402079460958/1234".replace("/", "")
    # a phone too long even compacted never costs the account
    dan = fm.find_user(idnumber="oec_student_33")
    assert dan is not None and dan["phone1"] == "" and dan["city"] == ""
    notes = records(result, "shortened")
    assert "without spaces and punctuation" in notes["oec_student_31"]
    assert notes["oec_student_33"].startswith("phone1 left out")
    # empty fields are not sent (Moodle keeps what it holds)
    (dan_sent,) = [
        r
        for r in sent(fm, "core_user_create_users", "users")
        if r["idnumber"] == "oec_student_33"
    ]
    assert not {"city", "country", "phone1", "address"} & set(dan_sent)


def test_changed_contact_data_updates_the_account_once(fm, store):
    snapshot = with_contacts()
    push(fm, store, snapshot)
    fm.reset_calls()
    push(fm, store, snapshot)
    assert fm.write_call_count() == 0

    snapshot.students[30] = dataclasses.replace(snapshot.students[30], city="Lille")
    push(fm, store, snapshot)

    # (the simulator records the parameters as Moodle receives them: text)
    assert sent(fm, "core_user_update_users", "users") == [
        {
            "id": str(fm.find_user(idnumber="oec_student_30")["id"]),
            "firstname": "Ann",
            "lastname": "Lee",
            "email": "ann@uni.test",
            "idnumber": "oec_student_30",
            "auth": "manual",
            "suspended": "0",
            "city": "Lille",
            "country": "FR",
            "phone1": "+33 4 77 00 00 00",
            "address": "1 rue de l'Église, Bât B",
        }
    ]


def test_drift_finds_contact_data_edited_in_moodle(fm, store):
    snapshot = with_contacts()
    push(fm, store, snapshot)
    ann = fm.find_user(idnumber="oec_student_30")
    fm.users[ann["id"]].update(city="Paris", address="elsewhere")
    client = MoodleClient(BASE, "simtoken")

    check = DriftCheck(client, store, PushSettings(), now=NOW)
    check.run(snapshot)

    assert {r["key"]: r["reason"] for r in check.drifted} == {
        "oec_student_30": "changed in Moodle: city, address"
    }
    push(fm, store, snapshot)
    ann = fm.find_user(idnumber="oec_student_30")
    assert (ann["city"], ann["address"]) == ("Lyon", "1 rue de l'Église, Bât B")
