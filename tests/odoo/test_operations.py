import datetime

from freezegun import freeze_time

from odoo import fields
from odoo.tests import tagged

from odoo.addons.queue_job.tests.common import trap_jobs

from .common import InstitutionCase, MoodleCase

T0 = datetime.datetime(2026, 9, 1, 8, 0, 0)


@tagged("post_install", "-at_install")
class TestRetries(InstitutionCase):
    suffix = "R"

    def course_mapping(self, subject):
        return self.env["moodle.mapping"].search(
            [
                ("instance_id", "=", self.instance.id),
                (
                    "external_key",
                    "=",
                    f"oec_subj_{subject.id}_course_{self.data['program'].id}",
                ),
            ]
        )

    def retry_cron(self, when):
        with freeze_time(when), trap_jobs() as trap:
            self.env["moodle.instance"]._cron_retry_failed()
            count = trap.jobs_count(only=self.instance._job_push)
            trap.perform_enqueued_jobs()
        return count

    def test_backoff_schedule_end_to_end(self):
        bio = self.data["subjects"][1]
        # Another Moodle course squats the shortname our Biology course needs.
        squatter = self.fm.add_course("Squatter", "BIOR_PRGR")
        with freeze_time(T0):
            self.instance._job_push()
        mapping = self.course_mapping(bio)
        self.assertEqual((mapping.state, mapping.retry_count), ("error", 1))
        self.assertIn("shortnametaken", mapping.last_error)
        self.assertEqual(mapping.next_retry_date, T0 + datetime.timedelta(minutes=5))
        self.assertEqual(len(mapping.extra_data["attempts"]), 1)
        # Not due yet: nothing is enqueued.
        self.assertEqual(self.retry_cron(T0 + datetime.timedelta(minutes=4)), 0)
        when = T0
        for expected_count, delay in (
            (2, datetime.timedelta(minutes=30)),
            (3, datetime.timedelta(hours=4)),
            (4, datetime.timedelta(hours=24)),
        ):
            when = mapping.next_retry_date + datetime.timedelta(seconds=1)
            self.assertEqual(self.retry_cron(when), 1)
            self.assertEqual(mapping.retry_count, expected_count)
            self.assertEqual(mapping.state, "error")
            self.assertEqual(
                mapping.next_retry_date, when.replace(microsecond=0) + delay
            )
        when = mapping.next_retry_date + datetime.timedelta(seconds=1)
        self.assertEqual(self.retry_cron(when), 1)
        self.assertEqual((mapping.state, mapping.retry_count), ("failed", 5))
        self.assertFalse(mapping.next_retry_date)
        self.assertEqual(len(mapping.extra_data["attempts"]), 5)
        creates = self.fm.call_counts["core_course_create_courses"]
        # Permanently failed: the cron leaves it, so does the hourly push.
        self.assertEqual(self.retry_cron(when + datetime.timedelta(days=3)), 0)
        with freeze_time(when + datetime.timedelta(days=3)):
            self.instance._job_push()
        self.assertEqual(self.fm.call_counts["core_course_create_courses"], creates)
        # The admin frees the shortname in Moodle and retries by hand.
        self.fm.courses[squatter]["shortname"] = "OLD_SQUATTER"
        with trap_jobs() as trap:
            self.instance.action_retry_failed()
            trap.assert_jobs_count(1)
            trap.perform_enqueued_jobs()
        self.assertEqual(mapping.state, "synced")
        self.assertTrue(self.fm.find_course(idnumber=mapping.external_key))

    def test_rerun_after_a_job_killed_before_commit_creates_no_duplicates(self):
        sizes = None
        try:
            with self.env.cr.savepoint():
                self.instance._job_push()
                sizes = (
                    len(self.fm.categories),
                    len(self.fm.courses),
                    len(self.fm.users),
                    len(self.fm.groups),
                )
                raise RuntimeError("worker killed before commit")
        except RuntimeError:
            pass
        self.env.invalidate_all()
        self.assertFalse(
            self.env["moodle.mapping"].search([("instance_id", "=", self.instance.id)])
        )
        self.instance._job_push()
        self.assertEqual(
            (
                len(self.fm.categories),
                len(self.fm.courses),
                len(self.fm.users),
                len(self.fm.groups),
            ),
            sizes,
        )
        self.assertEqual(
            self.env["moodle.mapping"].search_count(
                [
                    ("instance_id", "=", self.instance.id),
                    ("moodle_model", "=", "course"),
                    ("state", "=", "synced"),
                ]
            ),
            3,
        )

    def test_a_second_push_of_the_same_instance_waits(self):
        from odoo.addons.queue_job.exception import RetryableJobError

        # Another transaction holds the instance's push lock.
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", (0x4D4F4F44, self.instance.id)
            )
            with self.assertRaises(RetryableJobError):
                self.instance._job_push()
        self.assertEqual(self.fm.write_call_count(), 0)

    def test_access_failure_pauses_jobs_until_fixed(self):
        self.fm.remove_function("core_course_create_courses")
        summary = self.instance._job_push()
        self.assertIn("core_course_create_courses", summary)
        self.assertIn("External services", summary)  # what to fix in Moodle
        self.assertEqual(self.instance.health_state, "access")
        with trap_jobs() as trap:
            self.env["moodle.instance"]._cron_full_push_sync()
            self.env["moodle.instance"]._cron_grade_pull()
            self.env["moodle.instance"]._cron_retry_failed()
            self.env["op.student"].create(
                {"name": "Zed Ka", "first_name": "Zed", "last_name": "Ka"}
            )
        trap.assert_jobs_count(0)
        # No record burnt a retry on it.
        self.assertFalse(
            self.env["moodle.mapping"].search(
                [("instance_id", "=", self.instance.id), ("retry_count", ">", 0)]
            )
        )
        self.fm.add_function("core_course_create_courses")
        self.instance.action_test_connection()
        self.assertEqual(self.instance.health_state, "ok")
        with trap_jobs() as trap:
            self.env["moodle.instance"]._cron_full_push_sync()
        trap.assert_jobs_count(1)


@tagged("post_install", "-at_install")
class TestHealth(MoodleCase):
    def test_health_check_records_release_and_flags_stale(self):
        self.instance.last_sync_date = fields.Datetime.now() - datetime.timedelta(
            hours=5
        )
        self.instance._job_health_check()
        self.assertEqual(self.instance.moodle_release, "4.5.6 (Build: 20250811)")
        self.assertEqual(self.instance.health_state, "stale")
        manager = self.env.ref("openeducat_moodle.group_moodle_manager").users[:1]
        activity = self.instance.activity_ids.filtered(lambda a: a.user_id == manager)
        self.assertEqual(len(activity), 1)
        self.assertIn("stale", activity.summary)
        # Within the threshold again: healthy, and no second activity.
        self.instance.last_sync_date = fields.Datetime.now() - datetime.timedelta(
            hours=3
        )
        self.instance._job_health_check()
        self.assertEqual(self.instance.health_state, "ok")
        self.instance.last_sync_date = fields.Datetime.now() - datetime.timedelta(
            hours=5
        )
        self.instance._job_health_check()
        self.assertEqual(
            len(self.instance.activity_ids.filtered(lambda a: a.user_id == manager)), 1
        )

    def test_threshold_is_per_instance(self):
        self.instance.stale_threshold_hours = 8
        self.instance.last_sync_date = fields.Datetime.now() - datetime.timedelta(
            hours=5
        )
        self.instance._job_health_check()
        self.assertEqual(self.instance.health_state, "ok")

    def test_health_cron_enqueues_one_job_per_instance(self):
        with trap_jobs() as trap:
            self.env["moodle.instance"]._cron_health_check()
        trap.assert_enqueued_job(
            self.instance._job_health_check, properties={"channel": "root.moodle"}
        )

    def test_unreachable_site_is_logged_and_flagged(self):
        self.fm.inject("drop", times=5)
        self.instance._job_health_check()
        self.assertEqual(self.instance.health_state, "error")
        run = self.env["moodle.sync.run"].search(
            [("instance_id", "=", self.instance.id)]
        )
        self.assertEqual((run.kind, run.state), ("health", "failed"))
