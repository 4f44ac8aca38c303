"""A grade pull keeps each course it read (issue 13: nothing lost when Moodle
fails part way, and the next run goes on instead of starting again).

:class:`TestGradeCycle` runs in the test's transaction, as the rest of the
suite does (the instance is not committed, so the pull writes in that
transaction). :class:`TestCommittedAsItGoes` commits an instance and proves
on real cursors that what the pull keeps is committed at once and what it was
writing when it failed is not.
"""

import threading
import time
from unittest.mock import patch

from odoo import SUPERUSER_ID, api
from odoo.tests import tagged

from odoo.addons.openeducat_moodle.models import moodle_instance_runs as runs_module
from odoo.addons.openeducat_moodle.moodle import (
    MoodleClient,
    MoodleRecordError,
    MoodleTransientError,
)
from odoo.addons.openeducat_moodle.services.grades import GradeCycle, SyncGrades
from odoo.addons.queue_job.tests.common import trap_jobs

from .common import BASE_URL, TOKEN, InstitutionCase, MoodleCase

FUNCTION = "gradereport_user_get_grade_items"


@tagged("post_install", "-at_install")
class TestGradeCycle(InstitutionCase):
    suffix = "Y"

    def setUp(self):
        super().setUp()
        d = self.data
        self.instance.write({"pull_assignments": False, "pull_quizzes": False})
        self.instance._job_push()
        fm = self.fm
        self.ann_id = fm.find_user(idnumber=f"oec_student_{d['ann'].id}")["id"]
        # Ann takes Algebra and Biology: one graded item in each.
        self.courses = []
        for subject in d["subjects"][:2]:
            course = fm.find_course(
                idnumber=f"oec_subj_{subject.id}_course_{d['program'].id}"
            )
            item = fm.add_manual_item(course["id"], f"Oral {subject.name}", 20.0)
            fm.set_manual_grade(item, self.ann_id, 15.0)
            self.courses.append(course["id"])
        self.all_courses = sorted(
            c["id"]
            for c in fm.courses.values()
            if (c.get("idnumber") or "").startswith("oec_subj_")
        )
        self.assertEqual(self.courses, self.all_courses[:2])
        fm.reset_calls()

    def asked(self):
        return [int(p["courseid"]) for name, p in self.fm.calls if name == FUNCTION]

    def exams(self, subject):
        return self.env["op.exam"].search(
            [
                ("subject_id", "=", subject.id),
                ("exam_code", "=like", "M%"),
                ("session_id.batch_id", "=", self.data["batch"].id),
            ]
        )

    def cycle(self):
        return GradeCycle.load(self.instance)

    def test_a_pull_that_fails_part_way_keeps_each_course_and_goes_on(self):
        algebra, biology = self.data["subjects"][:2]
        original = MoodleClient.get_grade_items

        def outage_at_biology(client, courseid, *args, **kwargs):
            if courseid == self.courses[1]:
                raise MoodleTransientError("Connection refused")
            return original(client, courseid, *args, **kwargs)

        with (
            trap_jobs(),
            patch.object(MoodleClient, "get_grade_items", outage_at_biology),
        ):
            summary = self.instance._job_pull_grades()
        self.assertIn("unreachable", summary)
        # Algebra's grade is kept; where the cycle stands is kept with it.
        self.assertEqual(self.exams(algebra).attendees_line.mapped("marks"), [75])
        self.assertFalse(self.exams(biology))
        cycle = self.cycle()
        self.assertTrue(cycle.started)
        self.assertEqual(cycle.after, self.courses[0])
        self.assertEqual(cycle.touched, self.exams(algebra).ids)

        # The next run asks only the courses left, and ends the cycle: the
        # exams the first run touched are brought up to date too.
        self.instance.backoff_until = False
        self.fm.reset_calls()
        summary = self.instance._job_pull_grades()
        self.assertEqual(self.asked(), self.all_courses[1:])
        self.assertIn(
            f"{len(self.all_courses) - 1} of {len(self.all_courses)} courses left",
            summary,
        )
        self.assertEqual(self.exams(biology).attendees_line.mapped("marks"), [75])
        self.assertEqual(
            set((self.exams(algebra) | self.exams(biology)).mapped("state")),
            {"result_updated"},
        )
        self.assertFalse(self.cycle().started)
        self.assertFalse(self.cycle().row)

        # The run after reads every course again (a new cycle), writing
        # nothing: the grades are unchanged.
        self.fm.reset_calls()
        summary = self.instance._job_pull_grades()
        self.assertEqual(self.asked(), self.all_courses)
        self.assertIn("0 grades created, 0 updated, 2 unchanged", summary)

    def runs(self):
        return self.env["moodle.sync.run"].search(
            [("instance_id", "=", self.instance.id), ("kind", "=", "grades")],
            order="id",
        )

    def test_a_run_that_fails_part_way_logs_what_it_kept(self):
        original = MoodleClient.get_grade_items

        def outage_at_biology(client, courseid, *args, **kwargs):
            if courseid == self.courses[1]:
                raise MoodleTransientError("Connection refused")
            return original(client, courseid, *args, **kwargs)

        with (
            trap_jobs(),
            patch.object(MoodleClient, "get_grade_items", outage_at_biology),
        ):
            self.instance._job_pull_grades()
        run = self.runs()[-1]
        self.assertEqual((run.state, run.created), ("failed", 1))
        self.assertIn("unreachable", run.message)

    def test_one_course_failing_every_run_does_not_stop_the_others(self):
        algebra, biology = self.data["subjects"][:2]
        original = MoodleClient.get_grade_items

        def biology_times_out(client, courseid, *args, **kwargs):
            if courseid == self.courses[1]:
                raise MoodleTransientError("Read timed out")
            return original(client, courseid, *args, **kwargs)

        chemistry = self.all_courses[2]
        with patch.object(MoodleClient, "get_grade_items", biology_times_out):
            for _run in range(SyncGrades.STUCK_TRIES):
                self.instance.backoff_until = False
                self.fm.reset_calls()
                with trap_jobs():
                    self.instance._job_pull_grades()
                # Each run asks the course it stopped at, and no further.
                self.assertNotIn(chemistry, self.asked())
            self.assertEqual(self.cycle().stuck, self.courses[1])
            self.assertEqual(self.cycle().tries, SyncGrades.STUCK_TRIES)
            self.instance.backoff_until = False
            self.fm.reset_calls()
            summary = self.instance._job_pull_grades()
        # The next run leaves that course to the next cycle and goes on.
        self.assertEqual(self.asked(), [chemistry])
        self.assertIn(
            f"course {self.courses[1]} (oec_subj_{biology.id}_course_"
            f"{self.data['program'].id}): not read in this cycle, 3 runs in a "
            "row failed at it (last: Read timed out)",
            summary,
        )
        self.assertEqual(self.runs()[-1].state, "partial")
        self.assertFalse(self.cycle().started)
        self.assertFalse(self.exams(biology))
        # Once the course answers again, the next cycle reads it.
        self.fm.reset_calls()
        self.instance._job_pull_grades()
        self.assertEqual(self.asked(), self.all_courses)
        self.assertEqual(self.exams(biology).attendees_line.mapped("marks"), [75])

    def test_a_course_that_failed_earlier_in_the_read_still_counts(self):
        original = MoodleClient.get_grade_items

        def algebra_refused_then_outage(client, courseid, *args, **kwargs):
            if courseid == self.courses[0]:
                raise MoodleRecordError(
                    "Error reading from database", "dmlreadexception"
                )
            if courseid == self.courses[1]:
                raise MoodleTransientError("Connection refused")
            return original(client, courseid, *args, **kwargs)

        with (
            trap_jobs(),
            patch.object(MoodleClient, "get_grade_items", algebra_refused_then_outage),
        ):
            self.instance._job_pull_grades()
        self.instance.backoff_until = False
        # The run that ends the read got through every course it asked, but
        # Algebra's grades are still not read: it does not say all is well.
        summary = self.instance._job_pull_grades()
        self.assertIn("1 courses failed", summary)
        self.assertIn(
            f"1 courses failed earlier in this read (Moodle ids [{self.courses[0]}])",
            summary,
        )
        self.assertEqual(self.runs()[-1].state, "partial")
        summary = self.instance._job_pull_grades()
        self.assertIn("0 courses failed", summary)
        self.assertEqual(self.runs()[-1].state, "done")

    def test_a_failing_list_is_put_on_the_first_course_of_its_chunk(self):
        self.instance.pull_assignments = True

        def outage(client, *args, **kwargs):
            raise MoodleTransientError("Read timed out")

        with (
            trap_jobs(),
            patch.object(MoodleClient, "get_assignments", outage),
        ):
            self.instance._job_pull_grades()
        # No gradebook was asked; the read stands before its first course.
        self.assertEqual(self.asked(), [])
        cycle = self.cycle()
        self.assertEqual(
            (cycle.after, cycle.stuck, cycle.tries), (0, self.courses[0], 1)
        )

    def test_a_worker_killed_part_way_leaves_its_counts(self):
        original = MoodleClient.get_grade_items

        def killed_at_biology(client, courseid, *args, **kwargs):
            if courseid == self.courses[1]:
                raise SystemExit("worker killed")
            return original(client, courseid, *args, **kwargs)

        # Not assertRaises: Odoo's rolls back to a savepoint, as the dead
        # worker's transaction would be; this test keeps what was written.
        killed = False
        with patch.object(MoodleClient, "get_grade_items", killed_at_biology):
            try:
                self.instance._job_pull_grades()
            except SystemExit:
                killed = True
        self.assertTrue(killed)
        run = self.runs()[-1]
        self.assertEqual((run.state, run.created, run.unchanged), ("running", 1, 0))

    def test_a_killed_grade_run_is_said_to_have_kept_its_courses(self):
        dead = self.env["moodle.sync.run"].create(
            {"instance_id": self.instance.id, "kind": "grades", "state": "running"}
        )
        self.instance._job_pull_grades()
        self.assertEqual(dead.state, "interrupted")
        self.assertIn("are kept", dead.message)
        self.assertNotIn("rolled back", dead.message)

    def test_a_run_whose_completion_failed_leaves_the_grades_read(self):
        for courseid in self.all_courses:
            self.fm.set_completion_criteria(courseid)
        original = MoodleClient.get_course_completion_status

        def outage(client, *args, **kwargs):
            raise MoodleTransientError("Connection refused")

        with (
            trap_jobs(),
            patch.object(MoodleClient, "get_course_completion_status", outage),
        ):
            summary = self.instance._job_pull_grades()
        self.assertIn("unreachable", summary)
        self.assertEqual(self.asked(), self.all_courses)
        self.assertEqual(self.cycle().after, self.all_courses[-1])
        # The next run reads no course's grades again: it goes on with
        # completion, then the cycle is over.
        self.instance.backoff_until = False
        self.fm.reset_calls()
        with patch.object(MoodleClient, "get_course_completion_status", original):
            self.instance._job_pull_grades()
        self.assertEqual(self.asked(), [])
        completion = [
            n
            for n, _p in self.fm.calls
            if n == "core_completion_get_course_completion_status"
        ]
        self.assertTrue(completion)
        self.assertFalse(self.cycle().started)

    def test_a_pull_without_faults_reads_every_course_and_leaves_no_cycle(self):
        self.instance._job_pull_grades()
        self.assertEqual(self.asked(), self.all_courses)
        self.assertFalse(self.cycle().started)

    def test_a_dry_run_neither_uses_nor_moves_the_cycle(self):
        cycle = self.cycle()
        cycle.started, cycle.after = 1_700_000_000, self.courses[0]
        cycle.save()
        with self.no_moodle_write():
            SyncGrades(
                self.instance, self.instance._get_client(), dry_run=True
            ).pull_all_combined()
        self.assertEqual(self.asked(), self.all_courses)
        self.assertEqual(self.cycle().after, self.courses[0])


@tagged("post_install", "-at_install")
class TestCommittedAsItGoes(MoodleCase):
    """One committed instance, real cursors."""

    def setUp(self):
        super().setUp()
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            instance = env["moodle.instance"].create(
                {"name": "Committed grades", "base_url": BASE_URL, "token": TOKEN}
            )
        self.committed_id = instance.id
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            env["moodle.instance"].browse(self.committed_id).unlink()

    def rows(self):
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT external_key FROM moodle_mapping WHERE instance_id = %s "
                "ORDER BY external_key",
                [self.committed_id],
            )
            return [key for (key,) in cr.fetchall()]

    def test_bookkeeping_that_waited_for_the_row_is_not_retried(self):
        """Two jobs' bookkeeping at once (two parts of a push ending together):
        the second waits for the row and then writes on the first's, with no
        serialization failure (and no ERROR line in Odoo's log)."""
        holder = self.registry.cursor()
        self.addCleanup(holder.close)
        holder.execute(
            "SELECT id FROM moodle_instance WHERE id = %s FOR NO KEY UPDATE",
            [self.committed_id],
        )
        holder.execute(
            "UPDATE moodle_instance SET health_message = 'first' WHERE id = %s",
            [self.committed_id],
        )
        retried, result = [], []

        def second():
            with self.registry.cursor() as cr:
                env = api.Environment(cr, SUPERUSER_ID, {})
                instance = env["moodle.instance"].browse(self.committed_id)

                def note(side):
                    return side.health_message

                with patch.object(
                    runs_module._logger,
                    "info",
                    lambda *args: retried.append(args),
                ):
                    result.append(instance._moodle_own_transaction(note))

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(1.0)  # the second is waiting for the row lock
        holder.commit()
        thread.join(30)
        self.assertEqual(result, ["first"])
        self.assertEqual(retried, [])

    def test_what_was_committed_stays_and_what_was_not_goes(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            instance = env["moodle.instance"].browse(self.committed_id)

            def row(env, key):
                env["moodle.mapping"].create(
                    {
                        "instance_id": self.committed_id,
                        "moodle_model": "grade",
                        "external_key": key,
                        "res_model": "moodle.instance",
                        "res_id": self.committed_id,
                    }
                )

            with (
                self.assertRaises(MoodleTransientError),
                instance._moodle_committing(env) as (side, commit),
            ):
                self.assertIsNot(side.cr, env.cr)
                row(side, "kept")
                commit()
                # Seen by everyone at once, not at the job's end.
                self.assertEqual(self.rows(), ["kept"])
                row(side, "lost")
                raise MoodleTransientError("Connection refused")
            # The job's own transaction rolls back: what was committed stays.
            cr.rollback()
        self.assertEqual(self.rows(), ["kept"])
