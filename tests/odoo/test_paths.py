"""Paths nothing else exercised (issue 16, item 7): a program waiting for its
department, the grade source toggles, the completion schedule, the grade
cron's positive path, Retry-After in the instance backoff."""

import datetime

from freezegun import freeze_time

from odoo import fields
from odoo.exceptions import UserError
from odoo.tests import tagged

from odoo.addons.queue_job.tests.common import trap_jobs

from .common import InstitutionCase
from .test_pull import GradeSiteCase

T0 = datetime.datetime(2026, 10, 5, 9, 0, 0)


@tagged("post_install", "-at_install")
class TestProgramWaitsForItsDepartment(InstitutionCase):
    suffix = "W"

    def mapping(self, key):
        return self.env["moodle.mapping"].search(
            [("instance_id", "=", self.instance.id), ("external_key", "=", key)]
        )

    def test_program_blocked_until_its_department_is_mapped(self):
        d = self.data
        # The department cannot be created: Moodle refuses its category.
        self.fm.inject("http500", times=1, function="core_course_create_categories")
        self.fm.add_category("Squat", idnumber="not-ours")
        with trap_jobs():
            self.instance._job_push(["departments"])
        self.instance.write({"backoff_until": False, "failure_streak": 0})
        self.instance._job_push(["programs"])
        program = self.mapping(f"oec_course_{d['program'].id}")
        self.assertEqual(program.state, "blocked")
        self.assertIn("department", program.last_error)
        self.assertFalse(
            self.fm.find_category(idnumber=f"oec_course_{d['program'].id}")
        )
        # Once the department is in Moodle, the program follows.
        self.instance._job_push(["departments", "programs"])
        self.assertEqual(program.state, "synced")
        category = self.fm.find_category(idnumber=f"oec_course_{d['program'].id}")
        parent = self.fm.find_category(idnumber=f"oec_dept_{d['dept'].id}")
        self.assertEqual(category["parent"], parent["id"])


@tagged("post_install", "-at_install")
class TestGradeSwitches(GradeSiteCase):
    def test_each_source_can_be_switched_off(self):
        for field, function in (
            ("pull_gradebook", "gradereport_user_get_grade_items"),
            ("pull_assignments", "mod_assign_get_grades"),
            ("pull_quizzes", "mod_quiz_get_user_best_grade"),
        ):
            with self.subTest(field=field):
                self.instance.write(
                    {
                        "pull_gradebook": True,
                        "pull_assignments": True,
                        "pull_quizzes": True,
                        field: False,
                    }
                )
                self.fm.reset_calls()
                self.instance._job_pull_grades()
                self.assertEqual(self.fm.call_counts[function], 0)
                others = {
                    "gradereport_user_get_grade_items",
                    "mod_assign_get_grades",
                    "mod_quiz_get_user_best_grade",
                } - {function}
                for other in others:
                    self.assertGreater(self.fm.call_counts[other], 0, other)

    def test_completion_on_its_own_schedule(self):
        function = "core_completion_get_course_completion_status"
        self.instance.completion_schedule = "separate"
        self.instance._job_pull_grades()
        self.assertEqual(self.fm.call_counts[function], 0)
        with trap_jobs() as trap:
            self.env["moodle.instance"]._cron_completion_pull()
        trap.assert_enqueued_job(self.instance._job_pull_completion)
        trap.perform_enqueued_jobs()
        self.assertGreater(self.fm.call_counts[function], 0)
        # With every grade pull: no separate job.
        self.instance.completion_schedule = "with_grades"
        with trap_jobs() as trap:
            self.env["moodle.instance"]._cron_completion_pull()
        trap.assert_jobs_count(0, only=self.instance._job_pull_completion)

    def test_completion_off_asks_nothing(self):
        self.instance.pull_completion = False
        self.instance._job_pull_grades()
        self.assertEqual(
            self.fm.call_counts["core_completion_get_course_completion_status"], 0
        )

    def test_the_grade_cron_pulls(self):
        with trap_jobs() as trap:
            self.env["moodle.instance"]._cron_grade_pull()
        trap.assert_enqueued_job(
            self.instance._job_pull_grades, properties={"channel": "root.moodle"}
        )
        trap.perform_enqueued_jobs()
        self.assertTrue(self.attendees(self.data["ann"]))
        # While the instance backs off, the cron enqueues nothing.
        self.instance.backoff_until = fields.Datetime.now() + datetime.timedelta(
            minutes=5
        )
        with trap_jobs() as trap:
            self.env["moodle.instance"]._cron_grade_pull()
        trap.assert_jobs_count(0, only=self.instance._job_pull_grades)


@tagged("post_install", "-at_install")
class TestRetryAfter(InstitutionCase):
    suffix = "Y"

    def test_retry_after_lengthens_the_backoff(self):
        self.fm.inject("http429", times=1)
        original = self.fm._fault_response

        def two_hours(kind):
            status, headers, body = original(kind)
            headers["Retry-After"] = "7200"  # Moodle (or a proxy) asks for 2 h
            return status, headers, body

        self.fm._fault_response = two_hours
        with freeze_time(T0), trap_jobs() as trap:
            self.instance._job_push()
        self.assertEqual(self.instance.backoff_until, T0 + datetime.timedelta(hours=2))
        trap.assert_enqueued_job(
            self.instance._job_probe,
            properties={"eta": T0 + datetime.timedelta(hours=2)},
        )


@tagged("post_install", "-at_install")
class TestDepartmentLimitedPush(InstitutionCase):
    suffix = "Q"

    def test_a_push_limited_to_one_department_leaves_the_others_alone(self):
        from .common import make_institution

        other = make_institution(self.no_export_env, "Q2")
        self.instance.department_ids |= other["dept"]
        self.instance._job_push()
        enrolled = len(self.fm.enrolments)
        self.assertGreater(enrolled, 0)
        # The wizard's push of the first department only.
        self.instance._job_push(department_ids=self.data["dept"].ids)
        self.assertEqual(len(self.fm.enrolments), enrolled)
        self.assertEqual(self.fm.call_counts["enrol_manual_unenrol_users"], 0)
        # A department the instance does not serve is not pushed to it.
        stranger = self.env["op.department"].create(
            {"name": "Elsewhere Q", "code": "EQ"}
        )
        with self.assertRaises(UserError):
            self.instance._job_push(department_ids=stranger.ids)
        self.assertFalse(self.fm.find_category(idnumber=f"oec_dept_{stranger.id}"))
