"""SyncGrades and SyncCompletion: Moodle's learning results into OpenEduCat."""

import collections
import dataclasses
import datetime
import json
import logging

from psycopg2.extras import execute_values

from odoo import fields
from odoo.exceptions import UserError, ValidationError

from ..models.moodle_mapping import in_moodle
from ..moodle import MoodleAccessError, MoodleRecordError, MoodleTransientError
from ..sync import idnumbers
from ..sync.grades import (
    convert,
    exam_code,
    grade_hash,
    legacy_grade_hash,
    settings_digest,
)
from ..sync.pull import GradeFetcher
from ..sync.store import Mapping
from .push import OdooStore

_logger = logging.getLogger(__name__)

EXAM_TYPE_CODE = "MOODLE"
# Completion rows: one per student enrolment, upserted on the mapping key.
_UPSERT_COMPLETION_SQL = (
    "INSERT INTO moodle_mapping (instance_id, res_model, res_id, moodle_model, "
    "external_key, state, extra_data, last_sync_date, create_uid, write_uid, "
    "create_date, write_date) VALUES %s "
    "ON CONFLICT (instance_id, moodle_model, external_key) DO UPDATE SET "
    "extra_data = EXCLUDED.extra_data, last_sync_date = EXCLUDED.last_sync_date, "
    "state = 'synced', write_uid = EXCLUDED.write_uid, "
    "write_date = EXCLUDED.write_date"
)


@dataclasses.dataclass
class PullResult:
    """Counts of one pull run.

    ``failed_courses`` counts the courses with any grade that could not be
    written (the whole course rolled back, or single grades refused);
    ``reconverted`` the stored grades, unchanged in Moodle, converted again
    because the conversion settings changed (``reconverted_legacy``: stored
    before 17.0.1.2.0, whose settings nobody recorded). ``errors`` are the
    lines the run log shows under the counts: the problems, and the note of
    a re-conversion first.
    """

    courses: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    unmapped_students: int = 0
    failed_courses: int = 0
    reconverted: int = 0
    reconverted_legacy: int = 0
    completion: dict = dataclasses.field(default_factory=collections.Counter)
    errors: list = dataclasses.field(default_factory=list)
    planned: list = dataclasses.field(default_factory=list)


class ExamWriter:
    """The community path: ``op.exam.session`` → ``op.exam`` →
    ``op.exam.attendees`` and ``op.result.line``, found or created
    idempotently by deterministic exam codes.

    One session per (instance, batch); one exam per (grade item, batch).
    """

    def __init__(self, env, instance):
        self.env = env
        self.instance = instance
        self._sessions = {}
        self._exams = {}
        self._attendees = {}
        self._lines = {}
        self._new_lines = []
        self._new_attendees = {}
        self._exams_by_code = None
        self._latest = {}
        self._created_slots = collections.defaultdict(list)
        # With openeducat_moodle_exam, OpenEduCat's marks check takes many
        # attendees at once: a course's new attendees go in one create.
        self._bulk = bool(
            getattr(env["op.exam.attendees"], "_moodle_bulk_marks", False)
        )
        self.touched_exams = env["op.exam"]

    def _exam_type(self):
        exam_type = self.env["op.exam.type"].search([("code", "=", EXAM_TYPE_CODE)])
        return exam_type or self.env["op.exam.type"].create(
            {"name": "Moodle grades", "code": EXAM_TYPE_CODE}
        )

    def session(self, program, batch):
        key = (program.id, batch.id)
        if key not in self._sessions:
            code = (
                f"MDL{idnumbers.base36(self.instance.id)}.{idnumbers.base36(batch.id)}"
            )
            session = (
                self.env["op.exam.session"]
                .with_context(active_test=False)
                .search([("exam_code", "=", code)])
            )
            if not session:
                session = self.env["op.exam.session"].create(
                    {
                        "name": f"Moodle grades: {batch.name}",
                        "exam_code": code,
                        "course_id": program.id,
                        "batch_id": batch.id,
                        "start_date": batch.start_date,
                        "end_date": batch.end_date,
                        "exam_type": self._exam_type().id,
                        "evaluation_type": "normal",
                    }
                )
            self._sessions[key] = session
        return self._sessions[key]

    def exam(self, session, subject, row, converted):
        """The exam of one grade item and batch (found by its code, which
        carries the item's source, or created), its total and pass marks
        brought in line with ``converted``.

        :raise MoodleRecordError: the code does not fit OpenEduCat's exam
            codes, or no exam slot is left (the course fails, not the run)
        """
        key = (session.id, row.item_key)
        exam = self._exams.get(key)
        if exam is None:
            try:
                code = exam_code(
                    self.instance.id, row.source, row.item_id, session.batch_id.id
                )
            except ValueError as err:
                raise MoodleRecordError(str(err), errorcode="examcode") from err
            exam = self._existing_exam(code)
            if not exam:
                start, end = self._free_slot(session, subject)
                exam = self.env["op.exam"].create(
                    {
                        "name": row.item_name[:256],
                        "exam_code": code,
                        "session_id": session.id,
                        "subject_id": subject.id,
                        "start_time": start,
                        "end_time": end,
                        "total_marks": converted.total,
                        "min_marks": converted.min_marks,
                    }
                )
                # A new exam has no attendees or results to look up.
                self._attendees[exam.id], self._lines[exam.id] = {}, {}
                self._created_slots[subject.id].append(end)
            self._exams[key] = exam
        if (exam.total_marks, exam.min_marks) != (converted.total, converted.min_marks):
            # The item's maximum or the pass threshold changed: marks above
            # the new total are rewritten in the same run.
            exam.write(
                {"total_marks": converted.total, "min_marks": converted.min_marks}
            )
            # OpenEduCat computes a result's pass or fail from its marks
            # alone: the results already there follow the new pass mark.
            results = self.env["op.result.line"].search([("exam_id", "=", exam.id)])
            self.env.add_to_compute(results._fields["status"], results)
        if exam.name != row.item_name[:256]:
            exam.name = row.item_name[:256]
        self.touched_exams |= exam
        return exam

    def _existing_exam(self, code):
        """The exam with this code; the instance's exams are read once."""
        if self._exams_by_code is None:
            prefix = "M" + idnumbers.base36(self.instance.id) + "."
            exams = (
                self.env["op.exam"]
                .with_context(active_test=False)
                .search([("exam_code", "=like", prefix + "%")])
            )
            self._exams_by_code = {e.exam_code: e for e in exams}
        return self._exams_by_code.get(code) or self.env["op.exam"]

    def _free_slot(self, session, subject):
        """A one-minute slot inside the session that no exam of the subject
        overlaps (OpenEduCat refuses overlapping exams of a subject).

        OpenEduCat's rule is per subject, across sessions. The database is
        asked once per subject and session per run; the exams this run
        creates (in any session) are kept and placed after."""
        key = session.id, subject.id
        if key not in self._latest:
            self._latest[key] = self._latest_end(session, subject)
        first = self._latest[key]
        last = datetime.datetime.combine(session.end_date, datetime.time.max)
        start = max(
            [first, *(e for e in self._created_slots[subject.id] if first <= e <= last)]
        )
        end = start + datetime.timedelta(minutes=1)
        if end.date() > session.end_date:
            raise MoodleRecordError(
                f"No free exam slot left for subject {subject.display_name} in "
                f"session {session.exam_code}",
                errorcode="noexamslot",
            )
        return start, end

    def _latest_end(self, session, subject):
        start = datetime.datetime.combine(session.start_date, datetime.time(0, 0))
        latest = self.env["op.exam"].search(
            [
                ("subject_id", "=", subject.id),
                ("end_time", ">=", start),
                (
                    "start_time",
                    "<=",
                    datetime.datetime.combine(session.end_date, datetime.time.max),
                ),
            ],
            order="end_time desc",
            limit=1,
        )
        if latest:
            start = max(start, latest.end_time)
        return start

    def _load(self, exam):
        """Attendees and result lines of an exam, read once per run."""
        if exam.id not in self._attendees:
            self._attendees[exam.id] = {
                row["student_id"][0]: row["id"]
                for row in self.env["op.exam.attendees"].search_read(
                    [("exam_id", "=", exam.id)], ["student_id"]
                )
            }
            self._lines[exam.id] = {
                row["student_id"][0]: (row["id"], row["marks"])
                for row in self.env["op.result.line"].search_read(
                    [("exam_id", "=", exam.id)], ["student_id", "marks"]
                )
            }
        return self._attendees[exam.id], self._lines[exam.id]

    def write_marks(self, exam, student, batch, converted):
        """Write one student's marks.

        An existing attendee is updated; a new one (and a new result line)
        waits for :meth:`flush`, which creates them in bulk. The attendee's id
        is then :meth:`attendee_id`.
        """
        attendees, lines = self._load(exam)
        note = f"Moodle grade: {converted.percentage:.2f}%"
        if converted.letter:
            note += f" ({converted.letter})"
        values = {"marks": converted.marks, "note": note, "status": "present"}
        attendee_id = attendees.get(student)
        if attendee_id:
            self.env["op.exam.attendees"].browse(attendee_id).write(values)
        else:
            new = {
                **values,
                "exam_id": exam.id,
                "student_id": student,
                "course_id": exam.session_id.course_id.id,
                "batch_id": batch,
            }
            if self._bulk:
                self._new_attendees[exam.id, student] = new
            else:
                attendees[student] = self.env["op.exam.attendees"].create(new).id
        line = lines.get(student)
        if line is None:
            self._new_lines.append(
                {"exam_id": exam.id, "student_id": student, "marks": converted.marks}
            )
            lines[student] = (None, converted.marks)
        elif line[1] != converted.marks and line[0]:
            self.env["op.result.line"].browse(line[0]).marks = converted.marks
            lines[student] = (line[0], converted.marks)

    def after_rollback(self):
        """A writer for the next course once a course's writes were rolled
        back: what this one cached may name records that no longer exist."""
        writer = ExamWriter(self.env, self.instance)
        writer.touched_exams = self.touched_exams.exists()
        return writer

    def attendee_id(self, exam, student):
        """The attendee of ``student`` in ``exam`` (after :meth:`flush`)."""
        return self._attendees[exam.id][student]

    def flush(self):
        """Create the attendees and result lines collected since the last
        flush (one create each)."""
        if self._new_attendees:
            created = self.env["op.exam.attendees"].create(
                list(self._new_attendees.values())
            )
            for (exam_id, student), attendee in zip(
                self._new_attendees, created, strict=True
            ):
                self._attendees[exam_id][student] = attendee.id
            self._new_attendees = {}
        if self._new_lines:
            created = self.env["op.result.line"].create(self._new_lines)
            for line, vals in zip(created, self._new_lines, strict=True):
                self._lines[vals["exam_id"]][vals["student_id"]] = (
                    line.id,
                    vals["marks"],
                )
            self._new_lines = []

    def recompute(self):
        """Once per run: exams that received results move to 'Result Updated'.

        ``state`` is read-only on op.exam and there is no method for the step
        to 'held' (OpenEduCat does it in a room-distribution wizard), hence
        the sudo write; the last step uses the model's own method.
        """
        pending = self.touched_exams.filtered(
            lambda e: e.state in ("draft", "schedule")
        )
        pending.sudo().write({"state": "held"})
        self.touched_exams.filtered(lambda e: e.state == "held").act_result_updated()


class SyncGrades:
    """Pull grades of one instance into OpenEduCat.

    :param instance: a ``moodle.instance``
    :param client: its :class:`~..moodle.MoodleClient`
    :param bool dry_run: compute what would be written, write nothing
    """

    def __init__(self, instance, client, dry_run=False):
        # The connector's rights, not the rights of whoever enqueued the job:
        # a Moodle Manager needs no exam rights for grades to be written
        # (the push reads OpenEduCat the same way). Records keep the user as
        # their author. Nothing a pull writes may be pushed back to Moodle.
        self.env = instance.env(
            context=dict(
                instance.env.context, connector_no_export=True, tracking_disable=True
            ),
            su=True,
        )
        self.instance = instance.with_env(self.env)
        self.client = client
        self.dry_run = dry_run
        self.result = PullResult()
        self._student_map = {}
        self._course_map = {}
        self._batch_map = {}
        self._course_students = collections.defaultdict(list)
        self._grade_store = OdooStore(self.instance)
        # Read once per run; their digest is part of every grade's hash.
        self._settings = self.instance._grade_settings()
        self._digest = settings_digest(**self._settings)

    def _mappings(self, kind, fields, domain=()):
        return (
            self.env["moodle.mapping"]
            .sudo()
            .search_read(
                [
                    ("instance_id", "=", self.instance.id),
                    *in_moodle(kind),
                    *domain,
                ],
                fields,
            )
        )

    def _prefetch_mappings(self):
        """Load the instance's student, course and enrolment mappings, one
        query each: nothing is looked up per grade."""
        self._student_map = {
            m["moodle_id"]: m["res_id"]
            for m in self._mappings(
                "user", ["moodle_id", "res_id"], [("res_model", "=", "op.student")]
            )
        }
        for m in self._mappings("course", ["moodle_id", "external_key"]):
            parsed = idnumbers.parse(m["external_key"])
            if parsed:
                self._course_map[m["moodle_id"]] = (m["external_key"], *parsed[1])
        students = set(self._student_map)
        by_key = {v[0]: k for k, v in self._course_map.items()}
        for m in self._mappings(
            "enrolment", ["external_key"], [("res_model", "=", "op.student.course")]
        ):
            user_key, course_key = m["external_key"].split("@", 1)
            courseid = by_key.get(course_key)
            parsed = idnumbers.parse(user_key)
            if courseid and parsed:
                self._course_students[courseid].append(parsed[1][0])
        for row in (
            self.env["op.student.course"]
            .sudo()
            .search_read(
                [("student_id", "!=", False)], ["student_id", "course_id", "batch_id"]
            )
        ):
            self._batch_map[row["student_id"][0], row["course_id"][0]] = row[
                "batch_id"
            ][0]
        reverse = {v: k for k, v in self._student_map.items()}
        self._course_students = {
            c: [reverse[s] for s in ids if s in reverse and reverse[s] in students]
            for c, ids in self._course_students.items()
        }

    def _writer(self):
        if "gradebook.gradebook" in self.env:
            # OpenEduCat Enterprise's gradebook (openeducat_grading) is not
            # available to build against; its grades go the exam path too.
            self.result.errors.append(
                "gradebook.gradebook (OpenEduCat Enterprise) detected: this version "
                "writes grades to exams, not to the enterprise gradebook"
            )
        if "op.exam" in self.env:
            return ExamWriter(self.env, self.instance)
        return None

    def pull_all_combined(self):
        """Pull every source the instance enables, then completion.

        :rtype: PullResult
        :raise MoodleTransientError, MoodleAccessError: Moodle failed as a whole
        """
        instance = self.instance
        self._prefetch_mappings()
        writer = self._writer()
        sources = any(
            (instance.pull_gradebook, instance.pull_assignments, instance.pull_quizzes)
        )
        if writer is None:
            self.result.errors.append(
                "openeducat_exam is not installed: grades have nowhere to go"
            )
            if sources:
                # Not one course's grades could be written: no success.
                self.result.failed_courses += len(self._course_map)
        elif sources:
            fetcher = GradeFetcher(
                self.client,
                gradebook=instance.pull_gradebook,
                assignments=instance.pull_assignments,
                quizzes=instance.pull_quizzes,
            )
            for course in fetcher.fetch(
                sorted(self._course_map), self._course_students
            ):
                self.result.courses += 1
                if course.error:
                    self.result.failed_courses += 1
                    self.result.errors.append(
                        f"course {course.courseid}: {course.error}"
                    )
                    continue
                try:
                    with self.env.cr.savepoint():
                        self._apply_course(writer, course)
                except (UserError, ValidationError, MoodleRecordError) as err:
                    # OpenEduCat refused a write (or no exam slot is left):
                    # the course's grades wait for the next run, the other
                    # courses go on.
                    self.result.failed_courses += 1
                    self.result.errors.append(f"course {course.courseid}: {err}")
                    writer = writer.after_rollback()
                    self._grade_store = OdooStore(self.instance)
            if not self.dry_run:
                self._recompute_gradebooks(writer)
            self._note_reconversion()
        if instance.pull_completion and instance.completion_schedule == "with_grades":
            SyncCompletion(self.instance, self.client, self.dry_run, self.result).run()
        return self.result

    def _note_reconversion(self):
        """Say in the run log (first under the counts) that stored grades
        were converted again, and why."""
        done = "to re-convert" if self.dry_run else "re-converted"
        notes = []
        if self.result.reconverted:
            notes.append(
                f"conversion settings changed: {self.result.reconverted} grades {done}"
            )
        if self.result.reconverted_legacy:
            notes.append(
                f"conversion settings not recorded (grades stored before "
                f"17.0.1.2.0): {self.result.reconverted_legacy} grades {done} "
                "with the current settings"
            )
        self.result.errors[:0] = notes

    def _store_grade_mappings(self, writer, course_key, written):
        """One mapping row per grade, written in bulk by the push's
        :class:`~.push.OdooStore` (new rows with COPY, changed rows with one
        multi-row UPDATE)."""
        now = self.env.cr.now()
        rows, created, updated = [], 0, 0
        for key, mapping, exam, student, digest, row, converted in written:
            if mapping:
                self._grade_store.remember("grade", key, mapping["id"])
                updated += 1
            else:
                created += 1
            rows.append(
                Mapping(
                    "grade",
                    key,
                    "op.exam.attendees",
                    writer.attendee_id(exam, student),
                    idnumber=course_key,
                    sync_hash=digest,
                    state="synced",
                    last_sync=now,
                    extra={
                        "raw": row.raw,
                        "grademax": row.grademax,
                        "grademin": row.grademin,
                        "source": row.source,
                        "item": row.item_id,
                        "letter": converted.letter,
                        "settings": self._digest,
                    },
                )
            )
        self._grade_store.save(rows)
        self.result.created += created
        self.result.updated += updated

    def _recompute_gradebooks(self, writer):
        """Once per run, over everything the run touched."""
        writer.recompute()

    def _reconversion(self, mapping, row):
        """Why a stored grade whose hash differs is written again: ``"settings"``
        when Moodle's grade is the one stored and only the conversion settings
        changed, ``"legacy"`` when it was stored before the settings were
        recorded, else ``None`` (the grade itself changed)."""
        extra = mapping.get("extra_data") or {}
        stored = extra.get("settings")
        if stored:
            same = mapping["sync_hash"] == grade_hash(
                row.raw, row.grademax, row.grademin, stored
            )
            return "settings" if same and stored != self._digest else None
        if mapping["sync_hash"] == legacy_grade_hash(row.raw, row.grademax):
            return "legacy"
        return None

    def _apply_course(self, writer, course):
        course_key, subject_id, program_id = self._course_map[course.courseid]
        existing = {
            m["external_key"]: m
            for m in self.env["moodle.mapping"]
            .sudo()
            .search_read(
                [
                    ("instance_id", "=", self.instance.id),
                    ("moodle_model", "=", "grade"),
                    ("moodle_idnumber", "=", course_key),
                ],
                ["external_key", "sync_hash", "res_id", "extra_data"],
            )
        }
        program = self.env["op.course"].browse(program_id)
        subject = self.env["op.subject"].browse(subject_id)
        unmapped = set()
        written = []
        reconverted = collections.Counter()
        no_batch = 0
        for row in course.rows:
            student = self._student_map.get(row.userid)
            if student is None:
                unmapped.add(row.userid)
                continue
            key = f"{idnumbers.student(student)}@{course_key}#{row.item_key}"
            digest = grade_hash(row.raw, row.grademax, row.grademin, self._digest)
            mapping = existing.get(key)
            if mapping and mapping["sync_hash"] == digest:
                self.result.unchanged += 1
                continue
            converted = convert(row.raw, row.grademax, row.grademin, **self._settings)
            why = mapping and self._reconversion(mapping, row)
            if self.dry_run:
                reconverted[why] += 1
                self.result.planned.append(
                    {
                        "key": key,
                        "action": "update" if mapping else "create",
                        "marks": converted.marks,
                        "total": converted.total,
                    }
                )
                continue
            batch = self._batch_map.get((student, program_id))
            if not batch:
                no_batch += 1
                self.result.errors.append(
                    f"{key}: the student has no batch in the program"
                )
                continue
            session = writer.session(program, self.env["op.batch"].browse(batch))
            exam = writer.exam(session, subject, row, converted)
            writer.write_marks(exam, student, batch, converted)
            written.append((key, mapping, exam, student, digest, row, converted))
            reconverted[why] += 1
        writer.flush()
        self._store_grade_mappings(writer, course_key, written)
        # Counted once the course's writes went through (a course rolled back
        # counts as failed, not as re-converted).
        self.result.reconverted += reconverted["settings"]
        self.result.reconverted_legacy += reconverted["legacy"]
        if no_batch:
            # Grades left unwritten: the course did not fully succeed.
            self.result.failed_courses += 1
        if unmapped:
            self.result.unmapped_students += len(unmapped)
            self.result.errors.append(
                f"course {course_key}: grades of {len(unmapped)} Moodle user(s) "
                f"with no student mapping were skipped (ids {sorted(unmapped)[:10]})"
            )


class SyncCompletion:
    """Course completion per student and course, into ``moodle.mapping`` rows
    of kind ``completion`` (one per student enrolment mapping, same key;
    ``extra_data`` ``{"completion": "complete" | "incomplete" |
    "no_criteria", "completed_at": unix time}``). OpenEduCat's enrolment
    itself is not changed. A course without completion criteria is recorded
    as such once, without asking for its other students.

    Answers are kept as they come: each course's (and every
    ``COMMIT_EVERY`` answers within a course) are committed in a short
    transaction of their own, so a failure at the 90,000th call keeps the
    answers before it, and the next run asks the students checked longest
    ago first. No other kind of run writes completion rows, so this never
    collides with a push of the same instance.
    """

    COMMIT_EVERY = 500

    def __init__(self, instance, client, dry_run=False, result=None):
        self.instance = instance
        self.client = client
        self.dry_run = dry_run
        self.result = result or PullResult()

    def _todo(self):
        """``[(courseid, [(key, res_id, userid, status)])]``, the courses
        whose students were checked longest ago (or never) first."""
        mapping_model = self.instance.env["moodle.mapping"].sudo()
        domain = [("instance_id", "=", self.instance.id)]
        enrolments = mapping_model.search_read(
            domain
            + [
                ("moodle_model", "=", "enrolment"),
                ("res_model", "=", "op.student.course"),
                ("state", "=", "synced"),
            ],
            ["external_key", "res_id"],
            load="",
        )
        known = {
            row["external_key"]: row
            for row in mapping_model.search_read(
                domain + [("moodle_model", "=", "completion")],
                ["external_key", "extra_data", "last_sync_date"],
                load="",
            )
        }
        ids = {
            (row["moodle_model"], row["external_key"]): row["moodle_id"]
            for row in mapping_model.search_read(
                domain
                + [
                    ("moodle_model", "in", ("user", "course")),
                    ("moodle_id", ">", 0),
                    ("state", "!=", "retired"),
                ],
                ["moodle_model", "external_key", "moodle_id"],
                load="",
            )
        }
        courses = collections.defaultdict(list)
        checked = {}
        never = datetime.datetime.min
        for row in enrolments:
            key = row["external_key"]
            user_key, course_key = key.split("@", 1)
            userid = ids.get(("user", user_key))
            courseid = ids.get(("course", course_key))
            if not (userid and courseid):
                continue
            stored = known.get(key) or {}
            when = stored.get("last_sync_date") or never
            courses[courseid].append(
                (when, key, row["res_id"], userid, stored.get("extra_data") or {})
            )
            checked[courseid] = min(checked.get(courseid, when), when)
        return [
            (courseid, [student[1:] for student in sorted(courses[courseid])])
            for courseid in sorted(courses, key=lambda c: (checked[c], c))
        ]

    def run(self):
        for courseid, students in self._todo():
            no_criteria = False
            answers = []
            for key, res_id, userid, stored in students:
                if stored.get("completion") == "complete":
                    # Moodle keeps a completion once reached: no need to ask again.
                    self.result.completion["complete"] += 1
                    continue
                if no_criteria:
                    status = {"completion": "no_criteria"}
                else:
                    try:
                        data = self.client.get_course_completion_status(
                            courseid, userid
                        )
                    except MoodleRecordError as err:
                        self.result.completion["error"] += 1
                        self.result.errors.append(f"{key}: {err}")
                        continue
                    except (MoodleTransientError, MoodleAccessError):
                        # Moodle failed as a whole: keep what this course gave.
                        self._store(answers)
                        raise
                    status = self._status(data)
                    no_criteria = data is None
                self.result.completion[status["completion"]] += 1
                answers.append((key, res_id, status))
                if len(answers) >= self.COMMIT_EVERY:
                    self._store(answers)
                    answers = []
            self._store(answers)
        return self.result

    @staticmethod
    def _status(data):
        if data is None:
            return {"completion": "no_criteria"}
        return {
            "completion": "complete" if data.get("completed") else "incomplete",
            "completed_at": max(
                (c.get("timecompleted") or 0 for c in data.get("completions") or []),
                default=0,
            )
            or None,
        }

    def _store(self, answers):
        """Upsert these answers' completion rows, committed at once."""
        if self.dry_run or not answers:
            return
        instance_id = self.instance.id

        def store(instance):
            env = instance.env
            env["moodle.mapping"].flush_model()
            now = fields.Datetime.now()
            uid = env.uid
            execute_values(
                env.cr._obj,
                _UPSERT_COMPLETION_SQL,
                [
                    (instance_id, "op.student.course", res_id, key)
                    + (json.dumps(status), now, uid, uid, now, now)
                    for key, res_id, status in answers
                ],
                template="(%s, %s, %s, 'completion', %s, 'synced', %s::jsonb, "
                "%s, %s, %s, %s, %s)",
                page_size=1000,
            )
            env["moodle.mapping"].invalidate_model()

        self.instance._moodle_own_transaction(store)
        self.instance.env["moodle.mapping"].invalidate_model()
