"""Grades that cannot be mixed up, and pulls with the connector's rights.

* Keys carry their source: a gradebook item id of 1,000,000 + n, once the
  key of quiz n, has its own key and exam; keys and exam codes of the old form
  are migrated (17.0.1.2.0).
* The conversion settings are part of the change hash: changing the scale,
  the pass threshold or the letter bands re-converts stored marks, and the
  run log says so.
* A Moodle Manager without OpenEduCat exam or attendance rights pulls grades
  and attendance: the jobs write with the connector's rights.
"""

import calendar
import itertools
import json

from odoo.exceptions import AccessError
from odoo.modules.migration import load_script
from odoo.tests import tagged

from odoo.addons.openeducat_moodle.sync.grades import (
    ASSIGN_OFFSET,
    QUIZ_OFFSET,
    legacy_grade_hash,
)
from odoo.addons.openeducat_moodle.sync.idnumbers import base36
from odoo.addons.queue_job.tests.common import trap_jobs

from .common import InstitutionCase
from .test_pull import GradeSiteCase

MIGRATION = "openeducat_moodle/migrations/17.0.1.2.0/post-migrate.py"


class TrustCase(GradeSiteCase):
    def grade_rows(self, student=None):
        domain = [
            ("instance_id", "=", self.instance.id),
            ("moodle_model", "=", "grade"),
        ]
        if student:
            domain.append(("external_key", "=like", f"oec_student_{student.id}@%"))
        return self.env["moodle.mapping"].search(domain)

    def item_keys(self, student):
        return {row.external_key.rpartition("#")[2] for row in self.grade_rows(student)}

    def codes(self, student):
        return set(self.attendees(student).exam_id.mapped("exam_code"))

    def code(self, letter, item):
        return ".".join(
            (
                "M" + base36(self.instance.id),
                letter,
                base36(item),
                base36(self.data["batch"].id),
            )
        )

    def last_run(self):
        return self.env["moodle.sync.run"].search(
            [("instance_id", "=", self.instance.id), ("kind", "=", "grades")],
            order="id desc",
            limit=1,
        )

    def big_item(self, item_id, name="Project", grade=5.0, grademax=20.0):
        """A manual gradebook item with this id (large sites pass 1,000,000)."""
        self.fm._ids["grade_item"] = itertools.count(item_id)
        item = self.fm.add_manual_item(self.course["id"], name, grademax=grademax)
        self.assertEqual(item, item_id)
        self.fm.set_manual_grade(item, self.ann_id, grade)
        return item


@tagged("post_install", "-at_install")
class TestGradeKeys(TrustCase):
    suffix = "K"

    def test_ids_past_a_million_keep_their_own_key_and_exam(self):
        """The gradebook item 1,000,000 + the quiz's id was the quiz's key and
        exam code: its marks and the quiz's went to one exam and flipped."""
        ann = self.data["ann"]
        item = self.big_item(QUIZ_OFFSET + self.quiz)
        summary = self.instance._job_pull_grades()
        self.assertIn("0 courses failed", summary)
        expected = {"Essay": 73, "Weekly quiz": 85, "Oral exam": 85, "Project": 25}
        self.assertEqual(self.marks(ann), expected)
        self.assertEqual(
            self.item_keys(ann),
            {f"as:{self.assign}", f"qz:{self.quiz}", f"gb:{self.oral}", f"gb:{item}"},
        )
        self.assertEqual(
            self.codes(ann),
            {
                self.code("A", self.assign),
                self.code("Q", self.quiz),
                self.code("G", self.oral),
                self.code("G", item),
            },
        )
        # The next pull finds each grade where it left it: nothing flips.
        summary = self.instance._job_pull_grades()
        self.assertIn("0 grades created, 0 updated, 5 unchanged", summary)
        self.assertEqual(self.marks(ann), expected)
        self.assertEqual(self.last_run().state, "done")

    def test_assignment_and_gradebook_ids_past_two_million(self):
        ann = self.data["ann"]
        self.fm._ids["assign"] = itertools.count(5)
        assign = self.fm.add_assignment(self.course["id"], "Report", grademax=10.0)
        self.fm.grade_assignment(assign, self.ann_id, 4.0)
        item = self.big_item(ASSIGN_OFFSET + assign, grade=15.0)
        self.instance._job_pull_grades()
        marks = self.marks(ann)
        self.assertEqual((marks["Report"], marks["Project"]), (40, 75))
        self.assertIn(self.code("A", assign), self.codes(ann))
        self.assertIn(self.code("G", item), self.codes(ann))
        summary = self.instance._job_pull_grades()
        self.assertIn("0 updated, 6 unchanged", summary)


@tagged("post_install", "-at_install")
class TestGradeKeyMigration(TrustCase):
    """Rows and exams of the old form (integer keys, three-part codes), as a
    pull before 17.0.1.2.0 left them, through the migration."""

    suffix = "M"

    def migrate(self):
        script = load_script(MIGRATION, "openeducat_moodle_migrate_17_0_1_2_0")
        self.env.flush_all()
        script.migrate(self.env.cr, "17.0.1.1.0")
        self.env.invalidate_all()

    def make_old(self, rows=None):
        """Give grade rows (all by default) and their exams the old form:
        ``#<offset + id>`` keys, the old hash without settings, three-part
        exam codes."""
        rows = rows if rows is not None else self.grade_rows()
        exams = self.env["op.exam"]
        for row in rows:
            extra = dict(row.extra_data)
            source, item = extra["source"], extra["item"]
            old = (
                item
                + {"gradebook": 0, "quiz": QUIZ_OFFSET, "assign": ASSIGN_OFFSET}[source]
            )
            for key in ("settings", "item", "grademin"):
                extra.pop(key)
            self.env.cr.execute(
                "UPDATE moodle_mapping SET external_key = %s, sync_hash = %s, "
                "extra_data = %s::jsonb WHERE id = %s",
                [
                    f"{row.external_key.rpartition('#')[0]}#{old}",
                    legacy_grade_hash(extra["raw"], extra["grademax"]),
                    json.dumps(extra),
                    row.id,
                ],
            )
            exam = self.env["op.exam.attendees"].browse(row.res_id).exam_id
            if exam not in exams:
                exams |= exam
                head, _letter, _item, batch = exam.exam_code.split(".")
                self.env.cr.execute(
                    "UPDATE op_exam SET exam_code = %s WHERE id = %s",
                    [f"{head}.{base36(old)}.{batch}", exam.id],
                )
        self.env.invalidate_all()
        return exams

    def test_old_keys_and_codes_are_migrated_and_found_by_the_next_pull(self):
        d = self.data
        ann = d["ann"]
        # No quiz 50 exists: by the offsets alone this item would be one.
        item = self.big_item(QUIZ_OFFSET + 50)
        self.instance._job_pull_grades()
        keys = {row.id: row.external_key for row in self.grade_rows()}
        codes = {e.id: e.exam_code for e in self.attendees(ann).exam_id}
        attendees = self.env["op.exam.attendees"].search([]).ids
        marks = self.marks(ann)
        exams = self.make_old()
        self.assertEqual(len(exams), 4)
        self.assertIn(
            f"#{QUIZ_OFFSET + self.quiz}",
            " ".join(self.grade_rows().mapped("external_key")),
        )
        self.assertIn(
            f"M{base36(self.instance.id)}.{base36(QUIZ_OFFSET + 50)}."
            f"{base36(d['batch'].id)}",
            exams.mapped("exam_code"),
        )

        self.migrate()

        self.assertEqual({row.id: row.external_key for row in self.grade_rows()}, keys)
        self.assertIn(f"gb:{item}", self.item_keys(ann))
        self.assertEqual({e.id: e.exam_code for e in exams}, codes)
        # The next pull finds every exam and attendee: nothing new, the marks
        # converted once more (the settings were not recorded before).
        summary = self.instance._job_pull_grades()
        self.assertIn("0 grades created, 5 updated, 0 unchanged", summary)
        self.assertIn(
            "conversion settings not recorded (grades stored before 17.0.1.2.0): "
            "5 grades re-converted",
            summary,
        )
        self.assertEqual(self.env["op.exam.attendees"].search([]).ids, attendees)
        self.assertEqual(self.marks(ann), marks)
        summary = self.instance._job_pull_grades()
        self.assertIn("0 grades created, 0 updated, 5 unchanged", summary)

    def test_migration_leaves_new_keys_and_other_exams_alone(self):
        self.instance._job_pull_grades()
        keys = sorted(self.grade_rows().mapped("external_key"))
        codes = sorted(self.env["op.exam"].search([]).mapped("exam_code"))
        self.migrate()
        self.assertEqual(sorted(self.grade_rows().mapped("external_key")), keys)
        self.assertEqual(
            sorted(self.env["op.exam"].search([]).mapped("exam_code")), codes
        )

    def test_an_exam_two_items_shared_goes_to_one_the_other_gets_its_own(self):
        """Before 17.0.1.2.0 the gradebook item 1,000,000 + n and quiz n
        shared one key and one exam. The exam stays with the item most of
        its rows came from; the other item's rows are removed, and the next
        pull writes that item into an exam of its own."""
        ann, ben = self.data["ann"], self.ben
        item = self.big_item(QUIZ_OFFSET + self.quiz)
        self.fm.set_manual_grade(item, self.ben_id, 10.0)
        self.instance._job_pull_grades()
        marks = self.marks(ann)
        rows = self.grade_rows()
        quiz_rows = rows.filtered(lambda r: r.extra_data["source"] == "quiz")
        item_rows = rows.filtered(lambda r: r.extra_data.get("item") == item)
        self.assertEqual(len(quiz_rows), 1)  # Ann's
        self.assertEqual(len(item_rows), 2)  # Ann's and Ben's
        # The old state: Ann's item row was overwritten by her quiz row (one
        # key); Ben's item grade sits in the quiz's exam.
        ann_item = item_rows.filtered(
            lambda r: f"oec_student_{ann.id}@" in r.external_key
        )
        ben_item = item_rows - ann_item
        attendees = self.env["op.exam.attendees"]
        item_exam = attendees.browse(ann_item.res_id).exam_id
        quiz_exam = attendees.browse(quiz_rows.res_id).exam_id
        results = self.env["op.result.line"].search([("exam_id", "=", item_exam.id)])
        ben_result = results.filtered(lambda r: r.student_id == ben)
        (results - ben_result).unlink()
        ben_result.exam_id = quiz_exam
        ben_attendee = attendees.browse(ben_item.res_id)
        ben_attendee.exam_id = quiz_exam
        attendees.browse(ann_item.res_id).unlink()
        ann_item.unlink()
        item_exam.unlink()
        self.make_old(quiz_rows | ben_item)
        # One vote each: the quiz row is the latest written.
        self.env.cr.execute(
            "UPDATE moodle_mapping SET last_sync_date = last_sync_date "
            "+ interval '1 minute' WHERE id = %s",
            [quiz_rows.id],
        )

        self.migrate()

        self.assertEqual(quiz_exam.exam_code, self.code("Q", self.quiz))
        self.assertIn(f"qz:{self.quiz}", self.item_keys(ann))
        # Ben's row and attendee, the item's marks in the quiz's exam, are gone.
        self.assertFalse(ben_item.exists())
        self.assertFalse(ben_attendee.exists())
        self.assertFalse(ben_result.exists())
        self.assertEqual(self.marks(ann)["Weekly quiz"], 85)
        self.instance._job_pull_grades()
        project = self.attendees(ann).exam_id.filtered(lambda e: e.name == "Project")
        self.assertEqual(project.exam_code, self.code("G", item))
        self.assertEqual(self.marks(ann), {**marks, "Project": 25})
        self.assertEqual(self.marks(ben), {"Oral exam": 40, "Project": 50})
        self.assertEqual(quiz_exam.attendees_line.student_id, ann)


@tagged("post_install", "-at_install")
class TestConversionSettings(TrustCase):
    suffix = "S"

    def test_a_new_scale_reconverts_the_stored_marks(self):
        ann = self.data["ann"]
        self.instance._job_pull_grades()
        self.instance.grade_scale_type = "points"
        summary = self.instance._job_pull_grades()
        self.assertIn("0 grades created, 4 updated, 0 unchanged", summary)
        self.assertIn("conversion settings changed: 4 grades re-converted", summary)
        self.assertEqual(
            self.marks(ann), {"Essay": 73, "Weekly quiz": 9, "Oral exam": 43}
        )
        self.assertEqual(self.marks(self.ben), {"Oral exam": 20})
        self.assertEqual(
            {e.name: e.total_marks for e in self.attendees(ann).exam_id},
            {"Essay": 100, "Weekly quiz": 10, "Oral exam": 50},
        )
        run = self.last_run()
        self.assertIn("conversion settings changed: 4 grades re-converted", run.message)
        self.assertEqual((run.updated, run.state), (4, "done"))
        # Converted once: the next pull has nothing to do.
        summary = self.instance._job_pull_grades()
        self.assertIn("0 updated, 4 unchanged", summary)
        self.assertNotIn("re-converted", summary)

    def test_a_new_pass_threshold_moves_pass_marks_and_results(self):
        ann = self.data["ann"]
        self.instance._job_pull_grades()
        self.instance.pass_threshold = 80.0
        summary = self.instance._job_pull_grades()
        self.assertIn("conversion settings changed: 4 grades re-converted", summary)
        exams = self.attendees(ann).exam_id
        self.assertEqual(set(exams.mapped("min_marks")), {80})
        lines = self.env["op.result.line"].search(
            [("exam_id", "in", exams.ids), ("student_id", "=", ann.id)]
        )
        self.assertEqual(
            {line.exam_id.name: line.status for line in lines},
            {"Essay": "fail", "Weekly quiz": "pass", "Oral exam": "pass"},
        )

    def test_new_letter_bands_rewrite_the_letters(self):
        ann = self.data["ann"]
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
        notes = {a.exam_id.name: a.note for a in self.attendees(ann)}
        self.assertIn("(A)", notes["Oral exam"])
        band_a = self.instance.grade_scale_line_ids.filtered(lambda b: b.letter == "A")
        band_b = self.instance.grade_scale_line_ids.filtered(lambda b: b.letter == "B")
        band_a.min_percent = 90
        band_b.max_percent = 89.99
        summary = self.instance._job_pull_grades()
        self.assertIn("conversion settings changed: 4 grades re-converted", summary)
        notes = {a.exam_id.name: a.note for a in self.attendees(ann)}
        self.assertIn("(B)", notes["Oral exam"])

    def test_bands_unused_by_the_scale_change_nothing(self):
        self.instance._job_pull_grades()
        self.instance.write(
            {
                "grade_scale_line_ids": [
                    (0, 0, {"letter": "A", "min_percent": 80, "max_percent": 100}),
                ]
            }
        )
        summary = self.instance._job_pull_grades()
        self.assertIn("0 updated, 4 unchanged", summary)

    def test_a_changed_grade_is_an_update_not_a_reconversion(self):
        self.instance._job_pull_grades()
        self.fm.set_manual_grade(self.oral, self.ann_id, 30.0)
        summary = self.instance._job_pull_grades()
        self.assertIn("1 updated", summary)
        self.assertNotIn("re-converted", summary)

    def test_dry_run_says_what_would_be_reconverted(self):
        from odoo.addons.openeducat_moodle.services.grades import SyncGrades

        self.instance._job_pull_grades()
        self.instance.grade_scale_type = "points"
        result = SyncGrades(
            self.instance, self.instance._get_client(), dry_run=True
        ).pull_all_combined()
        self.assertEqual(result.reconverted, 4)
        self.assertIn(
            "conversion settings changed: 4 grades to re-convert", result.errors
        )
        self.assertEqual(self.marks(self.data["ann"])["Weekly quiz"], 85)


def moodle_manager(env, login):
    """A Moodle Manager with no OpenEduCat rights at all."""
    user = env["res.users"].create(
        {
            "name": login,
            "login": login,
            "groups_id": [
                (6, 0, [env.ref("openeducat_moodle.group_moodle_manager").id])
            ],
        }
    )
    return user


@tagged("post_install", "-at_install")
class TestPullRights(TrustCase):
    suffix = "R"

    def test_a_moodle_manager_without_exam_rights_pulls_grades(self):
        ann = self.data["ann"]
        manager = moodle_manager(self.env, "moodle_manager_grades")
        with self.assertRaises(AccessError):
            self.env["op.exam.session"].with_user(manager).check_access_rights("read")
        with trap_jobs() as trap:
            self.instance.with_user(manager).action_pull_grades_now()
            trap.assert_jobs_count(1)
            (job,) = trap.enqueued_jobs
            # Enqueued by the manager, who stays the job's user.
            self.assertEqual(job.recordset.env.uid, manager.id)
            self.assertFalse(job.recordset.env.su)
            trap.perform_enqueued_jobs()
        self.assertEqual(
            self.marks(ann), {"Essay": 73, "Weekly quiz": 85, "Oral exam": 85}
        )
        run = self.last_run()
        self.assertEqual(run.state, "done", run.message)
        self.assertIn("0 courses failed", run.message)
        self.assertNotIn("not allowed", run.message)
        self.assertTrue(self.instance.last_sync_date)
        # The records keep the manager as their author.
        self.assertEqual(self.attendees(ann).create_uid, manager)

    def test_a_failed_course_makes_the_run_partial(self):
        """A course the pull could not write is a failure: the run is not
        'done'."""
        # Ben left the program in OpenEduCat; Moodle still has his grade.
        self.no_export_env["op.student.course"].search(
            [("student_id", "=", self.ben.id)]
        ).unlink()
        self.instance._job_pull_grades()
        run = self.last_run()
        self.assertEqual(run.state, "partial")
        self.assertEqual(run.failed, 1)
        self.assertIn("the student has no batch in the program", run.message)


@tagged("post_install", "-at_install")
class TestAttendanceRights(InstitutionCase):
    suffix = "RA"
    with_ben = True

    def test_a_moodle_manager_without_attendance_rights_pulls_attendance(self):
        d = self.data
        fm = self.fm
        self.instance._job_push()
        alg = d["subjects"][0]
        course = fm.find_course(idnumber=f"oec_subj_{alg.id}_course_{d['program'].id}")
        ann_id = fm.find_user(idnumber=f"oec_student_{d['ann'].id}")["id"]
        tx = calendar.timegm(self.env.cr.now().timetuple())
        fm.clock = lambda: tx - 3600
        attid = fm.add_attendance(course["id"], "Attendance")
        session = fm.add_attendance_session(attid, tx - 3600, 3600)
        fm.set_attendance_status_by_acronym(session, ann_id, "A")
        manager = moodle_manager(self.env, "moodle_manager_attendance")
        with self.assertRaises(AccessError):
            self.env["op.attendance.sheet"].with_user(manager).check_access_rights(
                "read"
            )
        with trap_jobs() as trap:
            self.instance.with_user(manager).action_sync_attendance_now()
            trap.perform_enqueued_jobs()
        # First run: finds the teacher's activity; second: its session.
        with trap_jobs() as trap:
            self.instance.with_user(manager).action_sync_attendance_now()
            trap.perform_enqueued_jobs()
        lines = self.env["op.attendance.line"].search(
            [("register_id.subject_id", "=", alg.id)]
        )
        self.assertEqual(lines.student_id, d["ann"])
        self.assertTrue(lines.absent)
        run = self.env["moodle.sync.run"].search(
            [("instance_id", "=", self.instance.id), ("kind", "=", "attendance")],
            order="id desc",
            limit=1,
        )
        self.assertEqual(run.state, "done", run.message)
