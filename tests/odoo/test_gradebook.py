"""The enterprise gradebook path: with ``openeducat_grading`` installed, a
grade pull writes ``grading.assignment`` → ``gradebook.gradebook`` →
``gradebook.line`` and calls ``calculate_percentage()`` and
``student_Grade_override()`` once per run, not per grade.

OpenEduCat Enterprise's module is not public: these tests run against the
stand-in ``tests/odoo_addons/openeducat_grading``, which defines the published
names and nothing more. Once installed, that path takes priority for the whole
database, so ``tests/run.sh`` runs this file alone in a second database
(``${ODOO_DB}_grading``, the stand-in installed); everywhere else it skips.
"""

import contextlib
import inspect
import unittest
from unittest.mock import patch

import odoo
from odoo.exceptions import ValidationError
from odoo.tests import tagged
from odoo.tests.common import get_db_name

from odoo.addons.openeducat_moodle.services.grades import (
    ExamWriter,
    GradebookWriter,
    GradeWriter,
    SyncGrades,
)
from odoo.addons.openeducat_moodle.sync.idnumbers import base36

from .test_pull import GradeSiteCase

STAND_IN = "odoo.addons.openeducat_grading"
# What OpenEduCat's grade-sync page names (and the stand-in defines).
PUBLISHED_MODELS = {"grading.assignment", "gradebook.gradebook", "gradebook.line"}
PUBLISHED_METHODS = {
    "gradebook.gradebook": {"calculate_percentage", "student_Grade_override"}
}
MAGIC_FIELDS = {
    "id",
    "display_name",
    "create_uid",
    "create_date",
    "write_uid",
    "write_date",
}
RECOMPUTE = ("calculate_percentage", "student_Grade_override")


class GradebookCase(GradeSiteCase):
    @classmethod
    def setUpClass(cls):
        if "gradebook.gradebook" not in odoo.registry(get_db_name()):
            raise unittest.SkipTest(
                "openeducat_grading (or its stand-in, tests/odoo_addons) is not "
                "installed in this database: tests/run.sh runs this file in "
                "${ODOO_DB}_grading, where it is"
            )
        super().setUpClass()

    def lines(self, student, subject=None):
        """``{assignment name: marks}`` of a student's gradebook lines."""
        lines = self.env["gradebook.line"].search(
            [
                ("gradebook_id.student_id", "=", student.id),
                ("assignment_id.subject_id", "=", (subject or self.alg).id),
            ]
        )
        return {line.assignment_id.name: line.marks for line in lines}

    def code(self, letter, item):
        return f"M{base36(self.instance.id)}.{letter}.{base36(item)}"

    def grade_rows(self):
        return self.env["moodle.mapping"].search(
            [("instance_id", "=", self.instance.id), ("moodle_model", "=", "grade")]
        )

    def moodle_exams(self):
        return self.env["op.exam"].search(
            [("exam_code", "=like", f"M{base36(self.instance.id)}.%")]
        )

    @contextlib.contextmanager
    def recompute_calls(self):
        """Record each call of the two published methods, with the ids of
        the gradebooks it was called on."""
        model = type(self.env["gradebook.gradebook"])
        calls = []

        def recorder(name):
            original = getattr(model, name)

            def method(records):
                calls.append((name, frozenset(records.ids)))
                return original(records)

            return method

        with (
            patch.object(model, RECOMPUTE[0], recorder(RECOMPUTE[0])),
            patch.object(model, RECOMPUTE[1], recorder(RECOMPUTE[1])),
        ):
            yield calls

    def assert_recomputed_once(self, calls, gradebooks):
        ids = frozenset(gradebooks.ids)
        self.assertEqual(calls, [(RECOMPUTE[0], ids), (RECOMPUTE[1], ids)])

    def last_run(self):
        return self.env["moodle.sync.run"].search(
            [("instance_id", "=", self.instance.id)], order="id desc", limit=1
        )


@tagged("post_install", "-at_install")
class TestStandIn(GradebookCase):
    suffix = "GS"

    def test_stand_in_defines_the_published_names_and_nothing_more(self):
        ours = {
            name
            for name, model in self.env.registry.items()
            if any(c.__module__.startswith(STAND_IN) for c in model.__mro__)
        }
        self.assertEqual(ours, PUBLISHED_MODELS)
        self.assertEqual(set(GradebookWriter.MODELS), PUBLISHED_MODELS)
        for name in PUBLISHED_MODELS:
            model = self.env[name]
            own = {
                field
                for field, spec in model._fields.items()
                if field not in MAGIC_FIELDS and spec._module == "openeducat_grading"
            }
            # The page names no field: the stand-in has only those the
            # writer declares it needs.
            self.assertEqual(own, set(GradebookWriter.FIELDS[name]), name)
            self.assertEqual(set(model._fields), own | MAGIC_FIELDS, name)
            methods = {
                attr
                for cls in type(model).__mro__
                if cls.__module__.startswith(STAND_IN)
                for attr, value in vars(cls).items()
                if inspect.isfunction(value)
            }
            self.assertEqual(methods, PUBLISHED_METHODS.get(name, set()), name)

    def test_the_gradebook_takes_priority_over_the_exams(self):
        self.assertIn("op.exam", self.env)
        self.assertTrue(GradebookWriter.available(self.env))
        writer = SyncGrades(self.instance, self.instance._get_client())._writer(
            self.env
        )
        self.assertIsInstance(writer, GradebookWriter)
        self.assertIsInstance(writer, GradeWriter)
        self.assertTrue(issubclass(ExamWriter, GradeWriter))


@tagged("post_install", "-at_install")
class TestGradebookPull(GradebookCase):
    suffix = "GB"

    def test_pull_writes_the_gradebook_hierarchy(self):
        d = self.data
        summary = self.instance._job_pull_grades()
        self.assertIn("4 grades created", summary)
        self.assertIn(f"grades written to the {GradebookWriter.label}", summary)
        self.assertIn("grades written to the gradebook", self.last_run().message)
        self.assertEqual(
            self.lines(d["ann"]), {"Essay": 73, "Weekly quiz": 85, "Oral exam": 85}
        )
        self.assertEqual(self.lines(self.ben), {"Oral exam": 40})
        assignments = self.env["grading.assignment"].search(
            [("subject_id", "=", self.alg.id)]
        )
        self.assertEqual(
            {a.code: a.name for a in assignments},
            {
                self.code("A", self.assign): "Essay",
                self.code("Q", self.quiz): "Weekly quiz",
                self.code("G", self.oral): "Oral exam",
            },
        )
        self.assertEqual(set(assignments.mapped("total_marks")), {100})
        gradebooks = self.env["gradebook.gradebook"].search(
            [("student_id", "in", (d["ann"] | self.ben).ids)]
        )
        self.assertEqual(len(gradebooks), 2)
        self.assertEqual(gradebooks.batch_id, d["batch"])
        # Grade mapping rows point to the lines; no exam was made.
        rows = self.grade_rows()
        self.assertEqual(set(rows.mapped("res_model")), {"gradebook.line"})
        lines = self.env["gradebook.line"].search(
            [("gradebook_id", "in", gradebooks.ids)]
        )
        self.assertEqual(sorted(rows.mapped("res_id")), sorted(lines.ids))
        self.assertFalse(self.moodle_exams())
        self.assertEqual(self.fm.write_call_count(), 0)

    def test_recompute_runs_once_per_run_across_courses_and_batches(self):
        d = self.data
        # Biology: a second course (Ann's lab report); Cy: a second batch.
        bio = d["subjects"][1]
        batch2 = self.env["op.batch"].create(
            {
                "name": "Batch GB2",
                "code": "BATGB2",
                "course_id": d["program"].id,
                "start_date": "2026-09-01",
                "end_date": "2027-06-30",
            }
        )
        cy = self.no_export_env["op.student"].create(
            {
                "name": "Cy Dee",
                "first_name": "Cy",
                "last_name": "Dee",
                "email": "cy.gb@uni.test",
            }
        )
        self.no_export_env["op.student.course"].create(
            {
                "student_id": cy.id,
                "course_id": d["program"].id,
                "batch_id": batch2.id,
                "subject_ids": [(6, 0, self.alg.ids)],
            }
        )
        self.instance._job_push()
        cy_id = self.fm.find_user(idnumber=f"oec_student_{cy.id}")["id"]
        self.fm.set_manual_grade(self.oral, cy_id, 30.0)
        bio_course = self.fm.find_course(
            idnumber=f"oec_subj_{bio.id}_course_{d['program'].id}"
        )
        lab = self.fm.add_manual_item(bio_course["id"], "Lab report", grademax=10.0)
        self.fm.set_manual_grade(lab, self.ann_id, 9.0)
        with self.recompute_calls() as calls:
            summary = self.instance._job_pull_grades()
        self.assertIn("6 grades created", summary)
        self.assertEqual(self.lines(d["ann"], bio), {"Lab report": 90})
        self.assertEqual(self.lines(cy), {"Oral exam": 60})
        gradebooks = self.env["gradebook.gradebook"].search(
            [("student_id", "in", (d["ann"] | self.ben | cy).ids)]
        )
        self.assertEqual(len(gradebooks), 3)
        self.assertEqual(gradebooks.batch_id, d["batch"] | batch2)
        # Six grades, two courses, three gradebooks in two batches: one call
        # of each method, on all of them, in that order.
        self.assert_recomputed_once(calls, gradebooks)

    def test_second_pull_writes_nothing_and_recomputes_nothing(self):
        self.instance._job_pull_grades()
        lines = self.env["gradebook.line"].search([])
        before = {line.id: line.write_date for line in lines}
        with self.recompute_calls() as calls:
            summary = self.instance._job_pull_grades()
        self.assertIn("0 grades created, 0 updated, 4 unchanged", summary)
        self.assertEqual(calls, [])
        self.assertEqual(
            {
                line.id: line.write_date
                for line in self.env["gradebook.line"].search([])
            },
            before,
        )

    def test_changed_grade_updates_its_line_and_recomputes_its_gradebook(self):
        d = self.data
        self.instance._job_pull_grades()
        self.fm.set_manual_grade(self.oral, self.ann_id, 25.0)
        with self.recompute_calls() as calls:
            summary = self.instance._job_pull_grades()
        self.assertIn("0 grades created, 1 updated, 3 unchanged", summary)
        self.assertEqual(self.lines(d["ann"])["Oral exam"], 50)
        self.assert_recomputed_once(
            calls,
            self.env["gradebook.gradebook"].search([("student_id", "=", d["ann"].id)]),
        )

    def test_new_lines_of_a_course_are_created_in_one_call(self):
        model = type(self.env["gradebook.line"])
        original = model.create
        sizes = []

        def create(records, vals_list):
            sizes.append(len(vals_list) if isinstance(vals_list, list) else 1)
            return original(records, vals_list)

        with patch.object(model, "create", create):
            self.instance._job_pull_grades()
        self.assertEqual(sizes, [4])

    def test_a_refused_course_is_rolled_back_and_the_others_recomputed(self):
        d = self.data
        bio = d["subjects"][1]
        bio_course = self.fm.find_course(
            idnumber=f"oec_subj_{bio.id}_course_{d['program'].id}"
        )
        lab = self.fm.add_manual_item(bio_course["id"], "Lab report", grademax=10.0)
        self.fm.set_manual_grade(lab, self.ann_id, 9.0)
        original = GradebookWriter.record_id

        def record_id(writer, handle):
            # After the flush: the course's gradebooks and lines exist, and
            # go with the rollback.
            line = self.env["gradebook.line"].browse(original(writer, handle))
            if line.assignment_id.subject_id == self.alg:
                raise ValidationError("Line refused by a local rule")
            return line.id

        with (
            patch.object(GradebookWriter, "record_id", record_id),
            self.recompute_calls() as calls,
        ):
            summary = self.instance._job_pull_grades()
        self.assertIn("1 courses failed", summary)
        self.assertIn("Line refused by a local rule", summary)
        self.assertEqual(self.lines(d["ann"]), {})
        self.assertEqual(self.lines(d["ann"], bio), {"Lab report": 90})
        gradebooks = self.env["gradebook.gradebook"].search(
            [("student_id", "in", (d["ann"] | self.ben).ids)]
        )
        # Ben's only grade was refused: no gradebook of his is left, and the
        # recompute names only gradebooks that exist.
        self.assertEqual(gradebooks.student_id, d["ann"])
        self.assert_recomputed_once(calls, gradebooks)
        # The next run, without the refusal, writes Algebra's grades.
        self.instance._job_pull_grades()
        self.assertEqual(
            self.lines(d["ann"]), {"Essay": 73, "Weekly quiz": 85, "Oral exam": 85}
        )

    def test_grades_the_exam_path_stored_move_to_the_gradebook(self):
        d = self.data
        with patch.object(GradebookWriter, "available", return_value=False):
            summary = self.instance._job_pull_grades()
        self.assertIn(f"grades written to the {ExamWriter.label}", summary)
        self.assertEqual(
            set(self.grade_rows().mapped("res_model")), {"op.exam.attendees"}
        )
        self.assertFalse(self.env["gradebook.line"].search([]))
        # openeducat_grading installed since: the same grades, unchanged in
        # Moodle, are written to the gradebook all the same.
        with self.recompute_calls() as calls:
            summary = self.instance._job_pull_grades()
        self.assertIn("0 grades created, 4 updated, 0 unchanged", summary)
        self.assertIn(
            "grades stored by another writer before: 4 grades written to "
            "gradebook.line",
            summary,
        )
        self.assertEqual(set(self.grade_rows().mapped("res_model")), {"gradebook.line"})
        self.assertEqual(
            self.lines(d["ann"]), {"Essay": 73, "Weekly quiz": 85, "Oral exam": 85}
        )
        self.assertEqual(len(calls), 2)
        summary = self.instance._job_pull_grades()
        self.assertIn("0 grades created, 0 updated, 4 unchanged", summary)
        self.assertNotIn("another writer", summary)

    def test_dry_run_writes_and_recomputes_nothing(self):
        with self.recompute_calls() as calls:
            result = SyncGrades(
                self.instance, self.instance._get_client(), dry_run=True
            ).pull_all_combined()
        self.assertEqual(len(result.planned), 4)
        self.assertEqual(result.writer, GradebookWriter.label)
        self.assertEqual(calls, [])
        self.assertFalse(self.env["grading.assignment"].search([]))
        self.assertFalse(self.env["gradebook.gradebook"].search([]))
        self.assertFalse(self.env["gradebook.line"].search([]))

    def test_points_scale_sets_the_assignment_total(self):
        self.instance.grade_scale_type = "points"
        self.instance._job_pull_grades()
        self.assertEqual(
            self.lines(self.data["ann"]),
            {"Essay": 73, "Weekly quiz": 9, "Oral exam": 43},
        )
        totals = {
            a.name: a.total_marks
            for a in self.env["grading.assignment"].search(
                [("subject_id", "=", self.alg.id)]
            )
        }
        self.assertEqual(totals, {"Essay": 100, "Weekly quiz": 10, "Oral exam": 50})
        # Back to percentages: every assignment's total changes, and every
        # gradebook with a line on one of them is recomputed, once.
        self.instance.grade_scale_type = "percentage"
        with self.recompute_calls() as calls:
            self.instance._job_pull_grades()
        self.assertEqual(
            set(
                self.env["grading.assignment"]
                .search([("subject_id", "=", self.alg.id)])
                .mapped("total_marks")
            ),
            {100},
        )
        self.assert_recomputed_once(
            calls,
            self.env["gradebook.gradebook"].search(
                [("student_id", "in", (self.data["ann"] | self.ben).ids)]
            ),
        )
