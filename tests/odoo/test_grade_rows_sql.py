"""New attendees and result lines go in with SQL (issue 15: a first grade pull
at Moodle's pace), and are exactly what OpenEduCat's ORM writes."""

import contextlib
import dataclasses
import datetime
from unittest.mock import patch

from odoo.exceptions import ValidationError
from odoo.models import BaseModel
from odoo.tests import tagged

from odoo.addons.openeducat_moodle.services import grades
from odoo.addons.openeducat_moodle.services.grades import ExamWriter
from odoo.addons.openeducat_moodle.sync.idnumbers import base36

from .test_pull import GradeSiteCase


class _Undo(Exception):
    pass


MINUTE = datetime.timedelta(minutes=1)


@tagged("post_install", "-at_install")
class TestGradeRowsSql(GradeSiteCase):
    suffix = "Q"

    def setUp(self):
        super().setUp()
        self.instance.write(
            {
                "grade_scale_type": "letter",
                "grade_scale_line_ids": [
                    (0, 0, {"letter": "A", "min_percent": 80, "max_percent": 100}),
                    (0, 0, {"letter": "F", "min_percent": 0, "max_percent": 79.99}),
                ],
            }
        )

    @contextlib.contextmanager
    def creates(self):
        """Count the ORM creates of exams, attendees and result lines (vals
        each).

        ``BaseModel.create`` itself is wrapped: a ``create`` of the model's
        own would send the pull to the ORM (``_sql_rows_ok``)."""
        counted = {"op.exam": [], "op.exam.attendees": [], "op.result.line": []}
        original = BaseModel.create

        def create(records, vals_list):
            if records._name in counted:
                counted[records._name].append(
                    len(vals_list) if isinstance(vals_list, list) else 1
                )
            return original(records, vals_list)

        with patch.object(BaseModel, "create", create):
            yield counted

    def stored(self):
        """Every column of the pull's exams, attendees, result lines and grade
        mapping rows, as the database holds them: ids left out, an exam named
        by its code, a mapping's record by its exam and student."""
        self.env.flush_all()
        cr = self.env.cr
        cr.execute("SELECT id, exam_code FROM op_exam_session")
        sessions = dict(cr.fetchall())
        cr.execute("SELECT * FROM op_exam WHERE exam_code LIKE 'M%%'")
        names = [column.name for column in cr.description]
        rows, keys, codes = {}, {}, {}
        for values in cr.fetchall():
            row = dict(zip(names, values, strict=True))
            codes[row.pop("id")] = row["exam_code"]
            row["session_id"] = sessions[row["session_id"]]
            rows["op_exam", row["exam_code"]] = row
        for table in ("op_exam_attendees", "op_result_line"):
            cr.execute(f"SELECT * FROM {table} WHERE exam_id = ANY(%s)", [list(codes)])
            names = [column.name for column in cr.description]
            for values in cr.fetchall():
                row = dict(zip(names, values, strict=True))
                key = (codes[row["exam_id"]], row["student_id"])
                if table == "op_exam_attendees":
                    keys[row["id"]] = key
                row.pop("id")
                row["exam_id"] = key[0]
                rows[(table, *key)] = row
        cr.execute(
            "SELECT * FROM moodle_mapping WHERE moodle_model = 'grade' "
            "AND instance_id = %s AND res_model = 'op.exam.attendees'",
            [self.instance.id],
        )
        names = [column.name for column in cr.description]
        for values in cr.fetchall():
            row = dict(zip(names, values, strict=True))
            row.pop("id")
            row["res_id"] = keys[row["res_id"]]
            rows["moodle_mapping", row["external_key"]] = row
        return rows

    def test_sql_rows_are_what_the_orm_writes_field_by_field(self):
        self.assertTrue(grades._sql_rows_ok(self.env(su=True)))
        # The ORM's rows: the same pull with the SQL path off, rolled back.
        with (
            contextlib.suppress(_Undo),
            self.env.cr.savepoint(),
            patch.object(grades, "_sql_rows_ok", lambda env: False),
            patch.object(grades, "_sql_defaults", lambda env, name: None),
            self.creates() as orm_creates,
        ):
            self.instance._job_pull_grades()
            orm = self.stored()
            raise _Undo
        self.env.invalidate_all()
        self.assertFalse(self.attendees(self.data["ann"]))
        with self.creates() as sql_creates:
            self.instance._job_pull_grades()
        sql = self.stored()
        self.assertEqual(
            orm_creates,
            {"op.exam": [1, 1, 1], "op.exam.attendees": [4], "op.result.line": [4]},
        )
        self.assertEqual(
            sql_creates, {"op.exam": [], "op.exam.attendees": [], "op.result.line": []}
        )
        # Ann's three grades and Ben's oral: 3 exams, 4 attendees, 4 lines,
        # 4 mappings, a failed line (Ben, 40 of 100, pass mark 50), letters in
        # notes; the exams brought to 'Result Updated' by the same writes.
        self.assertEqual(len(sql), 15)
        self.assertEqual(sql.keys(), orm.keys())
        for key, row in orm.items():
            self.assertEqual(sql[key], row, key)
        lines = {k: r for k, r in sql.items() if k[0] == "op_result_line"}
        self.assertEqual(
            sorted(r["status"] for r in lines.values()),
            ["fail", "pass", "pass", "pass"],
        )
        self.assertEqual({r["evaluation_type"] for r in lines.values()}, {"normal"})
        now = self.env.cr.now()
        for key, row in sql.items():
            self.assertEqual(
                (row["create_uid"], row["write_uid"]), (self.env.uid,) * 2, key
            )
            self.assertEqual((row["create_date"], row["write_date"]), (now, now), key)
        notes = sorted(r["note"] for k, r in sql.items() if k[0] == "op_exam_attendees")
        self.assertIn("Moodle grade: 85.00% (A)", notes)
        exams = [r for k, r in sql.items() if k[0] == "op_exam"]
        self.assertEqual(
            {(r["state"], r["active"], r["course_id"]) for r in exams},
            {("result_updated", True, self.data["program"].id)},
        )
        # What the ORM reads back after the SQL writes: caches invalidated.
        ann = self.attendees(self.data["ann"])
        self.assertEqual(len(ann.exam_id.attendees_line), 4)
        self.assertEqual(sorted(ann.mapped("marks")), [73, 85, 85])

    def test_marks_outside_the_exam_refuse_the_course_before_any_row(self):
        """OpenEduCat's check (marks between 0 and the exam's total) applies
        to the whole set: the course is refused as the ORM's create refuses
        it, and no attendee or line of it is written."""
        original = grades.convert

        def convert(raw, grademax, grademin, **settings):
            converted = original(raw, grademax, grademin, **settings)
            if raw == 20.0:  # Ben's oral
                return dataclasses.replace(converted, marks=converted.total + 1)
            return converted

        bio = self.data["subjects"][1]
        course = self.fm.find_course(
            idnumber=f"oec_subj_{bio.id}_course_{self.data['program'].id}"
        )
        lab = self.fm.add_manual_item(course["id"], "Lab report", grademax=10.0)
        self.fm.set_manual_grade(lab, self.ann_id, 9.0)
        with patch.object(grades, "convert", convert), self.creates() as creates:
            summary = self.instance._job_pull_grades()
        self.assertEqual(
            creates, {"op.exam": [], "op.exam.attendees": [], "op.result.line": []}
        )
        self.assertIn("1 courses failed", summary)
        run = self.env["moodle.sync.run"].search(
            [("instance_id", "=", self.instance.id)], order="id desc", limit=1
        )
        self.assertIn("Please Enter Marks between 0 to 100", run.message or "")
        self.assertFalse(self.attendees(self.data["ann"]))
        self.assertFalse(
            self.env["op.result.line"].search(
                [("exam_id.subject_id", "=", self.alg.id)]
            )
        )
        # Biology went on.
        lab_attendee = self.env["op.exam.attendees"].search(
            [
                ("student_id", "=", self.data["ann"].id),
                ("exam_id.subject_id", "=", bio.id),
            ]
        )
        self.assertEqual(lab_attendee.marks, 90)

    def test_a_negative_result_line_is_refused_as_the_orm_refuses_it(self):
        self.instance._job_pull_grades()
        exam = self.attendees(self.data["ann"]).exam_id[:1]
        other = self.env["op.student"].create(
            {"name": "Cy Dee", "first_name": "Cy", "last_name": "Dee"}
        )
        lines = self.env["op.result.line"]
        before = lines.search_count([])
        with (
            self.assertRaisesRegex(ValidationError, "Enter proper Marks"),
            self.env.cr.savepoint(),
        ):
            lines.create({"exam_id": exam.id, "student_id": other.id, "marks": -1})
        writer = ExamWriter(self.env(su=True), self.instance)
        self.assertTrue(writer._sql)
        writer._attendees[exam.id], writer._lines[exam.id] = {}, {}
        writer._new_lines = [{"exam_id": exam.id, "student_id": other.id, "marks": -1}]
        with self.assertRaisesRegex(ValidationError, "Enter proper Marks"):
            writer.flush()
        self.assertEqual(lines.search_count([]), before)

    def refused(self, orm, **patches):
        """The run log's message of a pull with ``patches`` on the writer,
        written by the ORM (``orm``) or with SQL; rolled back."""
        off = {"_sql_rows_ok": lambda env: False, "_sql_defaults": lambda e, n: None}
        with contextlib.ExitStack() as stack:
            stack.enter_context(contextlib.suppress(_Undo))
            stack.enter_context(self.env.cr.savepoint())
            for name, value in (off if orm else {}).items():
                stack.enter_context(patch.object(grades, name, value))
            for name, value in patches.items():
                stack.enter_context(patch.object(ExamWriter, name, value))
            creates = stack.enter_context(self.creates())
            summary = self.instance._job_pull_grades()
            self.assertEqual(bool(creates["op.exam"]), orm)
            run = self.env["moodle.sync.run"].search(
                [("instance_id", "=", self.instance.id)], order="id desc", limit=1
            )
            message = run.message
            self.assertIn("1 courses failed", summary)
            # No exam of the course's is left (the teacher's stays).
            self.assertFalse(
                self.env["op.exam"].search(
                    [
                        ("subject_id", "=", self.alg.id),
                        ("exam_code", "=like", f"M{base36(self.instance.id)}.%"),
                    ]
                )
            )
            raise _Undo
        self.env.invalidate_all()
        return message

    def test_exams_are_refused_as_openeducat_refuses_them(self):
        """OpenEduCat's checks on exams (and its overlap check on create)
        over the whole set: each refusal the ORM raises, raised the same."""
        d = self.data
        batch = d["batch"]
        session = self.env["op.exam.session"].create(
            {
                "name": "Mid-terms",
                "exam_code": "MIDTERMS-Q",
                "course_id": d["program"].id,
                "batch_id": batch.id,
                "start_date": batch.start_date,
                "end_date": batch.end_date,
                "exam_type": self.env["op.exam.type"]
                .create({"name": "Mid", "code": "MIDQ"})
                .id,
                "evaluation_type": "normal",
            }
        )
        start = datetime.datetime.combine(batch.start_date, datetime.time(9, 0))
        self.env["op.exam"].create(
            {
                "name": "Written mid-term",
                "exam_code": "MID-ALG-Q",
                "session_id": session.id,
                "subject_id": self.alg.id,
                "start_time": start,
                "end_time": start + datetime.timedelta(hours=2),
                "total_marks": 100,
                "min_marks": 40,
            }
        )
        written = self.env["op.exam"].search([("subject_id", "=", self.alg.id)])
        late = datetime.datetime.combine(batch.end_date, datetime.time(23, 59))
        cases = {
            "overlaps with an existing exam": {
                "_free_slot": lambda w, s, subject: (start, start + MINUTE)
            },
            "in between Exam Session Dates": {
                "_free_slot": lambda w, s, subject: (late, late + MINUTE)
            },
            "End Time cannot be set before Start Time": {
                "_free_slot": lambda w, s, subject: (start, start - MINUTE)
            },
        }
        for message, patches in cases.items():
            orm = self.refused(True, **patches)
            self.assertIn(message, orm)
            self.assertEqual(self.refused(False, **patches), orm)
        original = grades.convert
        for message, change in {
            "Enter proper marks": {"total": 0, "min_marks": 0},
            "Passing Marks can't be greater": {"min_marks": 101},
        }.items():

            def convert(*args, change=change, **settings):
                return dataclasses.replace(original(*args, **settings), **change)

            with patch.object(grades, "convert", convert):
                orm = self.refused(True)
                self.assertIn(message, orm)
                self.assertEqual(self.refused(False), orm)
        self.assertEqual(
            self.env["op.exam"].search([("subject_id", "=", self.alg.id)]), written
        )

    def test_models_changed_by_another_module_are_written_by_the_orm(self):
        env = self.env(su=True)
        self.assertTrue(grades._sql_rows_ok(env))
        self.assertIsNotNone(grades._sql_defaults(env, "op.exam"))
        clerk = self.env["res.users"].create({"name": "Clerk", "login": "clerk_sql_q"})
        # The ORM would check the user's access rules; without
        # tracking_disable, the chatter's create does more than create.
        self.assertFalse(grades._sql_rows_ok(self.env(user=clerk)))
        self.assertIsNone(grades._sql_defaults(env(context={}), "op.exam"))
        # A check OpenEduCat (or another module) adds that the SQL path does
        # not know; a default on a column the SQL path leaves empty; a stored
        # field elsewhere depending on result lines.
        models = grades._SQL_MODELS
        unknown = {
            name: dataclasses.replace(models[name], checks=frozenset())
            for name in models
        }
        with patch.dict(models, {"op.result.line": unknown["op.result.line"]}):
            self.assertFalse(grades._sql_rows_ok(env))
        model = type(env["op.exam.attendees"])
        with patch.object(model, "default_get", lambda records, names: {"room_id": 1}):
            self.assertFalse(grades._sql_rows_ok(env))
        line = dataclasses.replace(models["op.result.line"], unreached=frozenset())
        with patch.dict(models, {"op.result.line": line}):
            self.assertFalse(grades._sql_rows_ok(env))
        with patch.dict(models, unknown), self.creates() as creates:
            self.instance._job_pull_grades()
        self.assertEqual(
            creates,
            {"op.exam": [1, 1, 1], "op.exam.attendees": [4], "op.result.line": [4]},
        )
        self.assertEqual(
            self.marks(self.data["ann"]),
            {"Essay": 73, "Weekly quiz": 85, "Oral exam": 85},
        )
