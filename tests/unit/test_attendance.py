"""The attendance sync core against the Moodle simulator: what Moodle and an
in-memory OpenEduCat end up holding, in each direction."""

import contextlib
import copy
import datetime

import pytest
import responses

from openeducat_moodle.moodle import MoodleClient
from openeducat_moodle.sync import attendance as att
from openeducat_moodle.sync.attendance import (
    AttendanceSide,
    AttendanceSync,
    CourseRef,
    SheetRef,
)
from tests.fake_moodle import FakeMoodle
from tests.fake_moodle.schema import FUNCTIONS as FAKE_KINDS

BASE = "https://moodle.test"
T0 = 1_790_000_000  # 2026-09-21
DAY = datetime.date(2026, 9, 21)


class Refused(Exception):
    """OpenEduCat refuses a write (the Odoo side's UserError and the like)."""


class MemorySide(AttendanceSide):
    """OpenEduCat in memory: sheets keyed by Moodle session (or by their own
    ref while unlinked), lines ``{userid: (acronym, time)}``.

    A course that fails is undone like a savepoint: lines, baselines and
    sheets go back to what they were; the activities recorded
    (``attendance``, ``recorded``) are kept, as the Odoo side commits them
    apart. ``refuse`` names course ids whose writes OpenEduCat refuses."""

    refusals = (Refused,)

    def __init__(self, known, clock=lambda: T0):
        self.known = set(known)
        self.clock = clock
        self.lines = {}  # sessionid -> {userid: (acronym, time)}
        self.baselines = {}  # sessionid -> {userid: acronym}
        self.unlinked = {}  # ref -> SheetRef
        self.attendance = {}  # courseid -> [attendanceid]
        self.recorded = {}  # courseid -> the activity the connector created
        self.no_batch = set()
        self.refuse = set()
        self.writes = 0
        self.scopes = []

    @contextlib.contextmanager
    def course_scope(self, course):
        self.scopes.append(course.courseid)
        kept = copy.deepcopy((self.lines, self.baselines, self.unlinked, self.writes))
        try:
            yield
        except BaseException:
            self.lines, self.baselines, self.unlinked, self.writes = kept
            raise

    def recorded_attendance(self, course):
        return self.recorded.get(course.courseid)

    def known_users(self):
        return self.known

    def statuses(self, course, session):
        return dict(self.lines.get(session["id"], {}))

    def baseline(self, course, session):
        return dict(self.baselines.get(session["id"], {}))

    def apply(self, course, session, pulled, agreed):
        lines = self.lines.setdefault(session["id"], {})
        if pulled and course.courseid in self.refuse:
            lines.update({u: ("?", 0) for u in pulled})  # half done, then refused
            raise Refused("OpenEduCat refuses the line")
        created = updated = skipped = 0
        for userid, acronym in pulled.items():
            if userid in self.no_batch:
                skipped += 1
                continue
            if userid in lines:
                updated += 1
            else:
                created += 1
            lines[userid] = (acronym, self.clock())
            self.writes += 1
        base = self.baselines.setdefault(session["id"], {})
        base.update({u: a for u, a in agreed.items() if u not in self.no_batch})
        return created, updated, skipped

    def unlinked_sheets(self, course):
        return list(self.unlinked.values())

    def link(self, course, sheet, session):
        self.unlinked.pop(sheet.ref)
        self.lines[session["id"]] = dict(sheet.statuses)

    def record_attendance(self, course, attendanceid):
        self.attendance.setdefault(course.courseid, []).append(attendanceid)
        self.recorded[course.courseid] = attendanceid

    def record_attendances(self, course, attendanceids):
        self.attendance.setdefault(course.courseid, []).extend(attendanceids)

    def set(self, sessionid, userid, acronym, when):
        self.lines.setdefault(sessionid, {})[userid] = (acronym, when)


@pytest.fixture
def fm():
    fake = FakeMoodle(token="simtoken")
    fake.clock = lambda: T0
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.install(rsps, base_url=BASE)
        yield fake


@pytest.fixture
def site(fm):
    """A course with four mapped students, one unmapped user, an attendance
    activity and one session."""
    courseid = fm.add_course("Algebra", "ALG_PRG", idnumber="oec_subj_1_course_2")
    users = [fm.add_user(f"s{i}", email=f"s{i}@uni.test") for i in range(5)]
    for userid in users:
        fm.enrol(courseid, userid)
    attid = fm.add_attendance(courseid, "Attendance")
    sessionid = fm.add_attendance_session(attid, T0, 3600)
    fm.reset_calls()
    return {
        "course": CourseRef(courseid, "oec_subj_1_course_2", [attid]),
        "users": users,
        "known": users[:4],
        "attid": attid,
        "session": sessionid,
    }


def client(fm):
    moodle = MoodleClient(BASE, "simtoken")
    moodle.capabilities()
    return moodle


def run(fm, side, course, direction, **kw):
    moodle = client(fm)
    caps = moodle.capabilities()
    fm.reset_calls()
    sync = AttendanceSync(
        moodle,
        side,
        direction,
        takenby=caps.site.userid,
        can_create=att.can_create(caps),
        **kw,
    )
    return sync.run([course])


def moodle_log(fm, sessionid):
    """``{userid: acronym}`` as Moodle holds it."""
    statuses = {s["id"]: s["acronym"] for s in fm.attendance_statuses.values()}
    return {
        log["studentid"]: statuses[log["statusid"]]
        for log in fm.attendance_logs.values()
        if log["sessionid"] == sessionid
    }


def updates(fm):
    return [
        (int(p["sessionid"]), int(p["studentid"]), int(p["statusid"]))
        for name, p in fm.calls
        if name.endswith("_update_user_status")
    ]


# ---------------------------------------------------------------- decisions


def test_status_mapping_sets_all_four_flags():
    assert att.flags_for("P") == {
        "present": True,
        "absent": False,
        "late": False,
        "excused": False,
    }
    assert att.flags_for("A") == {
        "present": False,
        "absent": True,
        "late": False,
        "excused": False,
    }
    assert att.flags_for("L")["late"] and not att.flags_for("L")["present"]
    assert att.flags_for("E")["excused"] and sum(att.flags_for("E").values()) == 1
    assert att.flags_for("X") is None


def test_line_flags_to_acronym_prefer_the_non_default_flag():
    # present=True is OpenEduCat's default and only an onchange clears it.
    assert att.acronym_for({"present": True, "absent": True}) == "A"
    assert att.acronym_for({"present": True, "late": True}) == "L"
    assert att.acronym_for({"present": True}) == "P"
    assert att.acronym_for({"excused": True}) == "E"
    assert att.acronym_for({}) is None


@pytest.mark.parametrize(
    "direction,oec,moodle,base,times,expected",
    [
        ("moodle", "P", "A", None, (0, 0), ("pull", False)),
        ("moodle", "P", None, None, (0, 0), ("nothing", False)),
        ("oec", "P", "A", None, (0, 0), ("push", False)),
        ("oec", None, "A", None, (0, 0), ("nothing", False)),
        ("both", "A", "A", "P", (0, 0), ("same", False)),
        ("both", "A", "P", "P", (1, 9), ("push", False)),  # only OEC changed
        ("both", "P", "L", "P", (9, 1), ("pull", False)),  # only Moodle changed
        ("both", "A", "L", "P", (9, 1), ("push", True)),  # both: OEC later
        ("both", "A", "L", "P", (1, 9), ("pull", True)),  # both: Moodle later
        ("both", "A", "L", "P", (5, 5), ("pull", True)),  # tie: Moodle
        ("both", "A", "L", None, (9, 1), ("push", True)),  # no baseline
        ("both", None, "L", None, (9, 1), ("pull", False)),
        ("both", "A", None, None, (1, 9), ("push", False)),
        ("both", "A", "X", "A", (9, 1), ("custom", False)),
        ("oec", "A", "X", None, (9, 1), ("custom", False)),
    ],
)
def test_decide(direction, oec, moodle, base, times, expected):
    assert att.decide(direction, oec, moodle, base, *times) == expected


def test_register_code_fits_sixteen_characters_and_is_deterministic():
    code = att.register_code(1, 42, 7, DAY)
    assert code == "M1.16.7.260921"
    assert att.register_code(1, 42, 7, DAY) == code
    assert att.register_code(1, 42, 8, DAY) != code
    big = att.register_code(10**9, 10**9, 10**9, DAY)
    assert len(big) == 16
    assert big != att.register_code(10**9, 10**9, 10**9 + 1, DAY)
    assert len(att.register_name("A-VERY-LONG-SUBJECT-CODE", DAY)) == 16


def test_session_dates_follow_the_institution_time_zone():
    late = {"sessdate": 1_790_031_600}  # 2026-09-21 23:00 UTC
    assert att.session_date(late) == DAY
    assert att.session_date(late, "Australia/Sydney") == DAY + datetime.timedelta(1)
    noon = att.session_time(DAY, "Europe/Paris")
    assert att.session_date({"sessdate": noon}, "Europe/Paris") == DAY


# ----------------------------------------------------------- prerequisites


def test_prerequisites_current_legacy_and_missing(fm):
    moodle = MoodleClient(BASE, "simtoken")
    ok, reason = att.moodle_prerequisites(moodle.capabilities())
    assert ok and "mod_attendance" in reason
    assert att.can_create(moodle.capabilities())

    fm.enable_legacy_attendance(only=True)
    caps = moodle.capabilities()
    assert att.moodle_prerequisites(caps)[0]
    assert not att.can_create(caps)
    assert moodle.aliases["mod_attendance_get_sessions"] == (
        "mod_wsattendance_get_sessions"
    )

    fm.disable_attendance(uninstall=True)
    ok, reason = att.moodle_prerequisites(moodle.capabilities())
    assert not ok and "mod_attendance_get_sessions" in reason

    fm.service_functions |= {"mod_attendance_get_session"}
    fm.registered_functions |= {"mod_attendance_get_session"}
    ok, reason = att.moodle_prerequisites(moodle.capabilities())
    assert not ok and "mod_attendance_update_user_status" in reason


# ---------------------------------------------------------------- moodle → oec


def test_pull_fills_openeducat_and_writes_nothing_to_moodle(fm, site):
    s0, s1, s2, s3, stranger = site["users"]
    sid = site["session"]
    for userid, acronym in ((s0, "P"), (s1, "A"), (s2, "L"), (s3, "E")):
        fm.set_attendance_status_by_acronym(sid, userid, acronym)
    fm.set_attendance_status_by_acronym(sid, stranger, "P")
    side = MemorySide(site["known"])

    result = run(fm, side, site["course"], "moodle")

    assert {u: a for u, (a, _t) in side.lines[sid].items()} == {
        s0: "P",
        s1: "A",
        s2: "L",
        s3: "E",
    }
    assert (result.created, result.updated, result.unmapped_users) == (4, 0, 1)
    assert fm.write_call_count() == 0
    assert fm.call_counts["mod_attendance_get_sessions"] == 1

    # A rerun changes nothing on either side.
    writes = side.writes
    result = run(fm, side, site["course"], "moodle")
    assert (result.created, result.updated, result.unchanged) == (0, 0, 4)
    assert side.writes == writes
    assert fm.write_call_count() == 0

    # A change in Moodle updates the one line.
    fm.set_attendance_status_by_acronym(sid, s0, "L")
    result = run(fm, side, site["course"], "moodle")
    assert (result.created, result.updated, result.unchanged) == (0, 1, 3)
    assert side.lines[sid][s0][0] == "L"


def test_pull_skips_and_counts_a_custom_status(fm, site):
    s0, s1 = site["users"][:2]
    fm.add_attendance_status(site["attid"], "R", "Remote", 2.0)
    fm.set_attendance_status_by_acronym(site["session"], s0, "R")
    fm.set_attendance_status_by_acronym(site["session"], s1, "P")
    side = MemorySide(site["known"])
    result = run(fm, side, site["course"], "moodle")
    assert result.custom == 1
    assert {u: a for u, (a, _t) in side.lines[site["session"]].items()} == {s1: "P"}
    assert s0 not in side.baselines[site["session"]]


def test_pull_counts_students_without_batch(fm, site):
    s0, s1 = site["users"][:2]
    fm.set_attendance_status_by_acronym(site["session"], s0, "P")
    fm.set_attendance_status_by_acronym(site["session"], s1, "P")
    side = MemorySide(site["known"])
    side.no_batch = {s1}
    result = run(fm, side, site["course"], "moodle")
    assert (result.created, result.no_batch) == (1, 1)


def test_pull_with_legacy_names_only(fm, site):
    fm.enable_legacy_attendance(only=True)
    s0 = site["users"][0]
    fm.set_attendance_status_by_acronym(site["session"], s0, "A")
    side = MemorySide(site["known"])
    run(fm, side, site["course"], "moodle")
    assert side.lines[site["session"]][s0][0] == "A"
    assert fm.call_counts["mod_wsattendance_get_sessions"] == 1
    assert fm.call_counts["mod_attendance_get_sessions"] == 0


def test_dry_run_plans_without_writing(fm, site):
    s0 = site["users"][0]
    fm.set_attendance_status_by_acronym(site["session"], s0, "A")
    side = MemorySide(site["known"])
    side.set(site["session"], site["users"][1], "L", T0)
    side.unlinked[7] = SheetRef(7, DAY, {s0: ("P", T0)})
    result = run(fm, side, site["course"], "both", dry_run=True)
    assert fm.write_call_count() == 0
    assert side.writes == 0
    assert ("pull", site["session"], s0, "A") in result.planned
    assert ("push", site["session"], site["users"][1], "L") in result.planned
    assert ("add_session", site["course"].key, 7) in result.planned


# ---------------------------------------------------------------- oec → moodle


def test_push_creates_activity_and_session_then_one_call_per_line(fm, site):
    s0, s1, s2 = site["users"][:3]
    course = CourseRef(site["course"].courseid, site["course"].key, [])
    side = MemorySide(site["known"])
    side.unlinked[11] = SheetRef(11, DAY, {s0: ("P", T0), s1: ("A", T0), s2: ("E", T0)})

    result = run(fm, side, course, "oec")

    assert fm.call_counts["mod_attendance_add_attendance"] == 1
    assert fm.call_counts["mod_attendance_add_session"] == 1
    attid = side.attendance[course.courseid][0]
    assert fm.attendances[attid]["courseid"] == course.courseid
    (session,) = [
        s for s in fm.attendance_sessions.values() if s["attendanceid"] == attid
    ]
    assert session["description"] == "oec_attendance_sheet_11"
    assert att.session_date(session) == DAY
    assert moodle_log(fm, session["id"]) == {s0: "P", s1: "A", s2: "E"}
    assert len(updates(fm)) == 3
    assert result.pushed == 3 and result.sessions_created == 1
    # statusset is the session's status ids, takenby the token's user
    (_name, params) = next(c for c in fm.calls if c[0].endswith("update_user_status"))
    ids = sorted(
        s["id"] for s in fm.attendance_statuses.values() if s["attendanceid"] == attid
    )
    assert sorted(int(i) for i in params["statusset"].split(",")) == ids
    assert int(params["takenbyid"]) == fm.ws_userid

    # Rerun: nothing written to Moodle, nothing to OpenEduCat.
    course.attendance_ids = side.attendance[course.courseid]
    result = run(fm, side, course, "oec")
    assert fm.write_call_count() == 0
    assert result.unchanged == 3 and side.writes == 0

    # One line changes: one call.
    side.set(session["id"], s1, "L", T0 + 60)
    result = run(fm, side, course, "oec")
    assert updates(fm) == [(session["id"], s1, fm_status(fm, attid, "L"))]
    assert moodle_log(fm, session["id"])[s1] == "L"


def fm_status(fm, attid, acronym):
    return next(
        s["id"]
        for s in fm.attendance_statuses.values()
        if s["attendanceid"] == attid and s["acronym"] == acronym
    )


def test_push_ignores_moodle_changes_and_skips_custom(fm, site):
    s0, s1 = site["users"][:2]
    sid = site["session"]
    fm.add_attendance_status(site["attid"], "R", "Remote", 2.0)
    fm.set_attendance_status_by_acronym(sid, s0, "A")
    fm.set_attendance_status_by_acronym(sid, s1, "R")
    side = MemorySide(site["known"])
    side.set(sid, s0, "P", T0)
    side.set(sid, s1, "P", T0)
    result = run(fm, side, site["course"], "oec")
    assert moodle_log(fm, sid) == {s0: "P", s1: "R"}
    assert (result.pushed, result.custom, result.created) == (1, 1, 0)
    assert side.lines[sid][s0][0] == "P"


def test_push_adopts_the_session_of_an_interrupted_run(fm, site):
    s0 = site["users"][0]
    left = fm.add_attendance_session(
        site["attid"], T0, 3600, description="oec_attendance_sheet_5"
    )
    side = MemorySide(site["known"])
    side.unlinked[5] = SheetRef(5, DAY, {s0: ("A", T0)})
    result = run(fm, side, site["course"], "oec")
    assert fm.call_counts["mod_attendance_add_session"] == 0
    assert result.sessions_created == 0
    assert moodle_log(fm, left) == {s0: "A"}


def test_push_on_a_legacy_site_cannot_create_sessions(fm, site):
    fm.enable_legacy_attendance(only=True)
    side = MemorySide(site["known"])
    side.unlinked[5] = SheetRef(5, DAY, {site["users"][0]: ("A", T0)})
    side.set(site["session"], site["users"][1], "L", T0)
    result = run(fm, side, site["course"], "oec")
    assert result.no_session == 1
    assert fm.call_counts["mod_wsattendance_update_user_status"] == 1
    assert moodle_log(fm, site["session"]) == {site["users"][1]: "L"}


def test_a_record_error_fails_the_line_not_the_run(fm, site):
    s0, s1 = site["users"][:2]
    side = MemorySide(site["known"])
    side.set(site["session"], s0, "A", T0)
    side.set(site["session"], s1, "L", T0)
    real = fm.ws_mod_attendance_update_user_status

    def flaky(sessionid, studentid, **kw):
        if studentid == s0:
            from tests.fake_moodle.errors import invalid_parameter

            raise invalid_parameter("no")
        return real(sessionid=sessionid, studentid=studentid, **kw)

    fm.ws_mod_attendance_update_user_status = flaky
    result = run(fm, side, site["course"], "oec")
    assert result.failed == 1 and result.pushed == 1
    assert moodle_log(fm, site["session"]) == {s1: "L"}
    assert s0 not in side.baselines[site["session"]]


# ------------------------------------------------------------------------ both


def test_both_moves_each_sides_changes_to_the_other(fm, site):
    s0, s1, s2 = site["users"][:3]
    sid = site["session"]
    fm.set_attendance_status_by_acronym(sid, s0, "P")
    side = MemorySide(site["known"])
    side.set(sid, s1, "A", T0)

    result = run(fm, side, site["course"], "both")
    assert moodle_log(fm, sid) == {s0: "P", s1: "A"}
    assert {u: a for u, (a, _t) in side.lines[sid].items()} == {s0: "P", s1: "A"}
    assert (result.pushed, result.created, result.conflicts) == (1, 1, 0)

    result = run(fm, side, site["course"], "both")
    assert fm.write_call_count() == 0 and result.unchanged == 2

    # Each side changes a different student: no conflict, both move.
    fm.clock = lambda: T0 + 100
    fm.set_attendance_status_by_acronym(sid, s0, "L")
    side.set(sid, s1, "E", T0 + 50)  # earlier than Moodle's lasttaken
    side.set(sid, s2, "P", T0 + 10)
    result = run(fm, side, site["course"], "both")
    assert moodle_log(fm, sid) == {s0: "L", s1: "E", s2: "P"}
    assert side.lines[sid][s0][0] == "L"
    assert result.conflicts == 0


@pytest.mark.parametrize("oec_later", [True, False])
def test_both_the_later_write_wins_a_conflict(fm, site, oec_later):
    s0 = site["users"][0]
    sid = site["session"]
    fm.set_attendance_status_by_acronym(sid, s0, "P")
    side = MemorySide(site["known"])
    run(fm, side, site["course"], "both")
    assert side.baselines[sid] == {s0: "P"}

    fm.clock = lambda: T0 + 100
    fm.set_attendance_status_by_acronym(sid, s0, "L")  # Moodle at T0+100
    side.set(sid, s0, "A", T0 + (200 if oec_later else 50))
    result = run(fm, side, site["course"], "both")

    winner = "A" if oec_later else "L"
    assert result.conflicts == 1
    assert moodle_log(fm, sid) == {s0: winner}
    assert side.lines[sid][s0][0] == winner
    assert len(updates(fm)) == (1 if oec_later else 0)
    # and it is settled: the next run changes nothing
    result = run(fm, side, site["course"], "both")
    assert fm.write_call_count() == 0 and result.conflicts == 0


# ------------------------------------------------- activities added in Moodle


def discover_run(fm, side, course, direction="moodle", **kw):
    """A run on a site whose service may list a course's activities."""
    caps = client(fm).capabilities()
    return run(fm, side, course, direction, can_discover=att.can_discover(caps), **kw)


@pytest.fixture
def teacher_site(fm, site):
    """The site's course also holds an attendance activity a teacher added in
    Moodle (in another section), with a taken session; the connector only
    knows its own activity."""
    courseid = site["course"].courseid
    teacher_att = fm.add_attendance(courseid, "Teacher's roll call")
    fm.set_module(fm.attendances[teacher_att]["cmid"], section=2)
    fm.add_assignment(courseid, "Essay")  # not attendance: ignored
    session = fm.add_attendance_session(teacher_att, T0 + 7200, 3600)
    s0, s1 = site["users"][:2]
    fm.set_attendance_status_by_acronym(session, s0, "A")
    fm.set_attendance_status_by_acronym(session, s1, "L")
    fm.reset_calls()
    return {**site, "teacher_att": teacher_att, "teacher_session": session}


def test_teacher_made_activity_is_discovered_recorded_and_pulled(fm, teacher_site):
    s0, s1 = teacher_site["users"][:2]
    course = teacher_site["course"]
    side = MemorySide(teacher_site["known"])

    result = discover_run(fm, side, course)

    assert side.attendance == {course.courseid: [teacher_site["teacher_att"]]}
    assert {
        u: a for u, (a, _t) in side.lines[teacher_site["teacher_session"]].items()
    } == {s0: "A", s1: "L"}
    assert result.attendances_found == 1 and result.created == 2
    assert "1 activities found in Moodle" in result.summary()
    assert fm.call_counts["core_course_get_contents"] == 1
    # both activities read, none created, nothing written to Moodle
    assert fm.call_counts["mod_attendance_get_sessions"] == 2
    assert fm.write_call_count() == 0

    # Known from then on: found again, not recorded twice.
    course.attendance_ids = [*course.attendance_ids, *side.attendance[course.courseid]]
    result = discover_run(fm, side, course)
    assert result.attendances_found == 0 and result.unchanged == 2
    assert side.attendance == {course.courseid: [teacher_site["teacher_att"]]}
    assert fm.call_counts["mod_attendance_get_sessions"] == 2


def test_a_course_with_only_a_teacher_activity_gets_no_connector_activity(
    fm, teacher_site
):
    course = CourseRef(teacher_site["course"].courseid, teacher_site["course"].key)
    side = MemorySide(teacher_site["known"])
    result = discover_run(fm, side, course)
    assert fm.call_counts["mod_attendance_add_attendance"] == 0
    found = sorted(side.attendance[course.courseid])
    assert found == sorted([teacher_site["attid"], teacher_site["teacher_att"]])
    assert result.attendances_found == 2 and result.created == 2


def test_no_discovery_without_the_function_or_without_students(fm, teacher_site):
    s0 = teacher_site["users"][0]
    course = teacher_site["course"]
    fm.remove_function("core_course_get_contents")
    side = MemorySide(teacher_site["known"])

    result = discover_run(fm, side, course)

    assert fm.call_counts["core_course_get_contents"] == 0
    assert teacher_site["teacher_session"] not in side.lines
    assert side.attendance == {} and result.attendances_found == 0
    assert fm.call_counts["mod_attendance_get_sessions"] == 1
    assert att.DISCOVERY_NOTE in result.summary()
    assert att.DISCOVERY_CREATE_NOTE not in result.summary()  # a pull makes none

    # The function is there, but no student of the course is mapped: not
    # listed, and a pull creates nothing.
    fm.add_function("core_course_get_contents")
    lonely = CourseRef(course.courseid, course.key, [], has_students=False)
    result = discover_run(fm, side, lonely)
    assert fm.call_counts["core_course_get_contents"] == 0
    assert fm.write_call_count() == 0
    assert result.attendances_created == 0 and result.attendances_found == 0
    assert s0 not in side.lines.get(teacher_site["teacher_session"], {})
    assert att.DISCOVERY_NOTE not in result.summary()


# --------------------------------------------------------- pull creates nothing


def write_calls(fm):
    """The write functions Moodle received, by name."""
    return [name for name, _p in fm.calls if FAKE_KINDS.get(name) == "write"]


@pytest.mark.parametrize("listing", [True, False])
def test_pull_only_creates_nothing_in_moodle(fm, site, listing):
    """Pull only: no activity in a course that has none, no session for an
    OpenEduCat sheet, no status written back, with or without the listing."""
    s0, s1 = site["users"][:2]
    if not listing:
        fm.remove_function("core_course_get_contents")
    bare = fm.add_course("Biology", "BIO_PRG", idnumber="oec_subj_2_course_2")
    fm.enrol(bare, s0)
    fm.set_attendance_status_by_acronym(site["session"], s0, "P")
    side = MemorySide(site["known"])
    side.set(site["session"], s1, "A", T0 + 60)  # only OpenEduCat has it
    side.unlinked[7] = SheetRef(7, DAY, {s0: ("L", T0)})
    caps = client(fm).capabilities()
    fm.reset_calls()
    sync = AttendanceSync(
        client(fm),
        side,
        "moodle",
        takenby=caps.site.userid,
        can_create=att.can_create(caps),
        can_discover=att.can_discover(caps),
    )
    assert sync.can_create  # the site could create: the direction forbids it

    result = sync.run([site["course"], CourseRef(bare, "oec_subj_2_course_2")])

    assert write_calls(fm) == [] and fm.write_call_count() == 0
    assert (result.attendances_created, result.sessions_created) == (0, 0)
    assert result.pushed == 0 and result.no_session == 0
    assert side.recorded == {} and 7 in side.unlinked
    assert side.lines[site["session"]][s0][0] == "P"  # the pull itself happened
    assert side.lines[site["session"]][s1][0] == "A"


def test_dry_run_of_a_pull_plans_no_activity(fm, site):
    bare = fm.add_course("Biology", "BIO_PRG", idnumber="oec_subj_2_course_2")
    side = MemorySide(site["known"])
    result = run(
        fm, side, CourseRef(bare, "oec_subj_2_course_2"), "moodle", dry_run=True
    )
    assert not [p for p in result.planned if p[0] == "add_attendance"]
    result = run(fm, side, CourseRef(bare, "oec_subj_2_course_2"), "oec", dry_run=True)
    assert ("add_attendance", "oec_subj_2_course_2") in result.planned
    assert fm.write_call_count() == 0


# ----------------------------------------------- look up before creating


def test_lookup_lists_a_course_without_students_before_creating(fm, site):
    """An earlier run made the course's activity, then lost its record (its
    transaction rolled back, or Moodle's reply never came back): the listing
    finds it, even in a course with no mapped student; nothing is made twice."""
    course = CourseRef(site["course"].courseid, site["course"].key, [])
    course.has_students = False
    side = MemorySide(site["known"])
    side.unlinked[3] = SheetRef(3, DAY, {site["users"][0]: ("A", T0)})

    result = discover_run(fm, side, course, "oec")

    assert fm.call_counts["core_course_get_contents"] == 1
    assert fm.call_counts["mod_attendance_add_attendance"] == 0
    assert side.attendance == {course.courseid: [site["attid"]]}
    assert result.attendances_found == 1 and result.attendances_created == 0
    (session,) = [
        s
        for s in fm.attendance_sessions.values()
        if s["description"] == "oec_attendance_sheet_3"
    ]
    assert session["attendanceid"] == site["attid"]


def test_a_lost_reply_is_found_by_the_listing(fm, site):
    """Moodle made the activity, the reply was lost on the way: the run fails
    (transient), the next one finds the activity in Moodle's listing."""
    from openeducat_moodle.moodle import MoodleTransientError

    bare = fm.add_course("Biology", "BIO_PRG", idnumber="oec_subj_2_course_2")
    course = CourseRef(bare, "oec_subj_2_course_2", [], has_students=False)
    side = MemorySide(site["known"])
    fm.inject("lost_reply", function="mod_attendance_add_attendance")
    with pytest.raises(MoodleTransientError):
        discover_run(fm, side, course, "oec")
    (made,) = [a for a in fm.attendances.values() if a["courseid"] == bare]
    assert side.recorded == {}

    result = discover_run(fm, side, course, "oec")

    assert fm.call_counts["mod_attendance_add_attendance"] == 0
    assert side.attendance == {bare: [made["id"]]}
    assert result.attendances_found == 1


def test_the_activity_recorded_by_a_failed_run_is_used_not_made_again(fm, site):
    """Without the listing: Moodle made the activity, then the run failed and
    OpenEduCat's transaction rolled back (the course's known ids are lost);
    the side recorded the activity apart, so the next run uses it."""
    from openeducat_moodle.moodle import MoodleTransientError

    fm.remove_function("core_course_get_contents")
    bare = fm.add_course("Biology", "BIO_PRG", idnumber="oec_subj_2_course_2")
    s0 = site["users"][0]
    fm.enrol(bare, s0)
    side = MemorySide(site["known"])
    side.unlinked[4] = SheetRef(4, DAY, {s0: ("E", T0)})
    fm.inject("http503", function="mod_attendance_get_sessions")

    with pytest.raises(MoodleTransientError):
        discover_run(fm, side, CourseRef(bare, "oec_subj_2_course_2"), "oec")

    assert fm.call_counts["mod_attendance_add_attendance"] == 1
    (made,) = [a["id"] for a in fm.attendances.values() if a["courseid"] == bare]
    assert side.recorded == {bare: made}  # recorded before the failure
    assert 4 in side.unlinked  # the course's other work was undone

    # The next run's view of the course has no activity id.
    result = discover_run(fm, side, CourseRef(bare, "oec_subj_2_course_2"), "oec")

    assert fm.call_counts["mod_attendance_add_attendance"] == 0
    assert [a["courseid"] for a in fm.attendances.values()].count(bare) == 1
    (session,) = [
        s for s in fm.attendance_sessions.values() if s["attendanceid"] == made
    ]
    assert moodle_log(fm, session["id"]) == {s0: "E"}
    assert result.attendances_created == 0 and result.sessions_created == 1
    assert att.DISCOVERY_NOTE + att.DISCOVERY_CREATE_NOTE in result.summary()


# ---------------------------------------------------------- one course fails


def two_courses(fm, site):
    """The site's course, and Biology with its own activity and session; both
    have a status taken in Moodle for the first student."""
    s0 = site["users"][0]
    bio = fm.add_course("Biology", "BIO_PRG", idnumber="oec_subj_2_course_2")
    fm.enrol(bio, s0)
    bio_att = fm.add_attendance(bio, "Attendance")
    bio_session = fm.add_attendance_session(bio_att, T0, 3600)
    fm.set_attendance_status_by_acronym(site["session"], s0, "A")
    fm.set_attendance_status_by_acronym(bio_session, s0, "L")
    fm.reset_calls()
    return CourseRef(bio, "oec_subj_2_course_2", [bio_att]), bio_session


def test_a_course_openeducat_refuses_is_undone_alone(fm, site):
    s0 = site["users"][0]
    bio, bio_session = two_courses(fm, site)
    side = MemorySide(site["known"])
    side.refuse = {site["course"].courseid}
    moodle = client(fm)

    result = AttendanceSync(moodle, side, "moodle").run([site["course"], bio])

    assert side.scopes == [site["course"].courseid, bio.courseid]
    assert site["session"] not in side.lines  # the half-done writes are undone
    assert side.lines[bio_session] == {s0: ("L", T0)}
    assert (result.courses, result.failed, result.created) == (2, 1, 1)
    assert result.sessions == 1 and result.unchanged == 0
    assert result.errors == [
        f"course {site['course'].key}: OpenEduCat refuses the line"
    ]
    assert "1 failed" in result.summary()


def test_a_course_moodle_rejects_is_undone_but_what_moodle_did_is_counted(fm, site):
    """Push: a status is written to Moodle, then Moodle rejects the new
    session of a sheet: the course's OpenEduCat writes (the agreed baseline)
    are undone; the status written stays counted."""
    s0, s1 = site["users"][:2]
    fm.set_attendance_status_by_acronym(site["session"], s0, "A")
    side = MemorySide(site["known"])
    side.set(site["session"], s1, "P", T0)
    side.unlinked[9] = SheetRef(9, DAY, {s0: ("P", T0)})

    def reject(**_kw):
        from tests.fake_moodle.errors import invalid_parameter

        raise invalid_parameter("Invalid session time")

    fm.ws_mod_attendance_add_session = reject
    result = run(fm, side, site["course"], "oec")

    assert moodle_log(fm, site["session"]) == {s0: "A", s1: "P"}
    assert site["session"] not in side.baselines  # undone with the course
    assert 9 in side.unlinked
    assert (result.pushed, result.failed, result.unchanged) == (1, 1, 0)
    assert result.errors[0].startswith(f"course {site['course'].key}: ")
    assert "mod_attendance_add_session [invalidparameter]" in result.errors[0]


def test_discovery_reads_only_the_course_s_attendance(fm, teacher_site):
    other = fm.add_course("Geometry", "GEO_PRG", idnumber="oec_subj_2_course_2")
    fm.add_attendance(other, "Not this course")
    fm.reset_calls()
    side = MemorySide(teacher_site["known"])
    course = teacher_site["course"]
    discover_run(fm, side, course)
    assert side.attendance == {course.courseid: [teacher_site["teacher_att"]]}
    (_name, params) = next(c for c in fm.calls if c[0] == "core_course_get_contents")
    assert int(params["courseid"]) == course.courseid


def test_discovery_on_a_51_site_with_a_question_bank():
    fm = FakeMoodle(token="simtoken", flavour="5.1")
    fm.course_qbank = True
    fm.clock = lambda: T0
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fm.install(rsps, base_url=BASE)
        courseid = fm.add_course("Algebra", "ALG_PRG", idnumber="oec_subj_1_course_2")
        userid = fm.add_user("s0", email="s0@uni.test")
        fm.enrol(courseid, userid)
        attid = fm.add_attendance(courseid, "Roll call")
        session = fm.add_attendance_session(attid, T0, 3600)
        fm.set_attendance_status_by_acronym(session, userid, "P")
        assert any(m["modname"] == "qbank" for m in fm.course_modules.values())
        side = MemorySide([userid])
        result = discover_run(fm, side, CourseRef(courseid, "oec_subj_1_course_2"))
        assert side.attendance == {courseid: [attid]}
        assert side.lines[session][userid][0] == "P"
        assert result.attendances_found == 1 and result.failed == 0


def test_dry_run_reads_discovered_activities_but_records_nothing(fm, teacher_site):
    s0 = teacher_site["users"][0]
    side = MemorySide(teacher_site["known"])
    result = discover_run(fm, side, teacher_site["course"], dry_run=True)
    assert side.attendance == {} and fm.write_call_count() == 0
    assert result.attendances_found == 1
    assert ("pull", teacher_site["teacher_session"], s0, "A") in result.planned
