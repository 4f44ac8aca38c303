"""Attendance: Moodle's attendance plugin and OpenEduCat's registers.

The direction is chosen per instance (``sync_attendance_from``):

* ``moodle``: Moodle's statuses fill OpenEduCat's attendance lines;
* ``oec``: OpenEduCat's lines are written to Moodle, one
  ``update_user_status`` call per changed line;
* ``both``: whichever side changed since the last sync wins; when both sides
  changed the same student's status (a conflict), the later write wins:
  Moodle's time is the session's ``lasttaken`` (Moodle keeps no time per log
  row that the web services return), OpenEduCat's is the line's
  ``write_date``. A tie goes to Moodle. Conflicts are counted, not flagged.

"Since the last sync" is judged against a baseline: the status both sides
agreed on at the end of the previous run, kept per session and student by the
OpenEduCat side (see :class:`AttendanceSide`).

The mapping of statuses is fixed: ``P`` present, ``A`` absent, ``L`` late,
``E`` excused, with the other three flags False. Any other acronym is skipped
and counted, in every direction.

Which Moodle attendance activities are read: the ones the connector knows for
each mapped course, i.e. the activity it created there
(``mod_attendance_add_attendance``) plus any id recorded on the course
mapping (``attendance_ids``). When the token's service has
``core_course_get_contents`` (optional), the attendance activities of each
mapped course that has students are also listed in Moodle, one call per
course, so that an activity a teacher adds by hand is found; its id is then
recorded on the course mapping. Without that function, such an activity is
not seen until its id is recorded on the course mapping by hand.

What is created in Moodle, and when: nothing in the ``moodle`` (pull only)
direction. In the others, a course where no activity is known gets one
activity, after a look-up: the course's activities listed in Moodle when the
service has ``core_course_get_contents``, then the activity the OpenEduCat
side has on record for the course (see :meth:`AttendanceSide.
recorded_attendance`). The side records a new activity the moment Moodle
answers, beyond the run's own rollback (the Odoo side commits it in a
transaction of its own), so a run that fails after Moodle made the activity
does not make a second one. Only a reply lost on the way back (Moodle made the
activity, the connector never learnt its id) needs the listing: without
``core_course_get_contents`` the next run makes another one. Sessions are
never duplicated: each carries its sheet's marker and is adopted.

Each course is one unit of work (:meth:`AttendanceSide.course_scope`): when
Moodle rejects one of its records or OpenEduCat refuses one of its writes,
that course's OpenEduCat writes are undone and reported, and the other courses
go on.

What a pull (the ``moodle`` direction) reads, given the previous run's
:class:`~.reads.Watermark` (``mark``; without one, everything, every run):

* with the companion plugin's ``local_openeducat_get_attendance_logs`` in the
  token's service: the records taken or changed since the last run, of every
  attendance activity of the mapped courses, a few calls for all of them
  (every record once a day). Activities added in Moodle come with their
  records, no listing needed. A session then holds only the records listed
  (:func:`sessions_from_logs`): a student not listed keeps what OpenEduCat
  has, as a pull always left a status Moodle does not give;
* without it, every session of every known activity, one
  ``mod_attendance_get_sessions`` call each (Moodle's API has no "since"), but
  a session Moodle did not change since it was last pulled
  (:meth:`AttendanceSide.moodle_unchanged`, by :func:`session_digest`) is
  counted as unchanged and left alone; the courses' activities are listed
  (``core_course_get_contents``) once a day. Once a day too, every session
  is pulled whole. (A course where no activity is known yet is listed at
  every run.)

The ``oec`` and ``both`` directions read every session of every activity, as
they must compare each one with OpenEduCat.
"""

import collections
import contextlib
import dataclasses
import datetime
import hashlib
import json
import time
import zoneinfo

from ..moodle import MoodleRecordError
from ..moodle.catalogue import PLUGIN_ATTENDANCE_LOGS
from . import idnumbers

MOODLE, OEC, BOTH = "moodle", "oec", "both"
DIRECTIONS = (MOODLE, OEC, BOTH)

# Moodle acronym → OpenEduCat flag; the order of FLAGS decides which flag
# wins when a line has several set (OpenEduCat's line defaults present=True
# and only an onchange clears it, so a set absent/late/excused flag is what
# the user meant).
ACRONYMS = {"P": "present", "A": "absent", "L": "late", "E": "excused"}
FLAGS = ("absent", "late", "excused", "present")
FLAG_ACRONYMS = {flag: acronym for acronym, flag in ACRONYMS.items()}

# What decide() can answer.
SAME, PULL, PUSH, NOTHING, CUSTOM = "same", "pull", "push", "nothing", "custom"

ATTENDANCE_NAME = "Attendance"
SESSION_MARKER = "oec_attendance_sheet_{}"
SESSION_HOUR = 12  # local noon: the session stays on its date in every zone
SESSION_DURATION = 3600
DISCOVERY_FUNCTION = "core_course_get_contents"
MODNAME = "attendance"
# Said in the run's summary when the service lacks the listing (the second
# part when the run may create activities).
DISCOVERY_NOTE = (
    f"{DISCOVERY_FUNCTION} is not in the service (recommended): attendance "
    "activities added in Moodle are not found"
)
DISCOVERY_CREATE_NOTE = ", and an activity whose creation reply was lost is made again"
# What a course that fails leaves done in Moodle: kept in the counts when its
# OpenEduCat writes are undone.
MOODLE_COUNTS = frozenset({"pushed", "sessions_created", "attendances_created"})


def moodle_prerequisites(caps):
    """Can this site's token serve the attendance sync?

    The plugin must show in the token's function list (current
    ``mod_attendance_*`` or legacy ``mod_wsattendance_*`` names), and every
    non-optional attendance function must be callable under one of the names.

    :param caps: :class:`~openeducat_moodle.moodle.Capabilities`
    :return: ``(ok, reason)``; the reason names what to add on Moodle
    """
    modules = caps.detect_installed_modules()
    if not modules:
        return False, (
            "Moodle's attendance web-service functions are not available to the "
            "token: install mod_attendance and add its functions "
            "(mod_attendance_get_sessions, mod_attendance_get_session, "
            "mod_attendance_update_user_status) to the external service"
        )
    missing = caps.missing.get("attendance") or []
    if missing:
        return False, (
            "The token's service lacks attendance functions: " + ", ".join(missing)
        )
    return True, "attendance plugin found: " + ", ".join(
        f"{name} {version}" for name, version in sorted(modules.items())
    )


def can_create(caps):
    """Whether the site lets the connector create activities and sessions
    (only the current plugin names have these functions)."""
    return {"mod_attendance_add_attendance", "mod_attendance_add_session"} <= set(
        caps.site.functions
    )


def can_discover(caps):
    """Whether the site lets the connector list a course's attendance
    activities (``core_course_get_contents``, optional in the service)."""
    return DISCOVERY_FUNCTION in caps.site.functions


def flags_for(acronym):
    """The four OpenEduCat flags of a Moodle acronym, all of them explicit.

    :return: e.g. ``{"present": False, "absent": True, "late": False,
        "excused": False}``, or ``None`` for an acronym outside P/A/L/E
    """
    flag = ACRONYMS.get(acronym)
    if flag is None:
        return None
    return {name: name == flag for name in ACRONYMS.values()}


def acronym_for(line):
    """The Moodle acronym of an OpenEduCat line (a mapping with the four
    flags), or ``None`` when no flag is set."""
    for flag in FLAGS:
        if line.get(flag):
            return FLAG_ACRONYMS[flag]
    return None


def status_ids(session):
    """``{acronym: statusid}`` of a session's status set (ids are per
    attendance instance: never hard-coded)."""
    ids = {}
    for status in session.get("statuses") or []:
        if not status.get("deleted"):
            ids.setdefault(status.get("acronym"), int(status["id"]))
    return ids


def status_set(session):
    """The ``statusset`` argument of ``update_user_status``: the session's
    status ids, comma separated, as Moodle's own form sends them."""
    return ",".join(str(int(s["id"])) for s in session.get("statuses") or [])


def moodle_statuses(session):
    """``{studentid: acronym}`` from a session's ``attendance_log``.

    ``statusid`` arrives as a string; a status that is not in the session's
    set comes back as ``"?"`` (skipped like a custom acronym).
    """
    by_id = {int(s["id"]): s.get("acronym") for s in session.get("statuses") or []}
    statuses = {}
    for log in session.get("attendance_log") or []:
        try:
            statusid = int(log.get("statusid"))
        except (TypeError, ValueError):
            continue
        statuses[int(log["studentid"])] = by_id.get(statusid) or "?"
    return statuses


def session_digest(session):
    """A short digest of what Moodle holds for a session (its date, times,
    status set and records), to tell a session changed since it was pulled;
    ``None`` for a session built from some of its records only."""
    if session.get("partial"):
        return None
    state = [
        session.get("sessdate"),
        session.get("duration"),
        session.get("groupid"),
        session.get("lasttaken"),
        session.get("timemodified"),
        sorted(
            (int(s["id"]), str(s.get("acronym")), int(s.get("deleted") or 0))
            for s in session.get("statuses") or []
        ),
        sorted(
            (int(log["studentid"]), str(log.get("statusid")))
            for log in session.get("attendance_log") or []
        ),
    ]
    return hashlib.sha256(json.dumps(state, default=str).encode()).hexdigest()[:16]


def sessions_from_logs(logs):
    """Sessions shaped as ``mod_attendance_get_session`` answers, from the
    records ``local_openeducat_get_attendance_logs`` listed, by session id.

    Only the records listed are in each (``partial``): the statuses are those
    the records use, ``users`` is empty.
    """
    sessions = {}
    for log in logs:
        sessionid = int(log["sessionid"])
        session = sessions.get(sessionid)
        if session is None:
            session = sessions[sessionid] = {
                "id": sessionid,
                "attendanceid": int(log["attendanceid"]),
                "groupid": int(log.get("groupid") or 0),
                "sessdate": int(log["sessdate"]),
                "duration": int(log.get("duration") or 0),
                "lasttaken": log.get("lasttaken"),
                "statuses": [],
                "attendance_log": [],
                "users": [],
                "partial": True,
            }
        statusid = int(log["statusid"])
        if all(s["id"] != statusid for s in session["statuses"]):
            session["statuses"].append(
                {"id": statusid, "acronym": log.get("statusacronym"), "deleted": 0}
            )
        session["attendance_log"].append(
            {
                "id": str(log["id"]),
                "studentid": int(log["studentid"]),
                "statusid": str(statusid),
                "remarks": log.get("remarks"),
            }
        )
    return [sessions[key] for key in sorted(sessions)]


def session_date(session, tz="UTC"):
    """The calendar date of a session in the institution's time zone."""
    when = datetime.datetime.fromtimestamp(
        int(session["sessdate"]), datetime.timezone.utc
    )
    return when.astimezone(zoneinfo.ZoneInfo(tz or "UTC")).date()


def session_time(date, tz="UTC"):
    """The Unix time of a new Moodle session for an OpenEduCat sheet's date."""
    local = datetime.datetime.combine(
        date, datetime.time(SESSION_HOUR), zoneinfo.ZoneInfo(tz or "UTC")
    )
    return int(local.timestamp())


def _b36(number):
    return idnumbers.base36(number).lower()


def register_code(instance_id, subject_id, batch_id, date):
    """A deterministic register code within OpenEduCat's 16 characters.

    ``M<instance>.<subject>.<batch>.<yymmdd>`` (ids in base 36), or, when that
    is too long, ``M`` and 15 hex digits of its SHA-256.
    """
    code = (
        f"M{_b36(instance_id)}.{_b36(subject_id)}.{_b36(batch_id)}."
        f"{date:%y%m%d}".upper()
    )
    if len(code) <= 16:
        return code
    return "M" + hashlib.sha256(code.encode()).hexdigest()[:15].upper()


def register_name(subject_code, date):
    """A register name within OpenEduCat's 16 characters."""
    return f"{date:%Y-%m-%d} {subject_code or ''}".strip()[:16]


def decide(direction, oec, moodle, baseline=None, oec_time=None, moodle_time=None):
    """Decide what to do with one student's status in one session.

    :param str direction: ``moodle``, ``oec`` or ``both``
    :param oec: OpenEduCat's acronym (``None``: no line or no flag)
    :param moodle: Moodle's acronym (``None``: not taken)
    :param baseline: the acronym both sides held after the last sync
    :param oec_time: Unix time of OpenEduCat's last write of the line
    :param moodle_time: Unix time of Moodle's last write (session lasttaken)
    :return: ``(action, conflict)``: action is ``same``, ``pull``, ``push``,
        ``nothing`` or ``custom``; conflict is True when both sides changed
        since the baseline and the timestamps decided
    """
    if moodle is not None and moodle not in ACRONYMS:
        return CUSTOM, False
    if oec == moodle:
        return SAME, False
    if direction == MOODLE:
        return (PULL if moodle else NOTHING), False
    if direction == OEC:
        return (PUSH if oec else NOTHING), False
    if moodle is None:
        return PUSH, False
    if oec is None:
        return PULL, False
    oec_changed, moodle_changed = oec != baseline, moodle != baseline
    if oec_changed and not moodle_changed:
        return PUSH, False
    if moodle_changed and not oec_changed:
        return PULL, False
    return (PUSH if (oec_time or 0) > (moodle_time or 0) else PULL), True


@dataclasses.dataclass
class CourseRef:
    """A mapped Moodle course and the attendance activities known in it.

    ``has_students``: OpenEduCat students are mapped to the course (its
    activities are only looked up in Moodle then)."""

    courseid: int
    key: str
    attendance_ids: list = dataclasses.field(default_factory=list)
    has_students: bool = True


@dataclasses.dataclass
class SheetRef:
    """An OpenEduCat sheet no Moodle session is linked to yet (push)."""

    ref: int
    date: datetime.date
    statuses: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class AttendanceResult:
    """Counts of one attendance run (the run log)."""

    direction: str = MOODLE
    skipped: str = ""
    courses: int = 0
    sessions: int = 0
    created: int = 0
    updated: int = 0
    pushed: int = 0
    unchanged: int = 0
    custom: int = 0
    conflicts: int = 0
    unmapped_users: int = 0
    no_batch: int = 0
    no_session: int = 0
    attendances_created: int = 0
    attendances_found: int = 0
    sessions_created: int = 0
    failed: int = 0
    errors: list = dataclasses.field(default_factory=list)
    planned: list = dataclasses.field(default_factory=list)
    note: str = ""

    def summary(self):
        if self.skipped:
            return f"attendance skipped: {self.skipped}"
        text = (
            f"attendance ({self.direction}): {self.courses} courses, "
            f"{self.sessions} sessions; OpenEduCat {self.created} lines created, "
            f"{self.updated} updated; Moodle {self.pushed} statuses written, "
            f"{self.sessions_created} sessions and {self.attendances_created} "
            f"activities created; {self.unchanged} unchanged, {self.conflicts} "
            f"conflicts (later write won), {self.custom} custom statuses skipped, "
            f"{self.unmapped_users} unmapped users, {self.no_batch} without "
            f"batch, {self.failed} failed"
        )
        if self.no_session:
            text += f", {self.no_session} sheets without a Moodle session"
        if self.attendances_found:
            text += f", {self.attendances_found} activities found in Moodle"
        if self.note:
            text += f"; {self.note}"
        return text

    def counts(self):
        """The counters, by name."""
        return {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if isinstance(getattr(self, field.name), int)
        }


class AttendanceSide:
    """What the sync needs from OpenEduCat; the Odoo layer implements it over
    ``op.attendance.*`` and ``moodle.mapping``, the tests in memory.

    A Moodle session is linked, per OpenEduCat batch, to one sheet.
    """

    # OpenEduCat's refusals of a write (exception classes): they fail the
    # course being synced, not the run. The Odoo side names its own.
    refusals = ()

    def course_scope(self, course):
        """A context manager around one course's work. When the course fails
        (an exception leaves it), the side undoes the course's writes, except
        the record of an activity created in Moodle (see
        :meth:`record_attendance`), and lets the exception go on.

        :param CourseRef course: the course
        """
        return contextlib.nullcontext()

    def recorded_attendance(self, course):
        """The activity the connector created in a course, as recorded by a
        run that may have finished after this one's view of OpenEduCat was
        taken (asked just before creating one, when no activity is known).

        :param CourseRef course: the course
        :return: the attendance id, or ``None`` (this default: none kept)
        """

    def moodle_unchanged(self, course, session):
        """Whether Moodle holds the session as it was when last pulled (its
        :func:`session_digest`, kept by :meth:`apply`): a pull then leaves it
        alone. This default keeps nothing: every session is pulled.

        :param CourseRef course: the course
        :param dict session: the session as ``mod_attendance_get_sessions``
            gives it
        """
        return False

    def known_users(self):  # pragma: no cover - interface
        """Moodle user ids that map to an OpenEduCat student."""
        raise NotImplementedError

    def statuses(self, course, session):  # pragma: no cover - interface
        """``{userid: (acronym, unix_time)}`` held in OpenEduCat for a session."""
        raise NotImplementedError

    def baseline(self, course, session):  # pragma: no cover - interface
        """``{userid: acronym}`` both sides agreed on after the last run."""
        raise NotImplementedError

    def apply(self, course, session, pulled, agreed):  # pragma: no cover
        """Write the pulled statuses and store the agreed ones as baseline.

        :return: ``(created, updated, without_batch)``
        """
        raise NotImplementedError

    def unlinked_sheets(self, course):  # pragma: no cover - interface
        """:class:`SheetRef` of the sheets to push that have no session yet."""
        raise NotImplementedError

    def link(self, course, sheet, session):  # pragma: no cover - interface
        """Link a sheet to the Moodle session made for it."""
        raise NotImplementedError

    def record_attendance(self, course, attendanceid):  # pragma: no cover
        """Remember the attendance activity the connector created in a course,
        at once and for good: the record must outlive a failure of the course
        or of the run that follows (Moodle keeps the activity whatever
        happens to OpenEduCat's transaction), or the next run makes another.
        """
        raise NotImplementedError

    def record_attendances(self, course, attendanceids):
        """Remember attendance activities found in a course (added in Moodle)."""
        for attendanceid in attendanceids:
            self.record_attendance(course, attendanceid)


class AttendanceSync:
    """Run one attendance sync over the mapped courses.

    :param client: a :class:`~openeducat_moodle.moodle.MoodleClient` whose
        ``capabilities()`` has been read (legacy names are then used)
    :param AttendanceSide side: OpenEduCat
    :param str direction: ``moodle``, ``oec`` or ``both``
    :param int takenby: the Moodle user recorded as taker (the token's user)
    :param bool can_create: the site has ``add_attendance``/``add_session``
    :param bool can_discover: the site has ``core_course_get_contents``: the
        attendance activities of each course with students are listed in
        Moodle and the new ones recorded (see :func:`can_discover`)
    :param str tz: the institution's time zone (session dates)
    :param bool dry_run: read Moodle, write nowhere, list the plan
    :param mark: the previous pull's :class:`~.reads.Watermark`: a pull then
        reads only what changed since (see the module's docstring) and leaves
        the next one in :attr:`next_mark`; ``None``: everything is read
    :param bool logs: the site has ``local_openeducat_get_attendance_logs``
    :param int now: the run's start (unix time; default: the clock's)
    """

    def __init__(
        self,
        client,
        side,
        direction=MOODLE,
        takenby=0,
        can_create=False,
        tz="UTC",
        dry_run=False,
        can_discover=False,
        mark=None,
        logs=False,
        now=None,
    ):
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown attendance direction {direction!r}")
        self.client = client
        self.side = side
        self.direction = direction
        self.takenby = takenby or 0
        self.can_create = can_create
        self.can_discover = can_discover
        self.tz = tz or "UTC"
        self.dry_run = dry_run
        self.result = AttendanceResult(direction=direction)
        self._unmapped = set()
        # Reading what changed: pulls only (the other directions compare
        # every session with OpenEduCat).
        self.mark = mark if direction == MOODLE else None
        self.now = int(time.time() if now is None else now)
        self.logs = bool(logs) and self.mark is not None
        self.full = self.mark is None or self.mark.full_due(self.now, self.logs)
        self.next_mark = None

    def run(self, courses):
        """Sync every course, each in its own scope: a course Moodle rejects
        or OpenEduCat refuses is undone on the OpenEduCat side, counted and
        reported, and the others go on.

        :rtype: AttendanceResult
        :raise MoodleTransientError, MoodleAccessError: Moodle failed as a whole
        """
        if not self.can_discover and not self.logs:
            creates = self.can_create and self.direction != MOODLE
            self.result.note = DISCOVERY_NOTE + (
                DISCOVERY_CREATE_NOTE if creates else ""
            )
        refusals = (MoodleRecordError, *self.side.refusals)
        if self.logs:
            timenow, failed = self._run_logs(courses, refusals)
        else:
            timenow, failed = None, {}
            for course in courses:
                self.result.courses += 1
                before = self.result.counts()
                try:
                    with self.side.course_scope(course):
                        self._course(course)
                except refusals as err:
                    self._failed(course, err, before)
        if self.mark is not None:
            self.next_mark = self.mark.following(
                timenow, self.now, self.full, self.logs, failed
            )
        self.result.unmapped_users = len(self._unmapped)
        return self.result

    def _run_logs(self, courses, refusals):
        """Pull with the plugin: the records changed since the watermark
        (every record once a day) of every activity of the courses, page by
        page, each page's courses in their own scope.

        :return: ``(timenow of the first page, {course id: since})`` of the
            courses not read (a warning, a course that failed), read again
            from that time by the next run
        """
        refs = {course.courseid: course for course in courses}
        self.result.courses = len(refs)
        by_activity = {
            int(attid): courseid
            for courseid, course in refs.items()
            for attid in course.attendance_ids
        }
        timenow, failed, warned = None, {}, set()
        for since, courseids in self.mark.groups(refs, self.full):
            try:
                for answer in self.client.attendance_log_pages(courseids, since):
                    if timenow is None:
                        timenow = int(answer.get("timenow") or 0) or None
                    self._logged_page(
                        answer,
                        refs,
                        by_activity,
                        since,
                        courseids,
                        failed,
                        warned,
                        refusals,
                    )
            except MoodleRecordError as err:
                # The plugin refused the read: these courses wait for the
                # next run, from the same time.
                failed.update(dict.fromkeys(courseids, since))
                self.result.failed += 1
                self.result.errors.append(f"{PLUGIN_ATTENDANCE_LOGS}: {err}")
        return timenow, failed

    def _logged_page(
        self, answer, refs, by_activity, since, courseids, failed, warned, refusals
    ):
        """One page of records: its warnings (the courses not read), then
        each course's records in the course's own scope."""
        for warning in answer.get("warnings") or []:
            itemid = int(warning.get("itemid") or 0)
            if (warning.get("item"), itemid) in warned:
                continue  # said again by every page
            warned.add((warning.get("item"), itemid))
            if warning.get("item") == "course":
                unread = [itemid]
            else:
                # an activity of a course not known: read them all again
                unread = (
                    [by_activity.get(itemid)] if itemid in by_activity else courseids
                )
            for courseid in unread:
                failed[courseid] = min(since, failed.get(courseid, since))
            self.result.failed += 1
            self.result.errors.append(
                f"{warning.get('item')} {itemid}: {warning.get('message')} "
                f"({warning.get('warningcode')})"
            )
        pages = collections.defaultdict(list)
        for log in answer.get("logs") or []:
            pages[int(log["courseid"])].append(log)
        for courseid, logs in pages.items():
            course = refs.get(courseid)
            if course is None:
                continue
            before = self.result.counts()
            try:
                with self.side.course_scope(course):
                    self._logged_course(course, logs)
            except refusals as err:
                self._failed(course, err, before)
                failed[courseid] = min(since, failed.get(courseid, since))

    def _logged_course(self, course, logs):
        """A course's records from the plugin: activities not known yet are
        recorded (as a listing finds them), then each session is pulled."""
        known = {int(i) for i in course.attendance_ids}
        found = sorted({int(log["attendanceid"]) for log in logs} - known)
        if found:
            self.result.attendances_found += len(found)
            course.attendance_ids = [*course.attendance_ids, *found]
            if not self.dry_run:
                self.side.record_attendances(course, found)
        for session in sessions_from_logs(logs):
            self._session(course, session)

    def _failed(self, course, err, before):
        """A course failed: its OpenEduCat counts go back to what they were
        before it (its writes were undone), what Moodle did stays counted."""
        for name, value in before.items():
            if name not in MOODLE_COUNTS and name not in ("courses", "failed"):
                setattr(self.result, name, value)
        self.result.failed += 1
        self.result.errors.append(f"course {course.key}: {err}")

    def _discover(self, course, known):
        """The attendance activities of a course the connector did not know:
        one ``core_course_get_contents`` call; the new ones are recorded."""
        found = []
        for module in self.client.get_course_modules(course.courseid, MODNAME):
            attid = int(module["instance"])
            if attid not in known and attid not in found:
                found.append(attid)
        if found:
            self.result.attendances_found += len(found)
            if not self.dry_run:
                self.side.record_attendances(course, found)
        return found

    def _course(self, course):
        ids = [int(i) for i in course.attendance_ids]
        # A pull lists a course's activities in the day's whole read, and
        # every run where it knows none (a teacher's first one is found at
        # once; one call per course, not per activity, otherwise).
        listed = self.can_discover and course.has_students and (self.full or not ids)
        if listed:
            ids += self._discover(course, ids)
        if not ids and self.direction != MOODLE and self.can_create:
            ids = self._own_attendance(course, listed)
        sessions = []
        for attid in ids:
            sessions += self.client.get_attendance_sessions(attid)
        for session in sessions:
            self._session(course, session)
        if self.direction != MOODLE:
            for sheet in self.side.unlinked_sheets(course):
                self._new_session(course, ids, sheet, sessions)

    def _own_attendance(self, course, listed):
        """Find, or else create, the activity of a course where none is known
        (push and both directions only).

        Looked up first, so that an activity Moodle made for an earlier run
        whose record was lost is used, not made twice: in Moodle's listing of
        the course when the service has it (any attendance activity found is
        used, the teacher's too), then in what the OpenEduCat side recorded.
        A new activity is recorded the moment Moodle answers, before anything
        else can fail.

        :param bool listed: the course's activities were listed already
        :return: ``[attendanceid]``, or ``[]`` in a dry run
        """
        if self.can_discover and not listed:
            found = self._discover(course, [])
            if found:
                return found
        recorded = self.side.recorded_attendance(course)
        if recorded:
            return [int(recorded)]
        if self.dry_run:
            self.result.planned.append(("add_attendance", course.key))
            return []
        attid = int(self.client.add_attendance(course.courseid, ATTENDANCE_NAME))
        self.side.record_attendance(course, attid)
        self.result.attendances_created += 1
        return [attid]

    def _new_session(self, course, ids, sheet, sessions):
        """Give an OpenEduCat sheet its Moodle session, then push it. A session
        left by an interrupted run (same marker) is adopted, not duplicated."""
        marker = SESSION_MARKER.format(sheet.ref)
        session = next((s for s in sessions if s.get("description") == marker), None)
        if session is None:
            if not ids or not self.can_create:
                self.result.no_session += 1
                return
            if self.dry_run:
                self.result.planned.append(("add_session", course.key, sheet.ref))
                return
            sessionid = self.client.add_attendance_session(
                ids[0],
                session_time(sheet.date, self.tz),
                SESSION_DURATION,
                description=marker,
            )
            self.result.sessions_created += 1
            session = self.client.get_attendance_session(sessionid)
        if not self.dry_run:
            self.side.link(course, sheet, session)
        self._session(course, session)

    def _session(self, course, session):
        self.result.sessions += 1
        if not self.full and self.side.moodle_unchanged(course, session):
            # Pulled before and not changed in Moodle since: what both sides
            # agreed on then stands.
            self.result.unchanged += len(self.side.baseline(course, session))
            return
        moodle = moodle_statuses(session)
        oec = self.side.statuses(course, session)
        baseline = self.side.baseline(course, session)
        known = self.side.known_users()
        ids, statusset = status_ids(session), status_set(session)
        moodle_time = session.get("lasttaken") or 0
        pulled, agreed = {}, {}
        for userid in sorted(set(moodle) | set(oec)):
            if userid not in known:
                self._unmapped.add(userid)
                continue
            mine, mine_time = oec.get(userid, (None, None))
            theirs = moodle.get(userid)
            action, conflict = decide(
                self.direction,
                mine,
                theirs,
                baseline.get(userid),
                mine_time,
                moodle_time,
            )
            self.result.conflicts += conflict
            if action == CUSTOM:
                self.result.custom += 1
            elif action == SAME:
                self.result.unchanged += 1
                agreed[userid] = mine
            elif action == PULL:
                pulled[userid] = agreed[userid] = theirs
            elif action == PUSH and self._push(session, userid, mine, ids, statusset):
                agreed[userid] = mine
        if self.dry_run:
            self.result.planned += [
                ("pull", session["id"], userid, acronym)
                for userid, acronym in sorted(pulled.items())
            ]
            return
        created, updated, no_batch = self.side.apply(course, session, pulled, agreed)
        self.result.created += created
        self.result.updated += updated
        self.result.no_batch += no_batch

    def _push(self, session, userid, acronym, ids, statusset):
        statusid = ids.get(acronym)
        if statusid is None:
            # The session's status set has no such acronym.
            self.result.custom += 1
            return False
        if self.dry_run:
            self.result.planned.append(("push", session["id"], userid, acronym))
            return False
        try:
            self.client.update_attendance_status(
                session["id"], userid, statusid, statusset, self.takenby
            )
        except MoodleRecordError as err:
            self.result.failed += 1
            self.result.errors.append(f"session {session['id']} user {userid}: {err}")
            return False
        self.result.pushed += 1
        return True
