"""Issue 15: reads that cost what changed, and look-ups bounded by our own
objects, on the simulator (with and without the companion plugin)."""

import collections

import pytest
import responses

from openeducat_moodle.moodle import MoodleClient, MoodleError, MoodleRecordError
from openeducat_moodle.moodle.catalogue import (
    FUNCTIONS,
    PLUGIN_ATTENDANCE_LOGS,
    PLUGIN_COMPLETIONS,
)
from openeducat_moodle.sync import attendance as att
from openeducat_moodle.sync.attendance import AttendanceSync, CourseRef
from openeducat_moodle.sync.push import PushSettings, PushSync
from openeducat_moodle.sync.reads import (
    CLOCK_MARGIN,
    DAY,
    CompletionReader,
    Student,
    Watermark,
)
from openeducat_moodle.sync.reconcile import DriftCheck, Importer
from openeducat_moodle.sync.store import MemoryStore
from tests.fake_moodle import FakeMoodle
from tests.fake_moodle.errors import moodle_exception
from tests.fake_moodle.fn_plugin import PLUGIN_VERSION
from tests.unit.test_attendance import MemorySide
from tests.unit.test_push import BASE, NOW, institution

T0 = 1_790_000_000
FOREIGN = 100_000


@pytest.fixture
def fm():
    fake = FakeMoodle(token="simtoken")
    fake.clock = lambda: T0
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.install(rsps, base_url=BASE)
        yield fake


def client(fm=None):
    moodle = MoodleClient(BASE, "simtoken")
    moodle.capabilities()
    if fm is not None:
        fm.reset_calls()
    return moodle


def error_code(call):
    with pytest.raises(MoodleRecordError) as caught:
        call()
    return caught.value.errorcode


# ---------------------------------------------------------------------------
# The catalogue and the client
# ---------------------------------------------------------------------------


def test_the_plugin_functions_are_optional_catalogue_entries():
    completions = FUNCTIONS[PLUGIN_COMPLETIONS]
    logs = FUNCTIONS[PLUGIN_ATTENDANCE_LOGS]
    assert (completions.feature, completions.optional) == ("completion", True)
    assert (logs.feature, logs.optional) == ("attendance", True)
    assert "report/completion:view" in completions.capabilities
    assert "mod/attendance:view" in logs.capabilities


def test_the_plugin_is_seen_in_the_site_info(fm):
    without = client()
    assert not without.has_function(PLUGIN_COMPLETIONS)
    assert without.capabilities().available["completion"]  # optional
    fm.install_plugin()
    moodle = client()
    assert moodle.has_function(PLUGIN_COMPLETIONS)
    assert moodle.has_function(PLUGIN_ATTENDANCE_LOGS)
    functions = moodle.get_site_info().functions
    assert functions[PLUGIN_COMPLETIONS] == PLUGIN_VERSION
    assert functions["core_webservice_get_site_info"] == fm.version


def test_completion_pages_are_chunked_and_followed(fm):
    fm.install_plugin()
    courses = [fm.add_course(f"C{n}", f"C{n}") for n in range(3)]
    moodle = client(fm)
    answers = list(moodle.course_completion_pages(courses, perpage=2))
    assert [len(a["completions"]) for a in answers] == [2, 1]
    assert [a["hasmore"] for a in answers] == [True, False]
    assert [int(p["page"]) for _n, p in fm.calls] == [0, 1]
    assert list(moodle.course_completion_pages([])) == []


def test_courses_by_ids_are_asked_in_chunks(fm):
    ids = [fm.add_course(f"C{n}", f"C{n}") for n in range(5)]
    moodle = client(fm)
    courses = moodle.get_courses_by_ids([*ids, 999], per_call=2)
    assert [c["id"] for c in courses] == ids
    assert fm.call_counts["core_course_get_courses_by_field"] == 3


def test_last_course_access_one_call_per_course(fm):
    courseid = fm.add_course("Algebra", "ALG")
    ann, ben = fm.add_user("ann"), fm.add_user("ben")
    fm.enrol(courseid, ann)
    fm.enrol(courseid, ben)
    fm.access_course(courseid, ann, T0 - 60)
    moodle = client(fm)
    access = moodle.get_course_last_access(courseid)
    assert {u: t for u, t in access.items() if u in (ann, ben)} == {
        ann: T0 - 60,
        ben: 0,
    }
    assert sum(fm.call_counts.values()) == 1


# ---------------------------------------------------------------------------
# The simulator's copy of the plugin (what the contract suite cannot reach)
# ---------------------------------------------------------------------------


def test_without_the_plugin_its_functions_do_not_exist(fm):
    moodle = MoodleClient(BASE, "simtoken")
    with pytest.raises(MoodleError) as caught:
        moodle.call(PLUGIN_COMPLETIONS, courseids=[1])
    # Moodle does not know it; the client says so (an access error: the
    # connector only calls it when the site lists it)
    assert caught.value.errorcode == "functionmissing"


@pytest.mark.parametrize(
    ("function", "params"),
    [
        (PLUGIN_COMPLETIONS, {"courseids": [2], "perpage": 0}),
        (PLUGIN_COMPLETIONS, {"courseids": [2], "perpage": 5001}),
        (PLUGIN_COMPLETIONS, {"courseids": [2], "page": -1}),
        (PLUGIN_COMPLETIONS, {"courseids": list(range(1, 1002))}),
        (PLUGIN_ATTENDANCE_LOGS, {}),
        (PLUGIN_ATTENDANCE_LOGS, {"courseids": [2], "since": -1}),
        (PLUGIN_ATTENDANCE_LOGS, {"attendanceids": list(range(1, 1002))}),
    ],
)
def test_the_plugin_refuses_what_it_refuses(fm, function, params):
    fm.install_plugin()
    moodle = client()
    assert error_code(lambda: moodle.call(function, **params)) == "invalidparameter"


def test_attendance_logs_without_mod_attendance(fm):
    fm.install_plugin()
    fm.disable_attendance(uninstall=True)
    moodle = client()
    code = error_code(lambda: moodle.call(PLUGIN_ATTENDANCE_LOGS, courseids=[2]))
    assert code == "attendancenotinstalled"


def test_completion_warnings_and_defaults(fm):
    fm.install_plugin()
    courseid = fm.add_course("Algebra", "ALG")
    answer = client().call(PLUGIN_COMPLETIONS, courseids=[1, courseid, 99999])
    assert answer["perpage"] == 1000 and answer["timenow"] == T0
    assert answer["allrows"] is True
    assert [(w["itemid"], w["warningcode"]) for w in answer["warnings"]] == [
        (99999, "1"),
        (1, "sitecourse"),
    ]
    assert answer["completions"] == [
        {
            "courseid": courseid,
            "userid": 0,
            "hascriteria": False,
            "completed": False,
            "timecompleted": None,
        }
    ]


def test_completion_changes_are_noted_as_the_plugin_notes_them(fm):
    fm.install_plugin()
    courseid = fm.add_course("Algebra", "ALG")
    fm.set_completion_criteria(courseid)
    ann, ben, cy = (fm.add_user(n) for n in ("ann", "ben", "cy"))
    for userid in (ann, ben):
        fm.enrol(courseid, userid)
    moodle = client()

    def since(when):
        answer = moodle.call(PLUGIN_COMPLETIONS, courseids=[courseid], since=when)
        return [(r["userid"], r["completed"]) for r in answer["completions"]]

    fm.clock = lambda: T0 + 10
    fm.complete_course(courseid, ann, when=T0 - DAY)  # dated earlier, noted now
    fm.clock = lambda: T0 + 20
    fm.enrol(courseid, cy)
    assert since(T0 + 5) == [(ann, True), (cy, False)]
    assert since(T0 + 15) == [(cy, False)]
    fm.clock = lambda: T0 + 30
    fm.set_completion_criteria(courseid, (1, 2))  # every user again
    assert since(T0 + 25) == [(ann, True), (ben, False), (cy, False)]


def test_a_status_written_through_the_api_is_a_change(fm):
    fm.install_plugin()
    courseid = fm.add_course("Algebra", "ALG")
    ann = fm.add_user("ann")
    fm.enrol(courseid, ann)
    attid = fm.add_attendance(courseid, "Attendance")
    session = fm.add_attendance_session(attid, T0 - 3600, 3600)
    moodle = client()
    present = next(
        s["id"]
        for s in fm.attendance_statuses.values()
        if s["attendanceid"] == attid and s["acronym"] == "P"
    )
    fm.clock = lambda: T0 + 50
    moodle.update_attendance_status(session, ann, present, str(present), 2)
    answer = moodle.call(PLUGIN_ATTENDANCE_LOGS, courseids=[courseid], since=T0 + 50)
    (row,) = answer["logs"]
    assert (row["timetaken"], row["lasttaken"], row["statusacronym"]) == (
        T0 + 50,
        T0 + 50,
        "P",
    )
    assert fm.attendance_sessions[session]["timemodified"] == T0 + 50
    later = moodle.call(PLUGIN_ATTENDANCE_LOGS, courseids=[courseid], since=T0 + 51)
    assert later["logs"] == []


# ---------------------------------------------------------------------------
# The watermark
# ---------------------------------------------------------------------------


def test_watermark_round_trip_and_defaults():
    mark = Watermark(since=5, full_at=7, plugin=True, retry={3: 4})
    assert Watermark.load(mark.dump()) == mark
    assert Watermark.load(None) == Watermark() == Watermark.load({"since": "x"})
    assert Watermark().full_due(T0, plugin=False)
    recent = Watermark(since=T0, full_at=T0, plugin=False)
    assert not recent.full_due(T0 + DAY - 1, plugin=False)
    assert recent.full_due(T0 + DAY, plugin=False)
    assert recent.full_due(T0 + 1, plugin=True)  # another clock
    assert Watermark(since=9, retry={3: 4}).groups([1, 3], full=False) == [
        (9, [1]),
        (4, [3]),
    ]
    following = mark.following(20, T0, False, True, {1: 5})
    assert (following.since, following.full_at, following.retry) == (20, 7, {1: 5})
    core = mark.following(None, T0, True, False, {})
    assert (core.since, core.full_at, core.retry) == (T0 - CLOCK_MARGIN, T0, {})


# ---------------------------------------------------------------------------
# Completion
# ---------------------------------------------------------------------------


class Rows:
    """The completion rows (what ``SyncCompletion._store`` upserts)."""

    def __init__(self):
        self.rows = {}
        self.stored = 0

    def __call__(self, answers):
        for key, _res_id, status in answers:
            self.rows[key] = status
        self.stored += len(answers)


class Site:
    """Three courses (Algebra and Biology with criteria, Chemistry without),
    four students in each; the connector's view of them."""

    def __init__(self, fm):
        self.fm = fm
        self.courses = [
            fm.add_course(name, name[:3].upper()) for name in ("Alg", "Bio", "Chem")
        ]
        self.users = [fm.add_user(f"s{n}") for n in range(4)]
        for courseid in self.courses:
            for userid in self.users:
                fm.enrol(courseid, userid)
        for courseid in self.courses[:2]:
            fm.set_completion_criteria(courseid)
        self.rows = Rows()
        self.mark = Watermark()

    def run(self, now):
        """One run at ``now``; returns its calls by function."""
        self.fm.clock = lambda: now
        moodle = client(self.fm)
        counts = collections.Counter()
        courses = [
            (
                c,
                [
                    Student(f"{u}@{c}", u, u, dict(self.rows.rows.get(f"{u}@{c}", {})))
                    for u in self.users
                ],
            )
            for c in self.courses
        ]
        reader = CompletionReader(moodle, self.mark, now, self.rows, counts, [])
        self.mark = reader.run(courses)
        self.counts = counts
        return dict(self.fm.call_counts)


STATUS = "core_completion_get_course_completion_status"
ACCESS = "core_enrol_get_enrolled_users"


def test_without_plugin_a_run_asks_only_the_active(fm):
    site = Site(fm)
    first = site.run(T0)  # the first run is the day's sweep
    assert first == {STATUS: 4 + 4 + 1}
    assert site.rows.rows[f"{site.users[0]}@{site.courses[2]}"] == {
        "completion": "no_criteria"
    }

    # Nobody went into a course: one call per course with criteria.
    quiet = site.run(T0 + 900)
    assert quiet == {ACCESS: 2}

    # Ann goes into Algebra and completes it: she alone is asked.
    ann, alg = site.users[0], site.courses[0]
    fm.access_course(alg, ann, T0 + 1000)
    fm.complete_course(alg, ann, T0 + 1000)
    active = site.run(T0 + 1800)
    assert active == {ACCESS: 2, STATUS: 1}
    assert site.rows.rows[f"{ann}@{alg}"]["completion"] == "complete"

    # A completion no activity shows (a teacher's mark): the daily sweep asks
    # every student not complete yet, and only them.
    fm.complete_course(site.courses[1], site.users[3])
    assert site.run(T0 + 2700) == {ACCESS: 2}
    sweep = site.run(T0 + DAY)
    assert sweep == {STATUS: 3 + 4 + 1}
    assert site.rows.rows[f"{site.users[3]}@{site.courses[1]}"]["completion"] == (
        "complete"
    )
    assert site.counts["complete"] == 2


def test_without_plugin_a_new_enrolment_is_asked_at_once(fm):
    site = Site(fm)
    site.run(T0)
    newcomer = fm.add_user("new")
    for courseid in site.courses:
        fm.enrol(courseid, newcomer)
    site.users.append(newcomer)
    calls = site.run(T0 + 900)
    # Algebra and Biology: the access call and the newcomer; Chemistry (no
    # criteria when last asked) records the newcomer so, without a call.
    assert calls == {ACCESS: 2, STATUS: 2}
    assert site.rows.rows[f"{newcomer}@{site.courses[2]}"] == {
        "completion": "no_criteria"
    }


def test_with_plugin_a_run_costs_a_call_per_page(fm):
    fm.install_plugin()
    site = Site(fm)
    assert site.run(T0) == {PLUGIN_COMPLETIONS: 1}
    assert len(site.rows.rows) == 12 and site.mark.since == T0
    assert site.mark.plugin and site.mark.full_at == T0

    stored = site.rows.stored
    assert site.run(T0 + 900) == {PLUGIN_COMPLETIONS: 1}
    assert site.rows.stored == stored  # nothing changed, nothing written

    ann, bio = site.users[0], site.courses[1]
    fm.clock = lambda: T0 + 1000
    fm.complete_course(bio, ann, when=T0 - DAY)
    assert site.run(T0 + 1800) == {PLUGIN_COMPLETIONS: 1}
    assert site.rows.stored == stored + 1
    assert site.rows.rows[f"{ann}@{bio}"] == {
        "completion": "complete",
        "completed_at": T0 - DAY,
    }
    assert [p["since"] for n, p in fm.calls if n == PLUGIN_COMPLETIONS] == [
        str(T0 + 900)
    ]
    site.run(T0 + DAY)
    assert [p["since"] for n, p in fm.calls if n == PLUGIN_COMPLETIONS] == ["0"]


def test_with_plugin_a_course_it_cannot_read_is_read_again(fm):
    fm.install_plugin()
    site = Site(fm)
    site.run(T0)
    gone = fm.courses.pop(site.courses[2])  # Moodle answers a warning for it
    site.run(T0 + 900)
    assert site.mark.retry == {site.courses[2]: T0}
    assert site.counts["error"] == 1
    fm.courses[site.courses[2]] = gone
    calls = site.run(T0 + 1800)
    assert calls == {PLUGIN_COMPLETIONS: 2}  # the others, and it from T0
    assert site.mark.retry == {}


def test_the_plugin_installed_later_starts_with_a_whole_read(fm):
    site = Site(fm)
    site.run(T0)
    fm.install_plugin()
    site.run(T0 + 900)
    (params,) = [p for n, p in fm.calls if n == PLUGIN_COMPLETIONS]
    assert params["since"] == "0"


# ---------------------------------------------------------------------------
# Attendance
# ---------------------------------------------------------------------------


class DigestSide(MemorySide):
    """The in-memory OpenEduCat, keeping each session's digest as pulled."""

    def __init__(self, known):
        super().__init__(known)
        self.digests = {}
        self.applied = 0

    def moodle_unchanged(self, course, session):
        digest = att.session_digest(session)
        return bool(digest) and self.digests.get(session["id"]) == digest

    def apply(self, course, session, pulled, agreed):
        self.applied += 1
        done = super().apply(course, session, pulled, agreed)
        self.digests[session["id"]] = att.session_digest(session)
        return done


@pytest.fixture
def register(fm):
    """Algebra with an activity, two taken sessions, three students."""
    courseid = fm.add_course("Algebra", "ALG", idnumber="oec_subj_1_course_2")
    users = [fm.add_user(f"s{n}") for n in range(3)]
    for userid in users:
        fm.enrol(courseid, userid)
    attid = fm.add_attendance(courseid, "Attendance")
    sessions = [fm.add_attendance_session(attid, T0 - n * DAY, 3600) for n in (2, 1)]
    for session in sessions:
        for userid, acronym in zip(users, "PAL", strict=True):
            fm.set_attendance_status_by_acronym(session, userid, acronym)
    return {
        "course": CourseRef(courseid, "oec_subj_1_course_2", [attid]),
        "users": users,
        "attid": attid,
        "sessions": sessions,
    }


def pull(fm, side, course, mark, now):
    fm.clock = lambda: now
    moodle = client(fm)
    caps = moodle.capabilities()
    fm.reset_calls()
    sync = AttendanceSync(
        moodle,
        side,
        "moodle",
        can_discover=att.can_discover(caps),
        mark=mark,
        logs=moodle.has_function(PLUGIN_ATTENDANCE_LOGS),
        now=now,
    )
    result = sync.run(
        [CourseRef(course.courseid, course.key, list(course.attendance_ids))]
    )
    return result, sync.next_mark, dict(fm.call_counts)


def test_without_plugin_an_unchanged_session_is_left_alone(fm, register):
    side = DigestSide(register["users"])
    course = register["course"]
    result, mark, calls = pull(fm, side, course, Watermark(), T0)
    assert result.created == 6 and side.applied == 2
    assert calls == {"core_course_get_contents": 1, "mod_attendance_get_sessions": 1}

    # Nothing new: one call per activity, nothing pulled, all unchanged.
    result, mark, calls = pull(fm, side, course, mark, T0 + 1800)
    assert calls == {"mod_attendance_get_sessions": 1}
    assert (result.sessions, result.unchanged, side.applied) == (2, 6, 2)

    # One status changed: its session alone is pulled.
    second = register["sessions"][1]
    fm.set_attendance_status_by_acronym(second, register["users"][0], "E")
    result, mark, _calls = pull(fm, side, course, mark, T0 + 3600)
    assert (result.updated, side.applied) == (1, 3)
    assert side.lines[second][register["users"][0]][0] == "E"

    # The day's whole read pulls (and lists) everything again.
    result, mark, calls = pull(fm, side, course, mark, T0 + DAY)
    assert side.applied == 5 and calls["core_course_get_contents"] == 1


def test_with_plugin_nothing_new_costs_one_call(fm, register):
    fm.install_plugin()
    side = DigestSide(register["users"])
    course = register["course"]
    result, mark, calls = pull(fm, side, course, Watermark(), T0 + 60)
    assert calls == {PLUGIN_ATTENDANCE_LOGS: 1}
    assert result.created == 6 and mark.since == T0 + 60 and mark.plugin

    result, mark, calls = pull(fm, side, course, mark, T0 + 1800)
    assert calls == {PLUGIN_ATTENDANCE_LOGS: 1}
    assert (result.sessions, result.created, result.updated) == (0, 0, 0)

    # A status written since: its session's records come, the change pulled.
    first = register["sessions"][0]
    fm.clock = lambda: T0 + 2000
    fm.set_attendance_status_by_acronym(first, register["users"][1], "E")
    result, mark, calls = pull(fm, side, course, mark, T0 + 3600)
    assert calls == {PLUGIN_ATTENDANCE_LOGS: 1}
    assert (result.sessions, result.updated, result.unchanged) == (1, 1, 2)
    assert side.lines[first][register["users"][1]][0] == "E"


def test_with_plugin_a_teachers_new_activity_comes_with_its_records(fm, register):
    fm.install_plugin()
    side = DigestSide(register["users"])
    course = register["course"]
    _result, mark, _calls = pull(fm, side, course, Watermark(), T0 + 60)
    fm.clock = lambda: T0 + 100
    other = fm.add_attendance(course.courseid, "Teacher's roll call")
    session = fm.add_attendance_session(other, T0, 3600)
    fm.set_attendance_status_by_acronym(session, register["users"][2], "P")
    result, _mark, calls = pull(fm, side, course, mark, T0 + 900)
    assert calls == {PLUGIN_ATTENDANCE_LOGS: 1}  # no listing needed
    assert result.attendances_found == 1
    assert side.attendance[course.courseid] == [other]
    assert side.lines[session] == {register["users"][2]: ("P", T0)}


def test_sessions_from_logs_are_partial_sessions(fm, register):
    fm.install_plugin()
    logs = client().call(
        PLUGIN_ATTENDANCE_LOGS, courseids=[register["course"].courseid]
    )
    sessions = att.sessions_from_logs(logs["logs"])
    assert [s["id"] for s in sessions] == register["sessions"]
    assert att.moodle_statuses(sessions[0]) == dict(
        zip(register["users"], "PAL", strict=True)
    )
    assert att.session_digest(sessions[0]) is None
    full = client().get_attendance_sessions(register["attid"])
    assert att.session_digest(full[0]) == att.session_digest(dict(full[0]))


# ---------------------------------------------------------------------------
# Look-ups bounded by our own objects
# ---------------------------------------------------------------------------


def seed_foreign_courses(fm, count=FOREIGN):
    """``count`` courses that are not ours, straight into the simulator."""
    template = fm._course_defaults(
        0, {"fullname": "", "shortname": "", "categoryid": 1}
    )
    first = 1_000_000
    for courseid in range(first, first + count):
        fm.courses[courseid] = {
            **template,
            "id": courseid,
            "shortname": f"F{courseid}",
            "fullname": f"Foreign {courseid}",
            "idnumber": f"foreign_{courseid}",
        }


class Counting(MoodleClient):
    """A client that counts the courses Moodle returned to it."""

    returned = 0

    def get_courses_by_field(self, field="", value=""):
        courses = super().get_courses_by_field(field, value)
        Counting.returned += len(courses)
        return courses


def counting(fm):
    Counting.returned = 0
    fm.reset_calls()
    return Counting(BASE, "simtoken")


def test_course_look_ups_are_bounded_by_our_objects(fm):
    seed_foreign_courses(fm)
    store = MemoryStore()
    PushSync(counting(fm), store, PushSettings(), now=NOW).run(institution())
    ours = [c for c in fm.courses.values() if c["idnumber"].startswith("oec_")]
    assert len(ours) == 7
    # The push made our categories: no course to look for in them.
    assert Counting.returned == 0
    assert fm.call_counts["core_course_get_courses_by_field"] == 0

    # The mapping rows are lost: the push finds its courses again, in its
    # own categories, and only them.
    for key in [k for (kind, k) in store.rows if kind == "course"]:
        store.delete([store.get("course", key)])
    courses = len(fm.courses)
    PushSync(counting(fm), store, PushSettings(), now=NOW).run(institution())
    assert len(fm.courses) == courses  # adopted, not created again
    assert Counting.returned == 7
    assert fm.call_counts["core_course_get_courses_by_field"] == 3

    check = DriftCheck(counting(fm), store, PushSettings(), now=NOW)
    check.run(institution())
    assert check.deleted == [] and Counting.returned == 7
    assert fm.call_counts["core_course_get_courses_by_field"] == 1

    importer = Importer(counting(fm), MemoryStore(), PushSettings(), now=NOW)
    importer.run(institution())
    assert importer.matched["course"] == 7 and Counting.returned == 7


def test_a_course_of_ours_moved_elsewhere_is_adopted_on_retry(fm):
    store = MemoryStore()
    PushSync(client(), store, PushSettings(), now=NOW).run(institution())
    key = "oec_subj_100_course_10"
    fm.courses[fm.find_course(idnumber=key)["id"]]["categoryid"] = 1
    store.delete([store.get("course", key)])
    courses = len(fm.courses)
    first = PushSync(client(), store, PushSettings(), now=NOW).run(institution())
    assert first.phases["subjects"].failed == 1
    later = NOW.replace(hour=NOW.hour + 1)
    again = PushSync(client(fm), store, PushSettings(), now=later)
    result = again.run(institution())
    assert result.phases["subjects"].adopted == 1
    assert len(fm.courses) == courses
    assert store.get("course", key).moodle_id == fm.find_course(idnumber=key)["id"]
    asked = [p for n, p in fm.calls if n == "core_course_get_courses_by_field"]
    assert {"field": "idnumber", "value": key} in asked


def test_with_plugin_an_attendance_course_it_cannot_read_is_read_again(fm, register):
    fm.install_plugin()
    side = DigestSide(register["users"])
    moodle = client(fm)
    gone = CourseRef(987654, "oec_subj_9_course_2", [])
    sync = AttendanceSync(
        moodle,
        side,
        "moodle",
        mark=Watermark(),
        logs=True,
        now=T0 + 60,
    )
    result = sync.run([register["course"], gone])
    # the warning is said once, though each page repeats it
    assert result.failed == 1 and len(result.errors) == 1
    assert result.created == 6
    assert sync.next_mark.retry == {987654: 0}
    # the next run reads it again from where it was not read
    sync = AttendanceSync(
        moodle, side, "moodle", mark=sync.next_mark, logs=True, now=T0 + 900
    )
    fm.reset_calls()
    sync.run([register["course"], gone])
    asked = [p for n, p in fm.calls if n == PLUGIN_ATTENDANCE_LOGS]
    assert [(p["courseids"], p["since"]) for p in asked] == [
        ([str(register["course"].courseid)], str(T0)),  # Moodle's clock
        (["987654"], "0"),
    ]


def test_a_plugin_read_moodle_refuses_is_an_error_not_a_stop(fm, register):
    fm.install_plugin()
    site = Site(fm)

    def refusing(**_params):
        raise moodle_exception("dmlwriteexception", "Error writing to database")

    fm.ws_local_openeducat_get_course_completions = refusing
    fm.ws_local_openeducat_get_attendance_logs = refusing
    site.run(T0)
    assert site.counts["error"] == 1 and site.rows.rows == {}
    assert site.mark.retry == dict.fromkeys(site.courses, 0)
    side = DigestSide(register["users"])
    sync = AttendanceSync(client(), side, "moodle", mark=Watermark(), logs=True)
    result = sync.run([register["course"]])
    assert result.failed == 1 and PLUGIN_ATTENDANCE_LOGS in result.errors[0]
    assert sync.next_mark.retry == {register["course"].courseid: 0}


def test_a_sweep_that_failed_part_way_goes_on_where_it_stopped():
    """Without the plugin, a whole read that meets an outage keeps its answers
    and the next run asks only the students not answered since the sweep
    began (before, every run started again: under steady faults a sweep of
    thousands of calls could never finish; found by the Odoo-mode chaos run)."""
    from openeducat_moodle.sync.reads import CompletionReader, Student, Watermark

    asked = []

    class Client:
        site_functions = set()

        def has_function(self, name):
            return False

        def get_course_completion_status(self, courseid, userid):
            asked.append(userid)
            return {"completed": False, "completions": [{"timecompleted": 0}]}

    started = 1_800_000_000
    mark = Watermark(full_at=0, sweep_from=started)
    students = [
        Student("a@c", 1, 11, {"completion": "incomplete"}, started + 5),  # done
        Student("b@c", 2, 12, {"completion": "incomplete"}, started - 86_400),
        Student("c@c", 3, 13, {}, 0),
    ]
    stored = []
    reader = CompletionReader(
        Client(), mark, started + 600, stored.extend, collections.Counter(), []
    )
    assert reader.full and reader.sweep_from == started
    reader.run([(7, students)])
    assert asked == [12, 13]
    assert [key for key, _res, _status in stored] == ["b@c", "c@c"]
