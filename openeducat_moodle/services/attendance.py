"""SyncAttendance: Moodle's attendance plugin and OpenEduCat's registers.

OpenEduCat side, per Moodle session (date) and mapped course (subject in a
program):

* ``op.attendance.register``: one per session date, subject and batch, found
  or created by a deterministic code (``sync.attendance.register_code``). The
  batch is part of the key because OpenEduCat requires it on the register and
  a sheet's batch is the register's (a stored related field).
* ``op.attendance.sheet``: one per session and batch, ``faculty_id`` left
  empty, state "Attendance Taken". The sheet's unique constraint includes
  the (empty) timetable session, so PostgreSQL does not enforce it: the link
  between a Moodle session and a sheet is a ``moodle.mapping`` row of kind
  ``attendance`` (key ``att_session_<id>@oec_batch_<id>``), which also keeps
  the statuses both sides agreed on (the baseline of the ``both`` direction).
  A sheet made in OpenEduCat for the same date, subject and batch is adopted
  instead of creating a second one.
* ``op.attendance.line``: one per student and sheet, updated in place, the
  four flags always written together.

Moodle side: the attendance activity the connector creates in a course (push
and both directions) is a ``moodle.mapping`` row of kind
``attendance_activity`` (key: the course's idnumber), written in a short
transaction of its own and committed the moment Moodle answers, so that it
outlives the run's transaction: a run that fails or is rolled back after
Moodle made the activity (a serialization failure, a worker killed, a course
OpenEduCat refuses) leaves it on record, and the next run uses it instead of
making a second one. Only a lost reply escapes this record; the service's
``core_course_get_contents`` (recommended) then finds the activity in Moodle.
Activities found in Moodle are listed on the course mapping
(``attendance_ids``).

Each course is synced inside a savepoint: a course OpenEduCat refuses (a
``UserError``, ``ValidationError`` or constraint) or Moodle rejects is rolled
back alone and reported; the others commit.

A pull reads only what changed in Moodle since the last one (see
:mod:`..sync.attendance`): where it stopped (its watermark) is one more row of
kind ``attendance`` (key ``attendance_reads``, on the instance), written with
the registers it read, in the run's own transaction: a run rolled back leaves
the watermark where it was. Each session link keeps the digest of the session
as last pulled (``extra_data["moodle"]``).
"""

import calendar
import collections
import contextlib
import logging
import types

import psycopg2

from odoo import fields
from odoo.exceptions import UserError, ValidationError

from ..models.moodle_mapping import in_moodle
from ..moodle.catalogue import PLUGIN_ATTENDANCE_LOGS
from ..sync import attendance as core
from ..sync import idnumbers
from ..sync.attendance import AttendanceSide, AttendanceSync, CourseRef, SheetRef
from ..sync.reads import Watermark

_logger = logging.getLogger(__name__)

ATTENDANCE_MODELS = (
    "op.attendance.register",
    "op.attendance.sheet",
    "op.attendance.line",
)
KIND = "attendance"
ACTIVITY_KIND = "attendance_activity"
# The pull's watermark: a row of the attendance kind, on the instance.
READS_KEY = "attendance_reads"
FLAG_FIELDS = tuple(core.ACRONYMS.values())


def _epoch(value):
    """Unix time of an Odoo datetime (naive, UTC)."""
    return calendar.timegm(value.timetuple()) if value else 0


def _line_acronym(line):
    return core.acronym_for({flag: line[flag] for flag in FLAG_FIELDS})


class OdooAttendanceSide(AttendanceSide):
    """The sync core's :class:`~..sync.attendance.AttendanceSide` over
    ``op.attendance.*`` and ``moodle.mapping``. Mappings are read once per
    run, one query per kind."""

    # OpenEduCat's refusals: they roll back the course, not the run.
    refusals = (UserError, ValidationError, psycopg2.IntegrityError)

    def __init__(self, env, instance, tz="UTC", dry_run=False):
        self.env = env
        self.instance = instance
        self.tz = tz
        self.dry_run = dry_run
        self.mappings = env["moodle.mapping"].sudo()
        self.students = {}  # moodle user id -> op.student id
        self.users = {}  # op.student id -> moodle user id
        self.batches = {}  # (student, program) -> batch
        self.courses = {}  # moodle course id -> course mapping
        self.with_students = set()  # course keys with a mapped student enrolled
        self.links = collections.defaultdict(dict)  # session -> {batch: mapping}
        self.linked_sheets = set()
        self.activities = {}  # course key -> the connector's own activity
        # Activity rows written in this transaction (the instance is not
        # committed): written again when their course is rolled back.
        self._unsaved = {}
        self._load()

    def _search(self, kind, domain=()):
        return self.mappings.search(
            [("instance_id", "=", self.instance.id), *in_moodle(kind), *domain]
        )

    def _load(self):
        for m in self._search("user", [("res_model", "=", "op.student")]):
            if m.moodle_id and m.res_id:
                self.students[m.moodle_id] = m.res_id
                self.users[m.res_id] = m.moodle_id
        for m in self._search("course"):
            parsed = idnumbers.parse(m.external_key)
            if m.moodle_id and parsed and parsed[0] == "subject_course":
                self.courses[m.moodle_id] = m
        for m in self._search("enrolment", [("res_model", "=", "op.student.course")]):
            user_key, _sep, course_key = (m.external_key or "").partition("@")
            parsed = idnumbers.parse(user_key)
            if parsed and parsed[0] == "student" and parsed[1][0] in self.users:
                self.with_students.add(course_key)
        for row in self.env["op.student.course"].search_read(
            [("student_id", "!=", False)], ["student_id", "course_id", "batch_id"]
        ):
            self.batches[row["student_id"][0], row["course_id"][0]] = row["batch_id"][0]
        for m in self._search(KIND):
            if m.external_key == READS_KEY:
                continue
            extra = m.extra_data or {}
            self.links[extra.get("session")][extra.get("batch")] = m
            self.linked_sheets.add(m.res_id)
        course_ids = {m.external_key: courseid for courseid, m in self.courses.items()}
        for m in self._search(ACTIVITY_KIND):
            # Only while the course is the one the activity was made in.
            courseid = (m.extra_data or {}).get("course")
            if m.moodle_id and course_ids.get(m.external_key) == courseid:
                self.activities[m.external_key] = m.moodle_id

    # --------------------------------------------------------------- helpers

    def course_refs(self):
        """The mapped courses, with the attendance ids known in each: the
        connector's own activity first, then the ids the course mapping keeps
        (and, should that list have been lost, the ids seen on the links)."""
        seen = collections.defaultdict(set)
        for links in self.links.values():
            for mapping in links.values():
                extra = mapping.extra_data or {}
                if extra.get("attendance"):
                    seen[mapping.moodle_idnumber].add(int(extra["attendance"]))
        refs = []
        for courseid, mapping in sorted(self.courses.items()):
            own = self.activities.get(mapping.external_key)
            ids = [own] if own else []
            known = (mapping.extra_data or {}).get("attendance_ids") or []
            ids += [int(i) for i in known if int(i) not in ids]
            ids += sorted(seen[mapping.external_key] - set(ids))
            refs.append(
                CourseRef(
                    courseid,
                    mapping.external_key,
                    ids,
                    has_students=mapping.external_key in self.with_students,
                )
            )
        return refs

    @staticmethod
    def _subject_program(course):
        return idnumbers.parse(course.key)[1]

    def _batch(self, userid, program):
        student = self.students.get(userid)
        return self.batches.get((student, program)) if student else None

    def _sheets(self, domain, limit=None):
        return self.env["op.attendance.sheet"].search(
            [("state", "!=", "cancel"), *domain], order="id", limit=limit
        )

    def _new_link(self, course, session, batch, sheet):
        extra = {
            "session": session["id"],
            "attendance": session.get("attendanceid"),
            "batch": batch,
            "statuses": {},
        }
        if self.dry_run:
            # Adopted for this run's plan only; nothing is stored.
            mapping = types.SimpleNamespace(res_id=sheet.id, extra_data=extra)
            self.links[session["id"]][batch] = mapping
            return mapping
        mapping = self.mappings.create(
            {
                "instance_id": self.instance.id,
                "moodle_model": KIND,
                "external_key": f"att_session_{session['id']}@"
                + idnumbers.batch(batch),
                "moodle_idnumber": course.key,
                "res_model": sheet._name,
                "res_id": sheet.id,
                "state": "synced",
                "last_sync_date": fields.Datetime.now(),
                "extra_data": extra,
            }
        )
        self.links[session["id"]][batch] = mapping
        self.linked_sheets.add(sheet.id)
        return mapping

    def _adopt(self, course, session):
        """Link the session to the OpenEduCat sheets of its date, subject and
        batches that no session is linked to yet (taken in OpenEduCat)."""
        subject, program = self._subject_program(course)
        userids = {int(u["id"]) for u in session.get("users") or []}
        userids |= {
            int(log["studentid"]) for log in session.get("attendance_log") or []
        }
        batches = {self._batch(u, program) for u in userids} - {None}
        links = self.links[session["id"]]
        date = core.session_date(session, self.tz)
        for batch in sorted(batches - set(links)):
            sheet = self._sheets(
                [
                    ("register_id.course_id", "=", program),
                    ("register_id.subject_id", "=", subject),
                    ("register_id.batch_id", "=", batch),
                    ("attendance_date", "=", date),
                    ("id", "not in", list(self.linked_sheets)),
                ],
                limit=1,
            )
            if sheet:
                self._new_link(course, session, batch, sheet)

    def _sheet(self, course, session, batch):
        """Find or create the register, then create the sheet, of a session
        and batch."""
        subject_id, program = self._subject_program(course)
        date = core.session_date(session, self.tz)
        subject = self.env["op.subject"].browse(subject_id)
        code = core.register_code(self.instance.id, subject_id, batch, date)
        registers = self.env["op.attendance.register"].with_context(active_test=False)
        register = registers.search([("code", "=", code)], limit=1)
        if not register:
            register = registers.create(
                {
                    "name": core.register_name(subject.code, date),
                    "code": code,
                    "course_id": program,
                    "batch_id": batch,
                    "subject_id": subject_id,
                }
            )
        return self.env["op.attendance.sheet"].create(
            {"register_id": register.id, "attendance_date": date, "state": "done"}
        )

    def _linked_sheet(self, mapping):
        return self.env["op.attendance.sheet"].browse(mapping.res_id).exists()

    @contextlib.contextmanager
    def _apart(self):
        """A short transaction of its own, committed on leaving: what is
        written there outlives this run's transaction, and what is read there
        is what other transactions committed since this one began.

        :return: a context manager yielding a superuser environment on the new
            cursor, or ``None`` when the instance is not committed yet
            (created in this very transaction: a test, a set-up script), when
            nothing could outlive this transaction anyway
        """
        with self.env.registry.cursor() as cr:
            # Never wait long on a row this (or another) transaction holds.
            cr.execute("SET LOCAL lock_timeout = '10s'")
            cr.execute(
                "SELECT 1 FROM moodle_instance WHERE id = %s", [self.instance.id]
            )
            yield self.env(cr=cr, su=True) if cr.fetchone() else None

    def _store_activity(self, env, values):
        """Write the course's activity row in ``env``'s transaction: one row
        per course, replaced when the course was made again in Moodle."""
        rows = env["moodle.mapping"].sudo()
        row = rows.search(
            [
                ("instance_id", "=", values["instance_id"]),
                ("moodle_model", "=", ACTIVITY_KIND),
                ("external_key", "=", values["external_key"]),
            ],
            limit=1,
        )
        if row:
            row.write(values)
        else:
            rows.create(values)

    def _activity_values(self, course, attendanceid):
        subject, _program = self._subject_program(course)
        return {
            "instance_id": self.instance.id,
            "moodle_model": ACTIVITY_KIND,
            "external_key": course.key,
            "moodle_idnumber": course.key,
            "moodle_id": attendanceid,
            "res_model": "op.subject",
            "res_id": subject,
            "state": "synced",
            "last_sync_date": fields.Datetime.now(),
            "extra_data": {"course": course.courseid},
        }

    # ------------------------------------------------------------- interface

    @contextlib.contextmanager
    def course_scope(self, course):
        """One course in a savepoint. When it fails, its writes are rolled
        back, the links this side made for it are forgotten, and an activity
        recorded in this transaction (see :meth:`record_attendance`) is
        written again: Moodle keeps it."""
        links = {session: dict(batches) for session, batches in self.links.items()}
        sheets = set(self.linked_sheets)
        done = False
        try:
            with self.env.cr.savepoint():
                yield
            done = True
        finally:
            if not done:
                self.links = collections.defaultdict(dict, links)
                self.linked_sheets = sheets
                values = self._unsaved.get(course.key)
                if values:
                    self._store_activity(self.env, values)

    def recorded_attendance(self, course):
        """The activity recorded for the course by a run that committed
        after this run began (read in a transaction of its own)."""
        with self._apart() as env:
            if env is None:
                return None
            row = env["moodle.mapping"].search(
                [
                    ("instance_id", "=", self.instance.id),
                    ("moodle_model", "=", ACTIVITY_KIND),
                    ("external_key", "=", course.key),
                    ("state", "=", "synced"),
                ],
                limit=1,
            )
            if row and (row.extra_data or {}).get("course") == course.courseid:
                return row.moodle_id
        return None

    def record_attendance(self, course, attendanceid):
        """Record the activity the connector just created, committed at once
        in a transaction of its own (in this one when the instance is not
        committed yet)."""
        values = self._activity_values(course, attendanceid)
        self.activities[course.key] = attendanceid
        with self._apart() as env:
            if env is not None:
                self._store_activity(env, values)
                return
        self._store_activity(self.env, values)
        self._unsaved[course.key] = values

    def known_users(self):
        return set(self.students)

    def moodle_unchanged(self, course, session):
        digest = core.session_digest(session)
        links = self.links.get(session["id"]) or {}
        return bool(digest and links) and all(
            (mapping.extra_data or {}).get("moodle") == digest
            for mapping in links.values()
        )

    def read_mark(self):
        """The pull's watermark (:class:`~..sync.reads.Watermark`)."""
        row = self._search(KIND, [("external_key", "=", READS_KEY)])[:1]
        return Watermark.load(row.extra_data if row else None)

    def save_mark(self, mark):
        """Keep the pull's watermark, in this run's transaction."""
        row = self.mappings.search(
            [
                ("instance_id", "=", self.instance.id),
                ("moodle_model", "=", KIND),
                ("external_key", "=", READS_KEY),
            ],
            limit=1,
        )
        values = {
            "extra_data": mark.dump(),
            "state": "synced",
            "last_sync_date": fields.Datetime.now(),
        }
        if row:
            row.write(values)
        else:
            self.mappings.create(
                {
                    "instance_id": self.instance.id,
                    "moodle_model": KIND,
                    "external_key": READS_KEY,
                    "res_model": self.instance._name,
                    "res_id": self.instance.id,
                    **values,
                }
            )

    def statuses(self, course, session):
        self._adopt(course, session)
        statuses = {}
        for mapping in self.links[session["id"]].values():
            sheet = self._linked_sheet(mapping)
            for line in sheet.attendance_line:
                userid = self.users.get(line.student_id.id)
                if userid:
                    statuses[userid] = (_line_acronym(line), _epoch(line.write_date))
        return statuses

    def baseline(self, course, session):
        baseline = {}
        for mapping in self.links[session["id"]].values():
            statuses = (mapping.extra_data or {}).get("statuses") or {}
            baseline.update({int(u): a for u, a in statuses.items()})
        return baseline

    def apply(self, course, session, pulled, agreed):
        _subject, program = self._subject_program(course)
        created = updated = no_batch = 0
        by_batch = collections.defaultdict(dict)
        for userid, acronym in pulled.items():
            batch = self._batch(userid, program)
            if batch is None:
                no_batch += 1
            else:
                by_batch[batch][userid] = acronym
        links = self.links[session["id"]]
        for batch, rows in sorted(by_batch.items()):
            mapping = links.get(batch)
            sheet = self._linked_sheet(mapping) if mapping else None
            if not sheet:
                if mapping:  # the sheet was deleted in OpenEduCat
                    mapping.unlink()
                sheet = self._sheet(course, session, batch)
                mapping = self._new_link(course, session, batch, sheet)
            lines = {line.student_id.id: line for line in sheet.attendance_line}
            new = []
            for userid, acronym in sorted(rows.items()):
                student = self.students[userid]
                values = core.flags_for(acronym)
                line = lines.get(student)
                if line is None:
                    new.append(
                        {"attendance_id": sheet.id, "student_id": student, **values}
                    )
                elif any(line[f] != v for f, v in values.items()):
                    line.write(values)
                    updated += 1
            if new:
                self.env["op.attendance.line"].create(new)
                created += len(new)
        self._store_baseline(session, program, agreed)
        return created, updated, no_batch

    def _store_baseline(self, session, program, agreed):
        # and the session as pulled: a later pull leaves it alone until
        # Moodle changes it (moodle_unchanged)
        digest = core.session_digest(session)
        for batch, mapping in self.links[session["id"]].items():
            extra = dict(mapping.extra_data or {})
            old = extra.get("statuses") or {}
            new = dict(old)
            new.update(
                {
                    str(u): a
                    for u, a in agreed.items()
                    if self._batch(u, program) == batch
                }
            )
            if new != old or (digest and extra.get("moodle") != digest):
                values = {**extra, "statuses": new}
                if digest:
                    values["moodle"] = digest
                mapping.write({"extra_data": values})

    def unlinked_sheets(self, course):
        subject, program = self._subject_program(course)
        sheets = self._sheets(
            [
                ("register_id.course_id", "=", program),
                ("register_id.subject_id", "=", subject),
                ("id", "not in", list(self.linked_sheets)),
                ("attendance_line", "!=", False),
            ]
        )
        return [
            SheetRef(
                sheet.id,
                sheet.attendance_date,
                {
                    self.users[line.student_id.id]: (
                        _line_acronym(line),
                        _epoch(line.write_date),
                    )
                    for line in sheet.attendance_line
                    if line.student_id.id in self.users
                },
            )
            for sheet in sheets
        ]

    def link(self, course, sheet, session):
        record = self.env["op.attendance.sheet"].browse(sheet.ref)
        self._new_link(course, session, record.batch_id.id, record)

    def record_attendances(self, course, attendanceids):
        """Add activity ids found in Moodle to the course mapping's
        ``attendance_ids`` (kept in order, without repeats), in one write."""
        mapping = self.courses[course.courseid]
        extra = dict(mapping.extra_data or {})
        ids = [int(i) for i in extra.get("attendance_ids") or []]
        ids += [int(i) for i in attendanceids if int(i) not in ids]
        mapping.write({"extra_data": {**extra, "attendance_ids": ids}})


class SyncAttendance:
    """Sync attendance of one instance, in the direction it is set to.

    :param instance: a ``moodle.instance``
    :param client: its :class:`~..moodle.MoodleClient`
    :param bool dry_run: read Moodle, write nowhere, return the plan
    """

    def __init__(self, instance, client, dry_run=False):
        # The connector's rights, not the rights of whoever enqueued the job:
        # a Moodle Manager needs no attendance rights for registers and
        # sheets to be written (the push reads OpenEduCat the same way).
        # Nothing the sync writes in OpenEduCat may be pushed back by a hook.
        self.env = instance.env(
            context=dict(
                instance.env.context,
                connector_no_export=True,
                tracking_disable=True,
                mail_create_nolog=True,
                mail_notrack=True,
            ),
            su=True,
        )
        self.instance = instance.with_env(self.env)
        self.client = client
        self.dry_run = dry_run
        self.caps = None

    def _check_prerequisites(self):
        """Check that both ends can do attendance, before every run.

        OpenEduCat: the ``openeducat_attendance`` models are installed (the
        addon does not depend on it). Moodle: the module detector finds the
        attendance plugin in the token's functions, under the current
        ``mod_attendance_*`` or the legacy ``mod_wsattendance_*`` names, and
        every function the sync needs is callable (the client then uses the
        site's names).

        :return: ``(ok, reason)``
        :raise MoodleTransientError, MoodleAccessError: site info failed
        """
        missing = [model for model in ATTENDANCE_MODELS if model not in self.env]
        if missing:
            return False, (
                "openeducat_attendance is not installed in Odoo "
                f"(missing {', '.join(missing)})"
            )
        self.caps = self.client.capabilities()
        return core.moodle_prerequisites(self.caps)

    def _tz(self):
        """The time zone of session dates: the company's, else the admin's.
        Not the running user's, so that a cron and a button agree."""
        admin = self.env.ref("base.user_admin", raise_if_not_found=False)
        return self.env.company.partner_id.tz or (admin and admin.sudo().tz) or "UTC"

    def run(self):
        """Check the prerequisites, then sync every mapped course.

        :return: the counts; ``skipped`` says why nothing was done
        :rtype: ~..sync.attendance.AttendanceResult
        :raise MoodleTransientError, MoodleAccessError: Moodle failed as a whole
        """
        direction = self.instance.sync_attendance_from or core.MOODLE
        ok, reason = self._check_prerequisites()
        if not ok:
            _logger.info(
                "moodle attendance (instance %s) skipped: %s", self.instance.id, reason
            )
            return core.AttendanceResult(direction=direction, skipped=reason)
        side = OdooAttendanceSide(self.env, self.instance, self._tz(), self.dry_run)
        sync = AttendanceSync(
            self.client,
            side,
            direction,
            takenby=self.caps.site.userid,
            can_create=core.can_create(self.caps),
            tz=side.tz,
            dry_run=self.dry_run,
            can_discover=core.can_discover(self.caps),
            mark=side.read_mark() if direction == core.MOODLE else None,
            logs=PLUGIN_ATTENDANCE_LOGS in self.caps.site.functions,
        )
        result = sync.run(side.course_refs())
        if sync.next_mark is not None and not self.dry_run:
            side.save_mark(sync.next_mark)
        return result
