"""SyncGrades and SyncCompletion: Moodle's learning results into OpenEduCat."""

import collections
import dataclasses
import datetime
import json
import logging
import time

from psycopg2.extras import execute_values

from odoo import fields
from odoo.exceptions import UserError, ValidationError
from odoo.models import LOG_ACCESS_COLUMNS, BaseModel
from odoo.tools.translate import code_translations

from ..models.moodle_mapping import in_moodle
from ..moodle import MoodleAccessError, MoodleRecordError, MoodleTransientError
from ..sync import idnumbers
from ..sync.grades import (
    EXAM_LETTERS,
    convert,
    exam_code,
    grade_hash,
    legacy_grade_hash,
    settings_digest,
)
from ..sync.pull import GradeFetcher
from ..sync.reads import CompletionReader, Student, Watermark
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
    a re-conversion first. ``writer`` names where the grades went
    (:attr:`GradeWriter.label`); ``moved`` counts the stored grades written
    again because they were stored by another writer (the enterprise
    gradebook installed since).
    """

    courses: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    unmapped_students: int = 0
    failed_courses: int = 0
    reconverted: int = 0
    reconverted_legacy: int = 0
    moved: int = 0
    writer: str = ""
    completion: dict = dataclasses.field(default_factory=collections.Counter)
    errors: list = dataclasses.field(default_factory=list)
    planned: list = dataclasses.field(default_factory=list)

    def counts(self):
        """The run log's counters (also those of a run that failed part
        way: what it kept)."""
        return {
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "failed": self.failed_courses + self.completion.get("error", 0),
            "blocked": self.unmapped_students,
        }


class GradeWriter:
    """Where a grade pull writes grades: what :class:`SyncGrades` asks of a
    writer, whichever OpenEduCat records it writes.

    :class:`SyncGrades` makes one writer per run (:meth:`SyncGrades._writer`)
    and, for each course:

    1. calls :meth:`write_grade` for each grade to write (changed in Moodle,
       or to convert again), which returns a handle;
    2. calls :meth:`flush` once (writes the writer deferred, in bulk);
    3. asks :meth:`record_id` for each handle: the record, in
       :attr:`res_model`, that the grade's mapping row points to.

    The course's writes run under a savepoint: when OpenEduCat refuses one
    (``UserError``, ``ValidationError``) or the writer cannot place a grade
    (``MoodleRecordError``), the course is rolled back and the run goes on
    with the writer :meth:`after_rollback` returns. Once per run, after the
    last course and never in a dry run, :meth:`recompute` brings totals and
    states up to date over what the run touched.

    :cvar str label: where the grades go, as the run log says it
    :cvar str res_model: the model of the records grade mapping rows point to
    """

    label = ""
    res_model = ""

    def __init__(self, env, instance):
        self.env = env
        self.instance = instance

    def write_grade(self, program, batch, subject, student, row, converted):
        """Write (or prepare) one student's grade for one Moodle item.

        :param program: the ``op.course`` of the Moodle course
        :param batch: the student's ``op.batch`` in that program
        :param subject: the ``op.subject`` of the Moodle course
        :param int student: the ``op.student`` id
        :param row: the :class:`~..sync.grades.GradeRow`
        :param converted: its :class:`~..sync.grades.Converted` marks
        :return: a handle for :meth:`record_id`
        :raise MoodleRecordError, UserError, ValidationError: the course's
            grades cannot be written (the course is rolled back)
        """
        raise NotImplementedError

    def flush(self):
        """Write what :meth:`write_grade` deferred since the last flush."""
        raise NotImplementedError

    def record_id(self, handle):
        """The id of the record (in :attr:`res_model`) holding the grade of
        ``handle``; valid after :meth:`flush`."""
        raise NotImplementedError

    def after_rollback(self):
        """A writer for the next course once a course's writes were rolled
        back: what this one cached may name records that no longer exist."""
        raise NotImplementedError

    def recompute(self):
        """Once per run: totals and states over what the run touched."""
        raise NotImplementedError

    #: The model whose records :meth:`recompute` brings up to date, and the
    #: attribute holding those the run touched.
    touched_model = ""
    touched_attr = ""

    def touched_ids(self):
        """Ids of the records :meth:`recompute` is to go over, kept with the
        grade cycle (:class:`GradeCycle`) so a cycle ended by another run
        still brings them up to date."""
        return getattr(self, self.touched_attr).ids

    def restore_touched(self, ids):
        """Go on with what an unfinished cycle touched."""
        setattr(
            self,
            self.touched_attr,
            getattr(self, self.touched_attr)
            | self.env[self.touched_model].browse(ids).exists(),
        )


# New exams, attendees and result lines are written with SQL, many rows a
# statement, exactly as the ORM's create would write them, as long as their
# models are what this was written against (checked once per writer,
# :func:`_sql_defaults`): OpenEduCat's checks, run here over the whole set
# before writing; the stored computed fields, computed here by OpenEduCat's
# rules; no ``create`` but OpenEduCat's and the chatter's (which, with
# ``tracking_disable``, only creates); nothing stored elsewhere that depends on
# a new row. Otherwise the ORM writes them.
_EXAM_MODULE = "odoo.addons.openeducat_exam.models."


@dataclasses.dataclass(frozen=True)
class _SqlModel:
    """What the SQL path knows of a model: the columns it writes, the checks
    it applies (``(module, qualified name)``), the stored computed fields it
    computes (related path, or the module of the compute method), the
    modules whose ``create`` it does the work of, the fields through which
    stored fields of other records depend on it that a new row leaves empty
    (or that nothing points to yet), and whether defaults (``default_get``)
    are written too or send the model to the ORM."""

    columns: tuple
    checks: frozenset
    computed: dict = dataclasses.field(default_factory=dict)
    creates: frozenset = frozenset()
    unreached: frozenset = frozenset()
    defaults: bool = False


_SQL_MODELS = {
    "op.exam": _SqlModel(
        columns=(
            "id",
            "name",
            "exam_code",
            "session_id",
            "subject_id",
            "start_time",
            "end_time",
            "total_marks",
            "min_marks",
            "course_id",
            "batch_id",
        ),
        checks=frozenset(
            {
                (_EXAM_MODULE + "exam", "OpExam._check_date_time"),
                (_EXAM_MODULE + "exam", "OpExam._check_marks"),
            }
        ),
        computed={
            "course_id": "session_id.course_id",
            "batch_id": "session_id.batch_id",
        },
        # OpenEduCat's (the overlap check, run here over the whole set) and
        # the chatter's.
        creates=frozenset(
            {_EXAM_MODULE + "exam", "odoo.addons.mail.models.mail_thread"}
        ),
        # A new exam has no result line yet.
        unreached=frozenset({"op.result.line.exam_id"}),
        defaults=True,
    ),
    "op.exam.attendees": _SqlModel(
        columns=(
            "exam_id",
            "student_id",
            "course_id",
            "batch_id",
            "marks",
            "note",
            "status",
        ),
        checks=frozenset(
            {
                (_EXAM_MODULE + "exam_attendees", "OpExamAttendees._check_marks"),
                # The same check, record by record (many attendees at once).
                (
                    "odoo.addons.openeducat_moodle_exam.models.op_exam_attendees",
                    "OpExamAttendees._check_marks",
                ),
            }
        ),
    ),
    "op.result.line": _SqlModel(
        columns=("exam_id", "student_id", "marks", "evaluation_type", "status"),
        checks=frozenset({(_EXAM_MODULE + "result_line", "OpResultLine._check_marks")}),
        computed={
            "evaluation_type": "exam_id.session_id.evaluation_type",
            "status": _EXAM_MODULE + "result_line",
        },
        # The lines a pull creates have no marksheet line.
        unreached=frozenset({"op.marksheet.line.result_line"}),
    ),
}


def _sql_defaults(env, name):
    """The defaults a new row of ``name`` gets (``{column: value}``), or
    ``None`` when its rows cannot be written with SQL and be what the ORM's
    ``create`` writes (see above)."""
    known = _SQL_MODELS[name]
    model = env[name]
    cls = type(model)
    creates = [c.__dict__["create"] for c in cls.__mro__ if "create" in c.__dict__]
    if (
        not env.su  # the ORM would check access rules
        or any(
            f is not BaseModel.create and f.__module__ not in known.creates
            for f in creates
        )
        or (known.creates and not env.context.get("tracking_disable"))
        or cls._create is not BaseModel._create
        or not model._log_access
        or model._parent_store
    ):
        return None
    checks = {(m.__module__, m.__qualname__) for m in model._constraint_methods}
    if not checks <= known.checks:
        return None
    unset = []
    for fname, field in model._fields.items():
        if not field.store or fname == "id" or fname in LOG_ACCESS_COLUMNS:
            continue
        if field.compute:
            method = field.compute
            if isinstance(method, str):
                method = getattr(cls, method, None)
            source = field.related or getattr(method, "__module__", None)
            if known.computed.get(fname) != source:
                return None
        elif fname not in known.columns and field.column_type:
            if field.required:
                return None
            unset.append(fname)
    defaults = model.default_get(unset) if unset else {}
    if defaults and not known.defaults:
        return None
    written = [model._fields[f] for f in (*known.columns, *defaults) if f != "id"]
    tree = env.registry.get_trigger_tree(written)
    if any(f.store and f.name not in known.computed for f in tree.root):
        return None
    if any(str(via) not in known.unreached for via in tree):
        return None
    return {
        fname: model._fields[fname].convert_to_column(value, model)
        for fname, value in defaults.items()
    }


def _refused(env, message):
    """OpenEduCat's refusal ``message`` (one of ``openeducat_exam``'s checks),
    in the user's language as OpenEduCat's own code gives it."""
    if env.lang and env.lang != "en_US":
        translations = code_translations.get_python_translations(
            "openeducat_exam", env.lang
        )
        message = translations.get(message, message)
    return ValidationError(message)


def _sql_rows_ok(env):
    """Whether new attendees and result lines can be written with SQL."""
    return all(
        _sql_defaults(env, name) == {}
        for name in ("op.exam.attendees", "op.result.line")
    )


def _insert_rows(env, name, rows, defaults=None):
    """Insert ``rows`` (tuples in the order of the model's ``columns``) into
    ``name``'s table with ``defaults`` and the columns the ORM adds (author,
    dates), in one statement per 1,000 rows; return the new ids, in the order
    of ``rows`` (as the ORM's own multi-row INSERT does)."""
    model = env[name]
    defaults = defaults or {}
    columns = (*_SQL_MODELS[name].columns, *defaults, *LOG_ACCESS_COLUMNS)
    now, uid = env.cr.now(), env.uid
    constant = (*defaults.values(), uid, now, uid, now)
    result = env.cr.execute_values(
        f'INSERT INTO "{model._table}" ({", ".join(columns)}) VALUES %s RETURNING id',
        [row + constant for row in rows],
        page_size=1000,
        fetch=True,
    )
    # Nothing of these rows is cached; what points to them (one2many
    # fields) is read again.
    model.invalidate_model()
    for fname in _SQL_MODELS[name].columns:
        for inverse in env.registry.field_inverses[model._fields[fname]]:
            env[inverse.model_name].invalidate_model([inverse.name])
    return [row[0] for row in result]


class ExamWriter(GradeWriter):
    """The community path: ``op.exam.session`` → ``op.exam`` →
    ``op.exam.attendees`` and ``op.result.line``, found or created
    idempotently by deterministic exam codes.

    One session per (instance, batch); one exam per (grade item, batch).
    """

    label = "exams (op.exam.session, op.exam, op.exam.attendees, op.result.line)"
    res_model = "op.exam.attendees"
    touched_model = "op.exam"
    touched_attr = "touched_exams"

    def __init__(self, env, instance):
        super().__init__(env, instance)
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
        # New attendees and result lines written with SQL (see _sql_rows_ok);
        # new exams too (their defaults, or None: the ORM creates them).
        self._sql = _sql_rows_ok(env)
        self._exam_defaults = _sql_defaults(env, "op.exam")
        self._new_exams = {}  # id -> (session, values): written by flush()
        self.touched_exams = env["op.exam"]

    @property
    def touched_exams(self):
        """The exams the run wrote results to, in the order first touched
        (kept as ids: a recordset union per grade copied every id each time,
        minutes at 100,000 grades and 15,000 exams)."""
        return self.env["op.exam"].browse(tuple(self._touched))

    @touched_exams.setter
    def touched_exams(self, exams):
        self._touched = dict.fromkeys(exams.ids)

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
                values = {
                    "name": row.item_name[:256],
                    "exam_code": code,
                    "session_id": session.id,
                    "subject_id": subject.id,
                    "start_time": start,
                    "end_time": end,
                    "total_marks": converted.total,
                    "min_marks": converted.min_marks,
                }
                if self._exam_defaults is None:
                    exam = self.env["op.exam"].create(values)
                else:
                    exam = self._new_exam(session, values)
                # A new exam has no attendees or results to look up.
                self._attendees[exam.id], self._lines[exam.id] = {}, {}
                self._created_slots[subject.id].append(end)
            self._exams[key] = exam
        if exam.id in self._new_exams:
            # Written by flush(), with this item's marks and name.
            self._touched[exam.id] = None
            return exam
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
        self._touched[exam.id] = None
        return exam

    def _new_exam(self, session, values):
        """An exam written by :meth:`flush` (with SQL), its id taken from its
        sequence now: the writer hands it out before the row exists."""
        exams = self.env["op.exam"]
        self.env.cr.execute("SELECT nextval(%s)", [f"{exams._table}_id_seq"])
        exam = exams.browse(self.env.cr.fetchone()[0])
        self._new_exams[exam.id] = session, values
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

    def write_grade(self, program, batch, subject, student, row, converted):
        session = self.session(program, batch)
        exam = self.exam(session, subject, row, converted)
        self.write_marks(exam, student, batch.id, converted)
        return exam, student

    def record_id(self, handle):
        return self.attendee_id(*handle)

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
            pending = self._new_exams.get(exam.id)
            session = pending[0] if pending else exam.session_id
            new = {
                **values,
                "exam_id": exam.id,
                "student_id": student,
                "course_id": session.course_id.id,
                "batch_id": batch,
            }
            if self._sql or self._bulk:
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
        flush: with SQL where the models allow it (:meth:`_flush_sql`), else
        one ORM create each. New exams go first."""
        self._flush_exams()
        if self._sql:
            self._flush_sql()
            return
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

    def _flush_exams(self):
        """The exams :meth:`exam` handed out since the last flush, in one
        INSERT (per 1,000), after OpenEduCat's checks over the whole set,
        which raise what the ORM's create raises: total and pass marks
        positive, the pass mark not above the total, the exam inside its
        session's dates, and (OpenEduCat's ``create``) no active exam of the
        subject overlapping it. Its course and batch are its session's."""
        new, self._new_exams = self._new_exams, {}
        if not new:
            return
        model = self.env["op.exam"]
        size = model._fields["exam_code"].size
        rows = []
        for exam_id, (session, values) in new.items():
            total, passing = values["total_marks"], values["min_marks"]
            if total <= 0 or passing <= 0:
                raise _refused(self.env, "Enter proper marks!")
            if passing > total:
                raise _refused(
                    self.env, "Passing Marks can't be greater than Total Marks"
                )
            first = datetime.datetime.combine(session.start_date, datetime.time.min)
            last = datetime.datetime.combine(session.end_date, datetime.time.max)
            start, end = values["start_time"], values["end_time"]
            if start > end:
                raise _refused(self.env, "End Time cannot be set before Start Time.")
            if not (first <= start <= last and first <= end <= last):
                raise _refused(
                    self.env, "Exam Time should in between Exam Session Dates."
                )
            rows.append(
                (
                    exam_id,
                    values["name"],
                    values["exam_code"][:size],
                    session.id,
                    values["subject_id"],
                    start,
                    end,
                    total,
                    passing,
                    session.course_id.id or None,
                    session.batch_id.id or None,
                )
            )
        _insert_rows(self.env, "op.exam", rows, self._exam_defaults)
        # OpenEduCat's search for overlapping exams sees active ones only
        # (unless the context says otherwise).
        active = (
            f'AND other."{model._active_name}"'
            if model._active_name and model.env.context.get("active_test", True)
            else ""
        )
        self.env.cr.execute(
            f"""SELECT 1 FROM "{model._table}" new
                  JOIN "{model._table}" other ON other.subject_id = new.subject_id
                   AND other.id != new.id {active}
                   AND other.start_time < new.end_time
                   AND other.end_time > new.start_time
                 WHERE new.id = ANY(%s) LIMIT 1""",
            [list(new)],
        )
        if self.env.cr.fetchone():
            raise _refused(
                self.env,
                "The exam time overlaps with an existing exam for the same subject.",
            )

    def _flush_sql(self):
        """The new attendees and result lines in one INSERT each (per 1,000),
        after OpenEduCat's checks over the whole set, which raise what the
        ORM's create raises before anything is written: an attendee's marks
        between 0 and the exam's total, a line's marks not negative. A line
        gets the stored fields OpenEduCat computes: the evaluation type of the
        exam's session, and ``fail`` below the exam's pass mark, else
        ``pass``. Marks are stored as the ORM stores an integer field."""
        attendees, self._new_attendees = self._new_attendees, {}
        lines, self._new_lines = self._new_lines, []
        exams = {
            exam.id: exam
            for exam in self.env["op.exam"].browse(
                sorted({e for e, _s in attendees} | {v["exam_id"] for v in lines})
            )
        }
        rows = []
        for (exam_id, student), vals in attendees.items():
            marks = int(vals["marks"] or 0)
            total = exams[exam_id].total_marks
            if marks < 0 or marks > total:
                raise _refused(self.env, f"Please Enter Marks between 0 to {total:d}")
            rows.append(
                (
                    exam_id,
                    student,
                    vals["course_id"] or None,
                    vals["batch_id"] or None,
                    marks,
                    vals["note"],
                    vals["status"],
                )
            )
        line_rows = []
        for vals in lines:
            marks = int(vals["marks"] or 0)
            if marks < 0:
                raise _refused(self.env, "Enter proper Marks or Percentage!")
            exam = exams[vals["exam_id"]]
            line_rows.append(
                (
                    exam.id,
                    vals["student_id"],
                    marks,
                    exam.session_id.evaluation_type or None,
                    "fail" if marks < exam.min_marks else "pass",
                )
            )
        if rows:
            new_ids = _insert_rows(self.env, "op.exam.attendees", rows)
            for (exam_id, student), new_id in zip(attendees, new_ids, strict=True):
                self._attendees[exam_id][student] = new_id
        if line_rows:
            new_ids = _insert_rows(self.env, "op.result.line", line_rows)
            for vals, new_id in zip(lines, new_ids, strict=True):
                self._lines[vals["exam_id"]][vals["student_id"]] = (
                    new_id,
                    vals["marks"],
                )

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


class GradebookWriter(GradeWriter):
    """The enterprise path (OpenEduCat Enterprise's ``openeducat_grading``):
    ``grading.assignment`` → ``gradebook.gradebook`` → ``gradebook.line``,
    then ``calculate_percentage()`` and ``student_Grade_override()`` once
    per run over every gradebook the run touched, never per grade.

    One assignment per Moodle grade item (found again by its code,
    ``M<instance>.<G|A|Q>.<item id>``, ids in base 36); one gradebook per
    student and batch; one line per gradebook and assignment, holding the
    converted marks (the assignment holds the total).

    The module is not public: OpenEduCat publishes the model and method
    names, not the fields. The fields this writer reads and writes are its
    own assumption, all listed in :attr:`FIELDS` (the test stand-in,
    ``tests/odoo_addons/openeducat_grading``, defines exactly these).
    """

    MODELS = ("grading.assignment", "gradebook.gradebook", "gradebook.line")
    # Not published: the names to check first against the real module.
    FIELDS = {
        "grading.assignment": ("name", "code", "subject_id", "total_marks"),
        "gradebook.gradebook": ("student_id", "batch_id"),
        "gradebook.line": ("gradebook_id", "assignment_id", "marks"),
    }
    label = (
        "gradebook (openeducat_grading: grading.assignment, gradebook.gradebook, "
        "gradebook.line)"
    )
    res_model = "gradebook.line"
    touched_model = "gradebook.gradebook"
    touched_attr = "touched_gradebooks"

    def __init__(self, env, instance):
        super().__init__(env, instance)
        self._assignments = None  # code -> grading.assignment
        self._gradebooks = {}  # (student id, batch id) -> gradebook id
        self._lines = {}  # (gradebook id, assignment id) -> (line id, marks)
        self._pending = {}  # (student id, batch id, assignment id) -> marks
        self.touched_gradebooks = env["gradebook.gradebook"]

    @classmethod
    def available(cls, env):
        """Whether OpenEduCat's enterprise gradebook is installed, judged as
        the published page does: by its models being there."""
        return all(model in env for model in cls.MODELS)

    def _code(self, row):
        return ".".join(
            (
                "M" + idnumbers.base36(self.instance.id),
                EXAM_LETTERS[row.source],
                idnumbers.base36(int(row.item_id)),
            )
        )

    def assignment(self, subject, row, converted):
        """The assignment of one Moodle grade item (found by its code, or
        created), its name and total brought in line with Moodle's."""
        model = self.env["grading.assignment"]
        if self._assignments is None:
            prefix = "M" + idnumbers.base36(self.instance.id) + "."
            # The oldest assignment of a code wins (read last).
            self._assignments = {
                a.code: a
                for a in model.search(
                    [("code", "=like", prefix + "%")], order="id desc"
                )
            }
        code = self._code(row)
        name = row.item_name[:256]
        assignment = self._assignments.get(code)
        if assignment is None:
            assignment = self._assignments[code] = model.create(
                {
                    "name": name,
                    "code": code,
                    "subject_id": subject.id,
                    "total_marks": converted.total,
                }
            )
            return assignment
        if assignment.total_marks != converted.total:
            assignment.total_marks = converted.total
            # Every gradebook with a line on it has a new percentage.
            self.touched_gradebooks |= (
                self.env["gradebook.line"]
                .search([("assignment_id", "=", assignment.id)])
                .gradebook_id
            )
        if assignment.name != name:
            assignment.name = name
        return assignment

    def write_grade(self, program, batch, subject, student, row, converted):
        assignment = self.assignment(subject, row, converted)
        handle = (student, batch.id, assignment.id)
        self._pending[handle] = converted.marks
        return handle

    def _load_gradebooks(self, keys):
        """The gradebooks of these (student, batch) pairs: the missing ones
        read in one query, those still missing created in one call."""
        missing = {k for k in keys if k not in self._gradebooks}
        if not missing:
            return
        model = self.env["gradebook.gradebook"]
        for row in model.search_read(
            [
                ("student_id", "in", sorted({s for s, _b in missing})),
                ("batch_id", "in", sorted({b for _s, b in missing})),
            ],
            ["student_id", "batch_id"],
            order="id desc",
            load="",
        ):
            # The oldest gradebook of a pair wins (read last).
            key = row["student_id"], row["batch_id"]
            if key in missing:
                self._gradebooks[key] = row["id"]
        new = sorted(k for k in missing if k not in self._gradebooks)
        if new:
            created = model.create(
                [{"student_id": student, "batch_id": batch} for student, batch in new]
            )
            self._gradebooks.update(zip(new, created.ids, strict=True))

    def _load_lines(self, keys):
        """The lines of these (gradebook, assignment) pairs, one query."""
        missing = {k for k in keys if k not in self._lines}
        if not missing:
            return
        for row in self.env["gradebook.line"].search_read(
            [
                ("gradebook_id", "in", sorted({g for g, _a in missing})),
                ("assignment_id", "in", sorted({a for _g, a in missing})),
            ],
            ["gradebook_id", "assignment_id", "marks"],
            order="id desc",
            load="",
        ):
            key = row["gradebook_id"], row["assignment_id"]
            if key in missing:
                self._lines[key] = row["id"], row["marks"]

    def flush(self):
        """Write the lines collected since the last flush: gradebooks and
        lines read in one query each, new ones created in one call each,
        changed lines written one by one."""
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        self._load_gradebooks({(s, b) for s, b, _a in pending})
        self._load_lines({(self._gradebooks[s, b], a) for s, b, a in pending})
        lines = self.env["gradebook.line"]
        new = []
        for (student, batch, assignment), marks in pending.items():
            gradebook = self._gradebooks[student, batch]
            line = self._lines.get((gradebook, assignment))
            if line is None:
                new.append(
                    {
                        "gradebook_id": gradebook,
                        "assignment_id": assignment,
                        "marks": marks,
                    }
                )
            elif line[1] != marks:
                lines.browse(line[0]).marks = marks
                self._lines[gradebook, assignment] = line[0], marks
        if new:
            for vals, line in zip(new, lines.create(new), strict=True):
                self._lines[vals["gradebook_id"], vals["assignment_id"]] = (
                    line.id,
                    vals["marks"],
                )
        self.touched_gradebooks |= self.env["gradebook.gradebook"].browse(
            sorted({self._gradebooks[s, b] for s, b, _a in pending})
        )

    def record_id(self, handle):
        student, batch, assignment = handle
        return self._lines[self._gradebooks[student, batch], assignment][0]

    def after_rollback(self):
        writer = GradebookWriter(self.env, self.instance)
        writer.touched_gradebooks = self.touched_gradebooks.exists()
        return writer

    def recompute(self):
        """Once per run, over every gradebook the run touched: OpenEduCat's
        own ``calculate_percentage()`` then ``student_Grade_override()``, one
        call each (the published page: once per batch, not per grade)."""
        gradebooks = self.touched_gradebooks.exists()
        if gradebooks:
            gradebooks.calculate_percentage()
            gradebooks.student_Grade_override()


class GradeCycle:
    """Where the current read of every course's grades (a cycle) stands:
    begun at :attr:`started` (unix time; 0: no cycle under way), every course
    up to Moodle id :attr:`after` read and kept, :attr:`touched` the ids the
    writer is to bring up to date at the cycle's end (as ``[first, last]``
    ranges: records created together have consecutive ids). When runs fail
    at the same course, :attr:`stuck` is that course and :attr:`tries` how
    many runs in a row did (:attr:`stuck_error`: the last error);
    :attr:`failed` the courses of the cycle whose grades could not be read or
    written (every run of the cycle counts them, so that only a cycle that got
    through every course reports none).

    Kept in a mapping row of the ``grade`` kind on the instance (key
    :attr:`KEY`, no idnumber: no course's grade look-up finds it), written in
    the transaction that keeps the course's grades, removed when the cycle
    ends.
    Only grade pulls write grade rows, one at a time per instance (their run
    lock), so this row never makes another run wait.
    """

    KEY = "grade_reads"

    def __init__(self, instance, row, data):
        self.instance = instance
        self.row = row
        self.started = int(data.get("started") or 0)
        self.after = int(data.get("after") or 0)
        self.stuck = int(data.get("stuck") or 0)
        self.tries = int(data.get("tries") or 0)
        self.stuck_error = data.get("stuck_error") or ""
        self.failed = list(data.get("failed") or [])
        self.touched = [
            i
            for first, last in data.get("touched") or []
            for i in range(first, last + 1)
        ]

    @classmethod
    def load(cls, instance):
        row = (
            instance.env["moodle.mapping"]
            .sudo()
            .search(
                [
                    ("instance_id", "=", instance.id),
                    ("moodle_model", "=", "grade"),
                    ("external_key", "=", cls.KEY),
                ],
                limit=1,
            )
        )
        return cls(instance, row, row.extra_data or {})

    @staticmethod
    def _ranges(ids):
        ranges = []
        for i in sorted(set(ids)):
            if ranges and ranges[-1][1] == i - 1:
                ranges[-1][1] = i
            else:
                ranges.append([i, i])
        return ranges

    def save(self):
        data = {
            "started": self.started,
            "after": self.after,
            "touched": self._ranges(self.touched),
            "stuck": self.stuck,
            "tries": self.tries,
            "stuck_error": self.stuck_error,
            "failed": self.failed,
        }
        self._write(data)

    def clear(self):
        """The cycle is over: the next run begins another. The row goes with
        it (it exists only while a cycle is under way)."""
        self.started, self.after, self.touched = 0, 0, []
        self.row.unlink()
        self.row = self.row.browse()

    def _write(self, data):
        values = {
            "extra_data": data,
            "state": "synced",
            "last_sync_date": fields.Datetime.now(),
        }
        if self.row:
            self.row.write(values)
        else:
            self.row = (
                self.instance.env["moodle.mapping"]
                .sudo()
                .create(
                    {
                        "instance_id": self.instance.id,
                        "moodle_model": "grade",
                        "external_key": self.KEY,
                        "res_model": self.instance._name,
                        "res_id": self.instance.id,
                        **values,
                    }
                )
            )


class SyncGrades:
    """Pull grades of one instance into OpenEduCat.

    :cvar int STUCK_TRIES: runs in a row that may fail at one course before
        the cycle goes on without it

    :param instance: a ``moodle.instance``
    :param client: its :class:`~..moodle.MoodleClient`
    :param bool dry_run: compute what would be written, write nothing
    """

    STUCK_TRIES = 3

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
        self._fetcher = None
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

    def _writer(self, env):
        """The :class:`GradeWriter` of this database, on ``env``: OpenEduCat
        Enterprise's gradebook when ``openeducat_grading`` is installed (it
        takes priority, as OpenEduCat's own connector does), else the exams
        of ``openeducat_exam``, else ``None``."""
        instance = self.instance.with_env(env)
        if GradebookWriter.available(env):
            return GradebookWriter(env, instance)
        if "op.exam" in env:
            return ExamWriter(env, instance)
        return None

    def pull_all_combined(self):
        """Pull every source the instance enables, then completion.

        Grades are read course after course, each course's committed once
        written (:meth:`_pull_cycle`): a run that fails part way keeps what
        it wrote, and the next one goes on with the courses not read yet.

        :rtype: PullResult
        :raise MoodleTransientError, MoodleAccessError: Moodle failed as a whole
        """
        try:
            return self._pull_all_combined()
        except (MoodleTransientError, MoodleAccessError) as err:
            # The run log shows what the run kept before it failed.
            err.partial_counts = self.result.counts()
            raise

    def _pull_all_combined(self):
        instance = self.instance
        self._prefetch_mappings()
        sources = any(
            (instance.pull_gradebook, instance.pull_assignments, instance.pull_quizzes)
        )
        if self._writer(self.env) is None:
            self.result.errors.append(
                "neither openeducat_grading nor openeducat_exam is installed: "
                "grades have nowhere to go"
            )
            if sources:
                # Not one course's grades could be written: no success.
                self.result.failed_courses += len(self._course_map)
        elif sources:
            if self.dry_run:
                writer = self._writer(self.env)
                self._pull_courses(writer, sorted(self._course_map))
                self._note_reconversion(writer)
            else:
                with instance._moodle_committing(self.env) as (env, commit):
                    self._pull_cycle(env, commit)
        if instance.pull_completion and instance.completion_schedule == "with_grades":
            SyncCompletion(self.instance, self.client, self.dry_run, self.result).run()
        if sources and not self.dry_run:
            # The cycle ends with the run: a run whose completion failed has
            # its grades read; the next one goes straight to completion.
            with instance._moodle_committing(self.env) as (env, _commit):
                GradeCycle.load(instance.with_env(env)).clear()
        return self.result

    def _pull_cycle(self, env, commit):
        """Read the courses of the current cycle not read yet, committing
        each, then bring totals up to date once over what the cycle touched.

        A cycle is one read of every course, then completion (when it runs
        with the grades): :meth:`pull_all_combined` ends it. Where it stands
        (:class:`GradeCycle`) is written with each course's grades, in the
        same transaction: a course is either read and kept, or still to
        read. A run that finds a cycle unfinished reads only its remaining
        courses; one that finds none begins a new cycle.
        """
        cycle = GradeCycle.load(self.instance.with_env(env))
        writer = self._writer(env)
        if cycle.started:
            writer.restore_touched(cycle.touched)
            todo = [c for c in sorted(self._course_map) if c > cycle.after]
            begun = datetime.datetime.fromtimestamp(
                cycle.started, datetime.timezone.utc
            )
            self.result.errors.append(
                f"went on with the grade read begun at {begun:%Y-%m-%d %H:%M} "
                f"UTC: {len(todo)} of {len(self._course_map)} courses left"
            )
            if cycle.failed:
                # Still not read: this run's counts say so, until a read of
                # every course gets through them.
                self.result.failed_courses += len(cycle.failed)
                self.result.errors.append(
                    f"{len(cycle.failed)} courses failed earlier in this read "
                    f"(Moodle ids {cycle.failed[:20]}): they are read again in "
                    "the next one"
                )
        else:
            cycle.started = int(time.time())
            todo = sorted(self._course_map)
        if todo and cycle.stuck == todo[0] and cycle.tries >= self.STUCK_TRIES:
            # Not one course read since: this course alone stops the cycle
            # (too slow for Moodle's time limits, or a fault of its own). It
            # waits for the next cycle; the others go on.
            skipped = todo.pop(0)
            self.result.failed_courses += 1
            self.result.errors.append(
                f"course {skipped} ({self._course_map[skipped][0]}): not read "
                f"in this cycle, {cycle.tries} runs in a row failed at it "
                f"(last: {cycle.stuck_error}); it is read again in the next one"
            )
            cycle.after, cycle.stuck, cycle.tries = skipped, 0, 0
            cycle.failed.append(skipped)
        self._grade_store = OdooStore(self.instance.with_env(env))

        # This run's log row (written by the run in a transaction of its own
        # before the work began): it shows what is kept as it is kept, so a
        # worker killed part way leaves its counts.
        run = env["moodle.sync.run"].search(
            [
                ("instance_id", "=", self.instance.id),
                ("kind", "=", "grades"),
                ("state", "=", "running"),
            ],
            order="id desc",
            limit=1,
        )

        def done(courseid, writer, failed):
            cycle.after = courseid
            cycle.stuck = cycle.tries = 0
            if failed:
                cycle.failed.append(courseid)
            cycle.touched = writer.touched_ids()
            cycle.save()
            run.write(
                {
                    k: v
                    for k, v in self.result.counts().items()
                    if k in ("created", "updated", "unchanged", "failed")
                }
            )
            commit()

        try:
            writer = self._pull_courses(writer, todo, done)
        except MoodleTransientError as err:
            # Kept for the next run: the course this one failed at (for the
            # assignment and quiz lists, the first course of their chunk).
            at = self._fetcher and self._fetcher.current
            if at and at > cycle.after:
                cycle.tries = cycle.tries + 1 if cycle.stuck == at else 1
                cycle.stuck, cycle.stuck_error = at, str(err)[:300]
                cycle.save()
                commit()
            raise
        writer.recompute()
        # Every course read and brought up to date: what is left of the run
        # (completion) clears the cycle when it ends.
        cycle.touched = []
        cycle.save()
        commit()
        self._note_reconversion(writer)

    def _pull_courses(self, writer, courseids, done=None):
        """Read and write the grades of ``courseids``, in order; after each
        course, ``done(courseid, writer, failed)``. Returns the writer in
        use."""
        instance = self.instance
        fetcher = self._fetcher = GradeFetcher(
            self.client,
            gradebook=instance.pull_gradebook,
            assignments=instance.pull_assignments,
            quizzes=instance.pull_quizzes,
        )
        self.result.writer = writer.label
        for course in fetcher.fetch(courseids, self._course_students):
            self.result.courses += 1
            failed_before = self.result.failed_courses
            if course.error:
                self.result.failed_courses += 1
                self.result.errors.append(f"course {course.courseid}: {course.error}")
            else:
                try:
                    with writer.env.cr.savepoint():
                        self._apply_course(writer, course)
                except (UserError, ValidationError, MoodleRecordError) as err:
                    # OpenEduCat refused a write (or no exam slot is left):
                    # the course's grades wait for the next cycle, the other
                    # courses go on.
                    self.result.failed_courses += 1
                    self.result.errors.append(f"course {course.courseid}: {err}")
                    writer = writer.after_rollback()
                    self._grade_store = OdooStore(self.instance.with_env(writer.env))
            if done:
                done(
                    course.courseid, writer, self.result.failed_courses > failed_before
                )
        return writer

    def _note_reconversion(self, writer):
        """Say in the run log (first under the counts) where the grades went,
        and that stored grades were converted or written again, and why."""
        done = "to re-convert" if self.dry_run else "re-converted"
        notes = [
            f"grades {'to write' if self.dry_run else 'written'} to the {writer.label}"
        ]
        if self.result.moved:
            notes.append(
                f"grades stored by another writer before: {self.result.moved} "
                f"grades {'to write' if self.dry_run else 'written'} to "
                f"{writer.res_model}"
            )
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
        now = writer.env.cr.now()
        rows, created, updated = [], 0, 0
        for key, mapping, handle, digest, row, converted in written:
            if mapping:
                self._grade_store.remember("grade", key, mapping["id"])
                updated += 1
            else:
                created += 1
            rows.append(
                Mapping(
                    "grade",
                    key,
                    writer.res_model,
                    writer.record_id(handle),
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
        env = writer.env
        course_key, subject_id, program_id = self._course_map[course.courseid]
        existing = {
            m["external_key"]: m
            for m in env["moodle.mapping"]
            .sudo()
            .search_read(
                [
                    ("instance_id", "=", self.instance.id),
                    ("moodle_model", "=", "grade"),
                    ("moodle_idnumber", "=", course_key),
                ],
                ["external_key", "sync_hash", "res_model", "res_id", "extra_data"],
            )
        }
        program = env["op.course"].browse(program_id)
        subject = env["op.subject"].browse(subject_id)
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
            # A grade another writer stored (the enterprise gradebook
            # installed since) is written again, whatever its hash.
            moved = bool(mapping) and mapping["res_model"] != writer.res_model
            if mapping and mapping["sync_hash"] == digest and not moved:
                self.result.unchanged += 1
                continue
            converted = convert(row.raw, row.grademax, row.grademin, **self._settings)
            why = "moved" if moved else mapping and self._reconversion(mapping, row)
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
            handle = writer.write_grade(
                program,
                env["op.batch"].browse(batch),
                subject,
                student,
                row,
                converted,
            )
            written.append((key, mapping, handle, digest, row, converted))
            reconverted[why] += 1
        writer.flush()
        self._store_grade_mappings(writer, course_key, written)
        # Counted once the course's writes went through (a course rolled back
        # counts as failed, not as re-converted).
        self.result.reconverted += reconverted["settings"]
        self.result.reconverted_legacy += reconverted["legacy"]
        self.result.moved += reconverted["moved"]
        if no_batch:
            # Grades left unwritten: the course did not fully succeed.
            self.result.failed_courses += 1
        if unmapped:
            self.result.unmapped_students += len(unmapped)
            self.result.errors.append(
                f"course {course_key}: grades of {len(unmapped)} Moodle user(s) "
                f"with no student mapping were skipped (ids {sorted(unmapped)[:10]})"
            )


def _unix(when):
    """Unix time of a naive UTC datetime (0 for never)."""
    if not when or when == datetime.datetime.min:
        return 0
    return int(when.replace(tzinfo=datetime.timezone.utc).timestamp())


class SyncCompletion:
    """Course completion per student and course, into ``moodle.mapping`` rows
    of kind ``completion`` (one per student enrolment mapping, same key;
    ``extra_data`` ``{"completion": "complete" | "incomplete" |
    "no_criteria", "completed_at": unix time}``). OpenEduCat's enrolment
    itself is not changed. A course without completion criteria is recorded
    as such once, without asking for its other students.

    A run reads only what can have changed since the last successful one
    (:mod:`..sync.reads`): with the companion plugin ``local_openeducat``, the
    rows it lists as changed, many courses a call; without it, the students
    not complete yet who went into their course since (Moodle's last access,
    one call per course), and every student not complete once a day. Where
    the last run stopped (its watermark) is kept on the instance
    (``completion_watermark``), written in a short transaction of its own
    once the run's answers are stored.

    Answers are kept as they come: each course's (and every
    ``COMMIT_EVERY`` answers within a course; each page with the plugin) are
    committed in a short transaction of their own, so a failure at the
    90,000th call keeps the answers before it, and the next run asks the
    students checked longest ago first. No other kind of run writes
    completion rows, so this never collides with a push of the same instance.
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
            (
                courseid,
                [
                    (*student[1:], _unix(student[0]))
                    for student in sorted(courses[courseid])
                ],
            )
            for courseid in sorted(courses, key=lambda c: (checked[c], c))
        ]

    def run(self):
        """Read what can have changed, store it as it comes, then move the
        watermark on.

        :rtype: PullResult
        :raise MoodleTransientError, MoodleAccessError: Moodle failed as a
            whole: what was read is kept, the watermark stays
        """
        if self.client.site_functions is None:
            # One call: the token's functions say whether the plugin is there.
            self.client.capabilities()
        mark = Watermark.load(self.instance.completion_watermark)
        reader = CompletionReader(
            self.client,
            mark,
            time.time(),
            self._store,
            self.result.completion,
            self.result.errors,
        )
        reader.COMMIT_EVERY = self.COMMIT_EVERY
        try:
            following = reader.run(
                [
                    (courseid, [Student(*student) for student in students])
                    for courseid, students in self._todo()
                ]
            )
        except (MoodleTransientError, MoodleAccessError):
            if reader.full and not self.dry_run:
                # The answers are kept; so is where this sweep began, for
                # the next run to go on from there.
                mark.sweep_from = reader.sweep_from
                self.instance._moodle_own_transaction(
                    lambda instance: instance.write(
                        {"completion_watermark": mark.dump()}
                    )
                )
            raise
        if not self.dry_run:
            self.instance._moodle_own_transaction(
                lambda instance: instance.write(
                    {"completion_watermark": following.dump()}
                )
            )
        return self.result

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
