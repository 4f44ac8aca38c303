"""The chaos run's attendance job: ``AttendanceSync`` in both directions over
an OpenEduCat side kept in the job's transaction (:class:`StoreSide`).

Set up identically in both runs (:func:`seed`), by idnumbers only: a third of
the courses have a teacher's attendance activity in Moodle with two taken
sessions (pulled into OpenEduCat), a sixth have an OpenEduCat sheet with every
student's status and no Moodle session yet (pushed: the connector makes the
session and writes each status). Direction ``both``: every course without an
activity gets the connector's one, looked up first (``core_course_get_contents``
is in the simulator's service).
"""

import collections
import datetime
import hashlib

from openeducat_moodle.sync.attendance import (
    BOTH,
    AttendanceSide,
    AttendanceSync,
    CourseRef,
    SheetRef,
    can_create,
    can_discover,
    session_time,
)
from openeducat_moodle.sync.store import Mapping

SESSION_DAYS = (datetime.date(2026, 9, 14), datetime.date(2026, 9, 15))
SHEET_DAY = datetime.date(2026, 9, 16)
SHEET_REF = 5000
LINE_TIME = 1_788_000_000
ACRONYMS = "PPPALE"


def _digest(*parts):
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def _courses(store):
    return sorted(store.synced("course"))


def _students(store):
    """``{course key: [student keys]}`` from the enrolment mapping rows."""
    found = collections.defaultdict(list)
    for key, m in store.synced("enrolment").items():
        if m.res_model == "op.student.course":
            user_key, course_key = key.split("@", 1)
            found[course_key].append(user_key)
    return {k: sorted(v) for k, v in found.items()}


def seed(fm, store):
    """Teacher activities and sessions in Moodle, sheets in OpenEduCat."""
    courses, students = _courses(store), _students(store)
    users = {u["idnumber"]: u["id"] for u in fm.users.values() if u["idnumber"]}
    ids = {c["idnumber"]: c["id"] for c in fm.courses.values()}
    sheets = []
    for n, course_key in enumerate(courses):
        if n % 3 == 0:
            attid = fm.add_attendance(ids[course_key], "Roll call")
            for day in SESSION_DAYS:
                session = fm.add_attendance_session(attid, session_time(day), 3600)
                for user_key in students.get(course_key, []):
                    acronym = ACRONYMS[_digest(course_key, day, user_key) % 6]
                    fm.set_attendance_status_by_acronym(
                        session, users[user_key], acronym, LINE_TIME
                    )
        elif n % 6 == 1:
            statuses = {
                user_key: ACRONYMS[_digest(course_key, user_key) % 6]
                for user_key in students.get(course_key, [])
            }
            sheets.append(
                Mapping(
                    "att_sheet",
                    str(SHEET_REF + n),
                    "op.attendance.sheet",
                    SHEET_REF + n,
                    extra={
                        "course": course_key,
                        "date": SHEET_DAY.isoformat(),
                        "statuses": statuses,
                        "session": None,
                    },
                )
            )
    store.save(sheets)


class StoreSide(AttendanceSide):
    """OpenEduCat's attendance in the job's store: one ``att_lines`` row per
    Moodle session (lines and baseline by student key), ``att_sheet`` rows
    (linked to their session once pushed), ``att_activity`` rows written
    apart from the job's transaction, as the Odoo side commits them."""

    def __init__(self, store, clock):
        self.store = store
        self.clock = clock
        students = store.synced("user")
        self.user_key = {
            m.moodle_id: key
            for key, m in students.items()
            if key.startswith("oec_student_")
        }
        self.userid = {v: k for k, v in self.user_key.items()}

    def course_scope(self, course):
        return self.store.savepoint()

    def recorded_attendance(self, course):
        row = self.store.get("att_activity", course.key)
        return row.extra.get("created") if row else None

    def known_users(self):
        return set(self.user_key)

    def _lines(self, session):
        row = self.store.get("att_lines", str(session["id"]))
        return row.extra if row else {"lines": {}, "baseline": {}}

    def statuses(self, course, session):
        return {
            self.userid[k]: tuple(v)
            for k, v in self._lines(session)["lines"].items()
            if k in self.userid
        }

    def baseline(self, course, session):
        return {
            self.userid[k]: v
            for k, v in self._lines(session)["baseline"].items()
            if k in self.userid
        }

    def _save_lines(self, course, session, lines, baseline):
        self.store.save(
            [
                Mapping(
                    "att_lines",
                    str(session["id"]),
                    "op.attendance.sheet",
                    0,
                    idnumber=f"{_session_name(session)}@{course.key}",
                    extra={"lines": lines, "baseline": baseline},
                )
            ]
        )

    def apply(self, course, session, pulled, agreed):
        current = self._lines(session)
        lines, baseline = dict(current["lines"]), dict(current["baseline"])
        created = updated = 0
        for userid, acronym in pulled.items():
            key = self.user_key[userid]
            if key in lines:
                updated += 1
            else:
                created += 1
            lines[key] = [acronym, int(self.clock())]
        baseline.update({self.user_key[u]: a for u, a in agreed.items()})
        self._save_lines(course, session, lines, baseline)
        return created, updated, 0

    def unlinked_sheets(self, course):
        sheets = []
        for key, row in sorted(self.store.rows_of("att_sheet").items()):
            if row.extra["course"] != course.key or row.extra["session"]:
                continue
            statuses = {
                self.userid[k]: (a, LINE_TIME)
                for k, a in row.extra["statuses"].items()
                if k in self.userid
            }
            sheets.append(
                SheetRef(
                    int(key),
                    datetime.date.fromisoformat(row.extra["date"]),
                    statuses,
                )
            )
        return sheets

    def link(self, course, sheet, session):
        row = self.store.load_one("att_sheet", str(sheet.ref))
        row.extra["session"] = session["id"]
        self.store.save([row])
        lines = {
            self.user_key[u]: [a, t]
            for u, (a, t) in sheet.statuses.items()
            if u in self.user_key
        }
        self._save_lines(course, session, lines, {})

    def _activity(self, course, attendanceids, created=None):
        row = self.store.get("att_activity", course.key)
        extra = {"ids": [], "created": None}
        if row:
            extra = {"ids": list(row.extra["ids"]), "created": row.extra["created"]}
        extra["ids"] += [i for i in attendanceids if i not in extra["ids"]]
        extra["created"] = extra["created"] or created
        self.store.save_apart(
            [Mapping("att_activity", course.key, "op.course", 0, extra=extra)]
        )

    def record_attendance(self, course, attendanceid):
        self._activity(course, [attendanceid], created=attendanceid)

    def record_attendances(self, course, attendanceids):
        self._activity(course, attendanceids)


def _session_name(session):
    """A session named without its Moodle id (ids differ between runs)."""
    return f"{session['sessdate']}:{session.get('description') or ''}"


class AttendanceJob:
    """The attendance sync job (direction ``both``), course by course; a run
    that stops is resumed at its course."""

    name = "attendance (both directions)"

    def run(self, client, store, clock):
        from .chaos import _cursor, _set_cursor

        caps = client.capabilities()
        side = StoreSide(store, clock)
        students = _students(store)
        courses = []
        for key in _courses(store):
            row = store.get("att_activity", key)
            courses.append(
                CourseRef(
                    store.get("course", key).moodle_id,
                    key,
                    list(row.extra["ids"]) if row else [],
                    has_students=bool(students.get(key)),
                )
            )
        sync = AttendanceSync(
            client,
            side,
            BOTH,
            takenby=caps.site.userid,
            can_create=can_create(caps),
            can_discover=can_discover(caps),
        )
        start = _cursor(store, self.name) or 0
        for position in range(start, len(courses)):
            sync.run([courses[position]])
            _set_cursor(store, self.name, position + 1)
        _set_cursor(store, self.name, None)

    def pending_retry(self, store, clock):
        """A course Moodle refused (no activity known for it), a sheet without
        its session, or a line both sides do not agree on (its push was
        refused): the next scheduled run tries again."""
        from .chaos import NEXT_RUN

        courses = set(_courses(store)) - set(store.rows_of("att_activity"))
        sheets = store.rows_of("att_sheet").values()
        unlinked = courses or any(not r.extra["session"] for r in sheets)
        disagree = any(
            r.extra["baseline"].get(user_key) != acronym
            for r in store.rows_of("att_lines").values()
            for user_key, (acronym, _time) in r.extra["lines"].items()
        )
        return clock.now() + NEXT_RUN if unlinked or disagree else None


def moodle_state(fm, user_key, course_key):
    """Attendance activities, sessions and statuses in Moodle, by names."""
    state = collections.defaultdict(lambda: collections.defaultdict(list))
    activities = {}
    for att in fm.attendances.values():
        key = f"{att['name']}@{course_key(att['courseid'])}"
        activities[att["id"]] = key
        state["attendance activities"][key].append(1)
    statuses = {s["id"]: s["acronym"] for s in fm.attendance_statuses.values()}
    sessions = {}
    for session in fm.attendance_sessions.values():
        key = f"{_session_name(session)}@{activities[session['attendanceid']]}"
        sessions[session["id"]] = key
        state["attendance sessions"][key].append(1)
    for log in fm.attendance_logs.values():
        key = f"{user_key(log['studentid'])}@{sessions[log['sessionid']]}"
        state["attendance statuses (Moodle)"][key].append(statuses[log["statusid"]])
    return state


def oec_state(store):
    """OpenEduCat's attendance lines and sheets, by names."""
    state = collections.defaultdict(lambda: collections.defaultdict(list))
    for row in store.rows_of("att_lines").values():
        for user_key, (acronym, _time) in row.extra["lines"].items():
            state["attendance lines (OpenEduCat)"][f"{user_key}@{row.idnumber}"].append(
                acronym
            )
    for key, row in store.rows_of("att_sheet").items():
        state["attendance sheets linked"][key].append(bool(row.extra["session"]))
    return state
