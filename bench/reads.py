"""Issue 15's read phases (core mode): completion and attendance pulls that
read what changed, without and with the companion plugin local_openeducat.

They run the sync core's own readers (:class:`~openeducat_moodle.sync.reads.
CompletionReader` and :class:`~openeducat_moodle.sync.attendance.
AttendanceSync`) over an in-memory OpenEduCat, after the grade pull:

* ``completion pull``: the first run, the day's sweep (every student asked);
* ``completion, nobody active``: the next run after a grade pull where no
  student went into a course (one last-access call per course with criteria);
* ``completion sweep, a day later``: every student not complete yet;
* ``completion, plugin, whole read`` and ``completion, plugin, nothing new``:
  the plugin installed, its first (whole) read and the next one;
* ``attendance pull`` (every session, first run), ``attendance, nothing new``
  (one call per activity), and the same two with the plugin.

Moodle's clock is the simulator's; the connector's clock is moved a day on for
the sweep (the readers take ``now``), never the simulator's.
"""

import collections
import contextlib
import time

from openeducat_moodle.moodle.catalogue import (
    PLUGIN_ATTENDANCE_LOGS,
    PLUGIN_COMPLETIONS,
)
from openeducat_moodle.sync import attendance as att
from openeducat_moodle.sync.attendance import AttendanceSide, AttendanceSync, CourseRef
from openeducat_moodle.sync.reads import DAY, CompletionReader, Student, Watermark

PLUGIN_PERPAGE = 5000
STATUS = "core_completion_get_course_completion_status"
ACCESS = "core_enrol_get_enrolled_users"
SESSIONS = "mod_attendance_get_sessions"


def _ids(store):
    ids = {}
    for kind in ("user", "course"):
        ids.update({(kind, k): m.moodle_id for k, m in store.of_kind(kind).items()})
    return ids


class Completion:
    """The completion rows of an in-memory OpenEduCat, and its watermark."""

    def __init__(self, store):
        self.rows = {}
        self.mark = Watermark()
        ids = _ids(store)
        courses = collections.defaultdict(list)
        for key, mapping in sorted(store.of_kind("enrolment").items()):
            if mapping.res_model != "op.student.course":
                continue
            user_key, course_key = key.split("@", 1)
            userid, courseid = (
                ids.get(("user", user_key)),
                ids.get(("course", course_key)),
            )
            if userid and courseid:
                courses[courseid].append((key, mapping.res_id, userid))
        self.courses = dict(sorted(courses.items()))

    def store(self, answers):
        for key, _res_id, status in answers:
            self.rows[key] = status

    def run(self, client, now):
        client.capabilities()
        counts = collections.Counter()
        reader = CompletionReader(client, self.mark, now, self.store, counts, [])
        self.mark = reader.run(
            [
                (
                    courseid,
                    [
                        Student(key, res_id, userid, dict(self.rows.get(key) or {}))
                        for key, res_id, userid in students
                    ],
                )
                for courseid, students in self.courses.items()
            ]
        )
        return counts

    def incomplete(self):
        return sum(
            1
            for students in self.courses.values()
            for key, _r, _u in students
            if (self.rows.get(key) or {}).get("completion") != "complete"
        )

    def with_criteria(self):
        return sum(
            1
            for students in self.courses.values()
            if any(
                (self.rows.get(key) or {}).get("completion")
                in ("complete", "incomplete")
                for key, _r, _u in students
            )
        )


class BenchSide(AttendanceSide):
    """OpenEduCat's attendance in memory: lines and baselines per session, the
    digest of each session as pulled, the activities found."""

    def __init__(self, known):
        self.known = known
        self.lines = {}
        self.baselines = {}
        self.digests = {}
        self.activities = collections.defaultdict(list)

    def known_users(self):
        return self.known

    def statuses(self, course, session):
        return self.lines.get(session["id"], {})

    def baseline(self, course, session):
        return self.baselines.get(session["id"], {})

    def moodle_unchanged(self, course, session):
        digest = att.session_digest(session)
        return bool(digest) and self.digests.get(session["id"]) == digest

    def apply(self, course, session, pulled, agreed):
        lines = self.lines.setdefault(session["id"], {})
        created = sum(1 for u in pulled if u not in lines)
        lines.update({u: (a, 0) for u, a in pulled.items()})
        self.baselines.setdefault(session["id"], {}).update(agreed)
        digest = att.session_digest(session)
        if digest:
            self.digests[session["id"]] = digest
        return created, len(pulled) - created, 0

    def unlinked_sheets(self, course):
        return []

    def record_attendances(self, course, attendanceids):
        self.activities[course.courseid] += attendanceids

    def course_scope(self, course):
        return contextlib.nullcontext()


class Attendance:
    """The attendance pulls of an in-memory OpenEduCat."""

    def __init__(self, store):
        students = {
            m.moodle_id
            for key, m in store.of_kind("user").items()
            if key.startswith("oec_student_") and m.moodle_id
        }
        self.side = BenchSide(students)
        self.courses = {
            m.moodle_id: key
            for key, m in store.of_kind("course").items()
            if m.moodle_id
        }
        self.mark = Watermark()

    def refs(self):
        return [
            CourseRef(courseid, key, list(self.side.activities.get(courseid, [])))
            for courseid, key in sorted(self.courses.items())
        ]

    def run(self, client, now):
        caps = client.capabilities()
        sync = AttendanceSync(
            client,
            self.side,
            att.MOODLE,
            can_discover=att.can_discover(caps),
            mark=self.mark,
            logs=client.has_function(PLUGIN_ATTENDANCE_LOGS),
            now=now,
        )
        result = sync.run(self.refs())
        self.mark = sync.next_mark
        return result

    def activities(self):
        return sum(len(ids) for ids in self.side.activities.values())


def _summary(counts):
    return ", ".join(f"{v:,} {k}" for k, v in sorted(counts.items()))


def _attendance_summary(result):
    return (
        f"{result.sessions:,} sessions, {result.created:,} lines created, "
        f"{result.updated:,} updated, {result.unchanged:,} unchanged"
    )


def completion_phases(meter, client, completion, log, plugin):
    """The completion phases, without the plugin (first run, nobody active,
    the sweep a day later) or with it (its whole read, then nothing new)."""
    enrols = sum(len(s) for s in completion.courses.values())
    now = int(time.time())
    if plugin:
        pages = -(-enrols // PLUGIN_PERPAGE)
        phases = [
            ("completion, plugin, whole read", {PLUGIN_COMPLETIONS: pages}, DAY + 900),
            ("completion, plugin, nothing new", {PLUGIN_COMPLETIONS: 1}, DAY + 1800),
        ]
    else:
        phases = [("completion pull", {STATUS: enrols}, 0)]
    for name, minimum, later in phases:
        with meter.phase(name, minimum) as phase:
            phase.summary = _summary(completion.run(client, now + later))
        log(f"  {phase.name}: {phase.wall:.1f} s, {sum(phase.calls.values())} calls")
    if plugin:
        return
    courses = completion.with_criteria()
    with meter.phase("completion, nobody active", {ACCESS: courses}) as phase:
        phase.summary = _summary(completion.run(client, now + 900))
    log(f"  {phase.name}: {phase.wall:.1f} s, {sum(phase.calls.values())} calls")
    incomplete = completion.incomplete()
    with meter.phase("completion sweep, a day later", {STATUS: incomplete}) as phase:
        phase.summary = _summary(completion.run(client, now + DAY))
    log(f"  {phase.name}: {phase.wall:.1f} s, {sum(phase.calls.values())} calls")


def attendance_phases(meter, client, store, log, plugin):
    """The attendance phases, without the plugin (``plugin`` False: it is not
    installed yet) or with it."""
    attendance = Attendance(store)
    now = int(time.time())
    tag = ", plugin" if plugin else ""
    with meter.phase(f"attendance pull{tag}", {}) as phase:
        phase.summary = _attendance_summary(attendance.run(client, now))
    activities = attendance.activities()
    phase.minimum = {PLUGIN_ATTENDANCE_LOGS: 1} if plugin else {SESSIONS: activities}
    log(f"  {phase.name}: {phase.wall:.1f} s, {sum(phase.calls.values())} calls")
    minimum = {PLUGIN_ATTENDANCE_LOGS: 1} if plugin else {SESSIONS: activities}
    with meter.phase(f"attendance{tag}, nothing new", minimum) as phase:
        phase.summary = _attendance_summary(attendance.run(client, now + 1800))
    log(f"  {phase.name}: {phase.wall:.1f} s, {sum(phase.calls.values())} calls")
    return attendance


def run_read_phases(meter, client, store, log, sim):
    """Every read phase, in order: completion and attendance without the
    plugin, then the plugin installed, both again.

    :return: what was seeded and read, for the run's info
    """
    info = sim.control("seed_attendance")
    completion = Completion(store)
    completion_phases(meter, client, completion, log, plugin=False)
    info["completion_incomplete"] = completion.incomplete()
    before = attendance_phases(meter, client, store, log, plugin=False)
    sim.control("install_plugin")
    completion_phases(meter, client, completion, log, plugin=True)
    after = attendance_phases(meter, client, store, log, plugin=True)
    info.update(
        attendance_activities=before.activities(),
        attendance_activities_plugin=after.activities(),
    )
    return info
