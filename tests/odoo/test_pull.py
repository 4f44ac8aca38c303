import datetime
import itertools
from unittest.mock import patch

from odoo import api
from odoo.exceptions import AccessError, ValidationError
from odoo.service.model import check_method_name
from odoo.tests import tagged

from odoo.addons.openeducat_moodle.services.grades import SyncGrades
from odoo.addons.queue_job.tests.common import trap_jobs

from .common import InstitutionCase


class GradeSiteCase(InstitutionCase):
    """Algebra in Moodle with an assignment, a quiz and a manual item in a
    grade category; Ann has all three grades, Ben the manual one."""

    with_ben = True

    def setUp(self):
        super().setUp()
        d = self.data
        self.instance._job_push()
        fm = self.fm
        self.alg = d["subjects"][0]
        self.course = fm.find_course(
            idnumber=f"oec_subj_{self.alg.id}_course_{d['program'].id}"
        )
        cid = self.course["id"]
        self.ann_id = fm.find_user(idnumber=f"oec_student_{d['ann'].id}")["id"]
        self.ben_id = fm.find_user(idnumber=f"oec_student_{self.ben.id}")["id"]
        self.assign = fm.add_assignment(cid, "Essay", grademax=100.0)
        fm.grade_assignment(self.assign, self.ann_id, 72.5)  # Ben: no submission
        self.quiz = fm.add_quiz(cid, "Weekly quiz", grade=10.0)
        for grade in (6.0, 8.5, 7.0):
            fm.add_quiz_attempt(self.quiz, self.ann_id, grade)
        category = fm.add_grade_category(cid, "Orals")
        self.oral = fm.add_manual_item(
            cid, "Oral exam", grademax=50.0, category=category
        )
        fm.set_manual_grade(self.oral, self.ann_id, 42.5)
        fm.set_manual_grade(self.oral, self.ben_id, 20.0)
        fm.set_completion_criteria(cid)
        fm.complete_course(cid, self.ann_id)
        fm.reset_calls()

    def attendees(self, student):
        return self.env["op.exam.attendees"].search(
            [("student_id", "=", student.id), ("exam_id.subject_id", "=", self.alg.id)]
        )

    def marks(self, student):
        return {a.exam_id.name: a.marks for a in self.attendees(student)}


@tagged("post_install", "-at_install")
class TestGradePull(GradeSiteCase):
    suffix = "G"

    def test_pull_writes_exactly_the_expected_records(self):
        d = self.data
        self.instance._job_pull_grades()
        self.assertEqual(
            self.marks(d["ann"]), {"Essay": 73, "Weekly quiz": 85, "Oral exam": 85}
        )
        self.assertEqual(self.marks(self.ben), {"Oral exam": 40})
        exams = self.attendees(d["ann"]).exam_id
        self.assertEqual(set(exams.mapped("total_marks")), {100})
        self.assertEqual(set(exams.mapped("min_marks")), {50})
        self.assertEqual(set(exams.mapped("state")), {"result_updated"})
        self.assertEqual(exams.session_id.batch_id, d["batch"])
        lines = self.env["op.result.line"].search([("exam_id", "in", exams.ids)])
        self.assertEqual(
            sorted((line.student_id.id, line.marks, line.status) for line in lines),
            sorted(
                [
                    (d["ann"].id, 73, "pass"),
                    (d["ann"].id, 85, "pass"),
                    (d["ann"].id, 85, "pass"),
                    (self.ben.id, 40, "fail"),
                ]
            ),
        )
        # Completion lands in completion rows of its own (no other run writes
        # them), not on the enrolment nor in the push's enrolment mapping.
        key = (
            f"oec_student_{d['ann'].id}@oec_subj_{self.alg.id}_course_{d['program'].id}"
        )
        completion = self.env["moodle.mapping"].search(
            [("moodle_model", "=", "completion"), ("external_key", "=", key)]
        )
        self.assertEqual(completion.extra_data["completion"], "complete")
        self.assertEqual(completion.res_model, "op.student.course")
        self.assertEqual(completion.res_id, d["enrolments"][0].id)
        enrolment = self.env["moodle.mapping"].search(
            [("moodle_model", "=", "enrolment"), ("external_key", "=", key)]
        )
        self.assertIn("enrolled", enrolment.extra_data)
        self.assertNotIn("completion", enrolment.extra_data)
        bio = self.env["moodle.mapping"].search(
            [
                ("moodle_model", "=", "completion"),
                (
                    "external_key",
                    "like",
                    f"oec_student_{d['ann'].id}@oec_subj_{d['subjects'][1].id}_%",
                ),
            ]
        )
        self.assertEqual(bio.extra_data["completion"], "no_criteria")
        self.assertEqual(d["enrolments"][0].state, "running")
        self.assertEqual(self.fm.write_call_count(), 0)
        # One gradebook call per course, not per student.
        self.assertEqual(
            self.fm.call_counts["gradereport_user_get_grade_items"],
            len(d["subjects"]),
        )

    def test_second_pull_writes_nothing(self):
        self.instance._job_pull_grades()
        asked = self.fm.call_counts["core_completion_get_course_completion_status"]
        before = {a.id: a.write_date for a in self.attendees(self.data["ann"])}
        count = self.env["moodle.mapping"].search_count(
            [("moodle_model", "=", "grade")]
        )
        summary = self.instance._job_pull_grades()
        self.assertIn("0 grades created, 0 updated, 4 unchanged", summary)
        self.assertEqual(
            {a.id: a.write_date for a in self.attendees(self.data["ann"])}, before
        )
        self.assertEqual(
            self.env["moodle.mapping"].search_count([("moodle_model", "=", "grade")]),
            count,
        )
        # Ann's completed course is not asked for again; nor, until the daily
        # sweep, anyone who did not go into a course with criteria since
        # (issue 15): one last-access call for Algebra (Ben not complete),
        # none for Biology (no criteria).
        again = self.fm.call_counts["core_completion_get_course_completion_status"]
        self.assertEqual(again - asked, 0)
        self.assertEqual(self.fm.call_counts["core_enrol_get_enrolled_users"], 1)

    def test_changed_grade_in_moodle_is_updated(self):
        self.instance._job_pull_grades()
        self.fm.set_manual_grade(self.oral, self.ann_id, 30.0)
        self.fm.add_quiz_attempt(self.quiz, self.ann_id, 9.5)
        summary = self.instance._job_pull_grades()
        self.assertIn("2 updated", summary)
        self.assertEqual(
            self.marks(self.data["ann"]),
            {"Essay": 73, "Weekly quiz": 95, "Oral exam": 60},
        )
        # The grade's mapping row follows (written in bulk, outside the ORM).
        oral = self.env["moodle.mapping"].search(
            [
                ("moodle_model", "=", "grade"),
                ("external_key", "like", f"oec_student_{self.data['ann'].id}@%"),
                ("extra_data", "!=", False),
            ]
        )
        by_raw = {m.extra_data["raw"]: m for m in oral}
        self.assertIn(30.0, by_raw)
        self.assertNotIn(42.5, by_raw)
        row = by_raw[30.0]
        self.assertEqual(row.state, "synced")
        self.assertEqual(row.res_model, "op.exam.attendees")
        attendee = self.env["op.exam.attendees"].browse(row.res_id)
        self.assertEqual((attendee.student_id, attendee.marks), (self.data["ann"], 60))

    def test_exams_keep_clear_of_exams_teachers_made(self):
        d = self.data
        batch = d["batch"]
        exam_type = self.env["op.exam.type"].create({"name": "Mid", "code": "MIDG"})
        session = self.env["op.exam.session"].create(
            {
                "name": "Mid-terms",
                "exam_code": "MIDTERMS-G",
                "course_id": d["program"].id,
                "batch_id": batch.id,
                "start_date": batch.start_date,
                "end_date": batch.end_date,
                "exam_type": exam_type.id,
                "evaluation_type": "normal",
            }
        )
        start = datetime.datetime.combine(batch.start_date, datetime.time(0, 0))
        self.env["op.exam"].create(
            {
                "name": "Written mid-term",
                "exam_code": "MID-ALG-G",
                "session_id": session.id,
                "subject_id": self.alg.id,
                "start_time": start,
                "end_time": start + datetime.timedelta(hours=2),
                "total_marks": 100,
                "min_marks": 40,
            }
        )
        summary = self.instance._job_pull_grades()
        self.assertIn("0 courses failed", summary)
        self.assertEqual(
            self.marks(d["ann"]),
            {"Essay": 73, "Weekly quiz": 85, "Oral exam": 85},
        )
        exams = self.env["op.exam"].search(
            [("subject_id", "=", self.alg.id)], order="start_time"
        )
        self.assertEqual(len(exams), 4)
        for earlier, later in itertools.pairwise(exams):
            self.assertLessEqual(earlier.end_time, later.start_time)

    def test_exams_of_two_batches_do_not_overlap(self):
        """OpenEduCat forbids overlapping exams of a subject across sessions:
        the second batch's exams go after the first batch's."""
        d = self.data
        env = self.no_export_env
        batch2 = env["op.batch"].create(
            {
                "name": "Batch G2",
                "code": "BATG2",
                "course_id": d["program"].id,
                "start_date": "2026-09-01",
                "end_date": "2027-06-30",
            }
        )
        cy = env["op.student"].create(
            {
                "name": "Cy Dee",
                "first_name": "Cy",
                "last_name": "Dee",
                "email": "cy.g@uni.test",
            }
        )
        env["op.student.course"].create(
            {
                "student_id": cy.id,
                "course_id": d["program"].id,
                "batch_id": batch2.id,
                "subject_ids": [(6, 0, self.alg.ids)],
            }
        )
        self.instance._job_push()
        cy_id = self.fm.find_user(idnumber=f"oec_student_{cy.id}")["id"]
        self.fm.set_manual_grade(self.oral, cy_id, 25.0)
        self.fm.add_quiz_attempt(self.quiz, cy_id, 5.0)
        summary = self.instance._job_pull_grades()
        self.assertIn("0 courses failed", summary)
        self.assertEqual(self.marks(cy), {"Oral exam": 50, "Weekly quiz": 50})
        self.assertEqual(
            self.marks(d["ann"]), {"Essay": 73, "Weekly quiz": 85, "Oral exam": 85}
        )
        exams = self.env["op.exam"].search(
            [("subject_id", "=", self.alg.id)], order="start_time"
        )
        self.assertEqual(len(exams), 5)  # 3 items in batch G, 2 in batch G2
        self.assertEqual(len(exams.session_id), 2)
        for earlier, later in itertools.pairwise(exams):
            self.assertLessEqual(earlier.end_time, later.start_time)

    def test_a_course_openeducat_refuses_does_not_stop_the_others(self):
        d = self.data
        bio = d["subjects"][1]
        bio_course = self.fm.find_course(
            idnumber=f"oec_subj_{bio.id}_course_{d['program'].id}"
        )
        lab = self.fm.add_manual_item(bio_course["id"], "Lab report", grademax=10.0)
        self.fm.set_manual_grade(lab, self.ann_id, 9.0)
        from odoo.addons.openeducat_moodle.services.grades import ExamWriter

        original = ExamWriter.exam

        def exam(writer, session, subject, row, converted):
            created = original(writer, session, subject, row, converted)
            if subject == self.alg:
                raise ValidationError("Exam refused by a local rule")
            return created

        with patch.object(ExamWriter, "exam", exam):
            summary = self.instance._job_pull_grades()
        self.assertIn("1 courses failed", summary)
        self.assertFalse(self.attendees(d["ann"]))  # Algebra rolled back whole
        self.assertFalse(
            self.env["op.exam"].search(
                [("subject_id", "=", self.alg.id), ("exam_code", "=like", "M%")]
            )
        )
        lab_attendee = self.env["op.exam.attendees"].search(
            [("student_id", "=", d["ann"].id), ("exam_id.subject_id", "=", bio.id)]
        )
        self.assertEqual(lab_attendee.marks, 90)
        self.assertEqual(lab_attendee.exam_id.state, "result_updated")
        run = self.env["moodle.sync.run"].search(
            [("instance_id", "=", self.instance.id)], order="id desc", limit=1
        )
        self.assertIn("Exam refused by a local rule", run.message or "")
        # The next run, without the refusal, writes Algebra's grades.
        self.instance._job_pull_grades()
        self.assertEqual(
            self.marks(d["ann"]), {"Essay": 73, "Weekly quiz": 85, "Oral exam": 85}
        )

    def test_new_attendees_of_a_course_are_created_in_one_call(self):
        """Where they cannot be written with SQL (test_grade_rows_sql), the
        ORM creates a course's new attendees in one call."""
        from odoo.addons.openeducat_moodle.services import grades

        model = type(self.env["op.exam.attendees"])
        original = model.create
        batches = []

        def create(records, vals_list):
            batches.append(len(vals_list) if isinstance(vals_list, list) else 1)
            return original(records, vals_list)

        with (
            patch.object(model, "create", create),
            patch.object(grades, "_sql_rows_ok", lambda env: False),
        ):
            self.instance._job_pull_grades()
        # The Algebra course: Ann's essay, quiz and oral, Ben's oral.
        self.assertEqual(batches, [4])
        self.assertEqual(len(self.attendees(self.data["ann"])), 3)

    def test_openeducat_marks_check_still_holds_for_many_attendees(self):
        self.instance._job_pull_grades()
        exam = self.attendees(self.data["ann"]).exam_id[:1]
        attendees = self.env["op.exam.attendees"]
        other = self.env["op.student"].create(
            {"name": "Cy Dee", "first_name": "Cy", "last_name": "Dee"}
        )
        third = self.env["op.student"].create(
            {"name": "Di Eft", "first_name": "Di", "last_name": "Eft"}
        )
        with (
            self.assertRaisesRegex(ValidationError, "between 0"),
            self.env.cr.savepoint(),
        ):
            attendees.create(
                [
                    {"exam_id": exam.id, "student_id": other.id, "marks": 10},
                    {"exam_id": exam.id, "student_id": third.id, "marks": 101},
                ]
            )
        both = attendees.create(
            [
                {"exam_id": exam.id, "student_id": other.id, "marks": 10},
                {"exam_id": exam.id, "student_id": third.id, "marks": 100},
            ]
        )
        self.assertEqual(both.mapped("marks"), [10, 100])

    def test_points_and_letters(self):
        self.instance.grade_scale_type = "points"
        self.instance._job_pull_grades()
        self.assertEqual(
            self.marks(self.data["ann"]),
            {"Essay": 73, "Weekly quiz": 9, "Oral exam": 43},
        )

    def test_letter_bands_are_noted(self):
        self.instance.write(
            {
                "grade_scale_type": "letter",
                "grade_scale_line_ids": [
                    (0, 0, {"letter": "A", "min_percent": 80, "max_percent": 100}),
                    (0, 0, {"letter": "B", "min_percent": 60, "max_percent": 79.99}),
                    (0, 0, {"letter": "F", "min_percent": 0, "max_percent": 59.99}),
                ],
            }
        )
        self.instance._job_pull_grades()
        notes = {a.exam_id.name: a.note for a in self.attendees(self.data["ann"])}
        self.assertIn("(A)", notes["Oral exam"])
        self.assertIn("(B)", notes["Essay"])

    def test_unmapped_student_is_reported_not_guessed(self):
        uid = self.fm.add_user("stranger", email="s@x.test")
        self.fm.enrol(self.course["id"], uid, 5)
        self.fm.set_manual_grade(self.oral, uid, 10.0)
        summary = self.instance._job_pull_grades()
        self.assertIn("1 unmapped students", summary)

    def test_pull_enqueues_no_push(self):
        """Whatever a pull writes, with a save hook or not, is not pushed back:
        here each course's write also renames a student (op.student has a
        save hook), through the environment the pull writes with."""
        original = SyncGrades._apply_course
        ann = self.data["ann"]

        def apply_and_touch(service, writer, course):
            ann.with_env(service.env).write({"first_name": "Ann"})
            return original(service, writer, course)

        with (
            trap_jobs() as trap,
            patch.object(SyncGrades, "_apply_course", apply_and_touch),
        ):
            self.instance._job_pull_grades()
        trap.assert_jobs_count(0)
        self.assertTrue(self.attendees(ann))
        # The same write outside a pull does enqueue a push.
        with trap_jobs() as trap:
            ann.with_env(self.env).write({"first_name": "Anne"})
        trap.assert_jobs_count(1)

    def test_pull_now_over_rpc_is_for_moodle_managers_only(self):
        check_method_name("action_pull_grades_now")
        clerk = self.env["res.users"].create(
            {
                "name": "Clerk",
                "login": "clerk_moodle_test",
                "groups_id": [(6, 0, [self.env.ref("base.group_user").id])],
            }
        )
        with self.assertRaises(AccessError):
            api.call_kw(
                self.env["moodle.instance"].with_user(clerk),
                "action_pull_grades_now",
                [[self.instance.id]],
                {},
            )
        manager = self.env.ref("openeducat_moodle.group_moodle_manager")
        clerk.groups_id = [(4, manager.id)]
        with trap_jobs() as trap:
            api.call_kw(
                self.env["moodle.instance"].with_user(clerk),
                "action_pull_grades_now",
                [[self.instance.id]],
                {},
            )
        trap.assert_enqueued_job(
            self.instance._job_pull_grades, properties={"channel": "root.moodle"}
        )
