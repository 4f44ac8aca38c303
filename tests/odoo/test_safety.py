"""Production safety (issue 13): outages, overlapping jobs, retries that end.

The first classes run inside the test's transaction, as the rest of the suite
does. :class:`TestConcurrency` commits its own instance and drives jobs on two
real database cursors, with real advisory locks and real REPEATABLE READ
snapshots, as two queue_job workers would; it deletes what it committed.
"""

import datetime
from unittest.mock import patch

from freezegun import freeze_time

from odoo import SUPERUSER_ID, api, fields
from odoo.tests import tagged

from odoo.addons.openeducat_moodle.const import PULL_LOCK, PUSH_LOCK
from odoo.addons.openeducat_moodle.moodle import MoodleClient, MoodleTransientError
from odoo.addons.queue_job.exception import RetryableJobError
from odoo.addons.queue_job.job import Job
from odoo.addons.queue_job.tests.common import trap_jobs

from .common import BASE_URL, TOKEN, InstitutionCase, MoodleCase

T0 = datetime.datetime(2026, 10, 5, 9, 0, 0)
PUSH_CORE = "odoo.addons.openeducat_moodle.sync.push"


def stored_job(instance, method, *args, eta=None, max_retries=None):
    """A real queue.job row, as ``with_delay`` stores it outside trap_jobs."""
    options = {"eta": eta, "identity_key": f"moodle:{instance.id}:test:{method}"}
    if max_retries:
        options["max_retries"] = max_retries
    delayed = instance.with_delay(**options)
    return getattr(delayed, method)(*args)


@tagged("post_install", "-at_install")
class TestOneBackoffPerOutage(InstitutionCase):
    suffix = "O"

    def test_jobs_that_meet_one_outage_count_once(self):
        self.fm.inject("drop", times=1000)
        with freeze_time(T0), trap_jobs():
            self.instance._job_push()
            # Two more jobs were already running when Moodle went away: they
            # report the same outage.
            for _n in range(2):
                self.instance._moodle_note_failure(MoodleTransientError("refused"))
        self.assertEqual(self.instance.failure_streak, 1)
        self.assertEqual(
            self.instance.backoff_until, T0 + datetime.timedelta(minutes=5)
        )
        # A job that starts inside the window calls nobody and burns no retry.
        calls = len(self.fm.calls)
        with freeze_time(T0 + datetime.timedelta(minutes=1)):
            with self.assertRaises(RetryableJobError) as caught:
                self.instance._job_push()
            with self.assertRaises(RetryableJobError):
                self.instance._job_pull_grades()
        self.assertTrue(caught.exception.ignore_retry)
        self.assertEqual(len(self.fm.calls), calls)
        self.assertEqual(self.instance.failure_streak, 1)

    def test_probe_at_the_end_of_the_window_lifts_the_pause(self):
        self.fm.inject("drop", times=1000)
        with freeze_time(T0), trap_jobs() as trap:
            self.instance._job_push()
        trap.assert_enqueued_job(
            self.instance._job_probe,
            properties={"eta": T0 + datetime.timedelta(minutes=5)},
        )
        until = self.instance.backoff_until
        # Still down at the end of the window: one more step, one more probe.
        with freeze_time(until), trap_jobs() as trap:
            self.instance._job_probe()
        self.assertEqual(self.instance.failure_streak, 2)
        until = self.instance.backoff_until
        self.assertEqual(until - T0, datetime.timedelta(minutes=35))
        trap.assert_jobs_count(1, only=self.instance._job_probe)
        # A hook push enqueued meanwhile waits for the probe.
        with freeze_time(T0 + datetime.timedelta(minutes=10)):
            eta = self.instance._moodle_eta()
            waiting = stored_job(self.instance, "_job_push", eta=eta)
        waiting_job = self.env["queue.job"].search([("uuid", "=", waiting.uuid)])
        self.assertEqual(waiting_job.eta, until + datetime.timedelta(minutes=1))
        # Back: the probe (one call) lifts the pause, the waiting job runs now.
        self.fm.faults.clear()
        self.fm.reset_calls()
        with freeze_time(until):
            summary = self.instance._job_probe()
        self.assertIn("pause is lifted", summary)
        self.assertEqual(self.fm.call_counts, {"core_webservice_get_site_info": 1})
        self.assertEqual(
            (self.instance.failure_streak, self.instance.backoff_until), (0, False)
        )
        self.assertEqual(self.instance.health_state, "ok")
        self.assertFalse(waiting_job.eta)
        runs = self.env["moodle.sync.run"].search(
            [("instance_id", "=", self.instance.id), ("kind", "=", "health")]
        )
        self.assertEqual(sorted(runs.mapped("state")), ["done", "failed"])

    def test_push_now_that_reaches_moodle_runs_now(self):
        self.fm.inject("drop", times=1000)
        with trap_jobs():
            self.instance._job_push()
        until = self.instance.backoff_until
        self.assertTrue(until)
        # Still down: told when, and the push waits for the window's end.
        with trap_jobs() as trap:
            action = self.instance.action_push_now()
        self.assertEqual(action["params"]["title"], "Moodle still unreachable")
        self.assertIn(str(until), action["params"]["message"])
        self.assertEqual(
            trap.enqueued_jobs[0].eta, until + datetime.timedelta(minutes=1)
        )
        # Back: the pause is lifted and the push runs at once.
        self.fm.faults.clear()
        waiting = stored_job(
            self.instance, "_job_pull_grades", eta=self.instance._moodle_eta()
        )
        with trap_jobs() as trap:
            action = self.instance.action_push_now()
        self.assertEqual(action["params"]["title"], "Push enqueued")
        self.assertFalse(trap.enqueued_jobs[0].eta)
        self.assertEqual(
            (self.instance.failure_streak, self.instance.backoff_until), (0, False)
        )
        self.assertFalse(
            self.env["queue.job"].search([("uuid", "=", waiting.uuid)]).eta
        )

    def test_test_connection_lifts_the_pause_and_releases_jobs(self):
        self.fm.inject("drop", times=1000)
        with trap_jobs():
            self.instance._job_push()
        waiting = stored_job(
            self.instance, "_job_push", eta=self.instance._moodle_eta()
        )
        self.fm.faults.clear()
        self.instance.action_test_connection()
        self.assertEqual(self.instance.health_state, "ok")
        self.assertFalse(self.instance.backoff_until)
        self.assertFalse(
            self.env["queue.job"].search([("uuid", "=", waiting.uuid)]).eta
        )

    def test_a_push_stopped_part_way_logs_what_it_did(self):
        self.fm.inject("drop", times=1000, function="core_user_create_users")
        with trap_jobs():
            self.instance._job_push()
        run = self.env["moodle.sync.run"].search(
            [("instance_id", "=", self.instance.id), ("kind", "=", "push")]
        )
        self.assertEqual(run.state, "failed")
        # Categories and courses went through before the users' call failed.
        self.assertEqual(run.created, 2 + 1 + 3)
        self.assertIn("unreachable", run.message)

    def test_the_form_says_when_and_why(self):
        self.fm.inject("http503", times=1000)
        with trap_jobs():
            self.instance._job_push()
        arch = self.instance.get_views([(False, "form")])["views"]["form"]["arch"]
        self.assertIn("Next attempt", arch)
        self.assertIn('name="backoff_until"', arch)
        self.assertIn("503", self.instance.health_message)


@tagged("post_install", "-at_install")
class TestLocksAndRetries(InstitutionCase):
    suffix = "L"

    def test_waiting_for_the_push_lock_never_exhausts_retries(self):
        job = stored_job(self.instance, "_job_push", max_retries=2)
        record = self.env["queue.job"].search([("uuid", "=", job.uuid)])
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", (PUSH_LOCK, self.instance.id)
            )
            for _attempt in range(5):
                loaded = Job.load(self.env, record.uuid)
                with self.assertRaises(RetryableJobError) as caught:
                    loaded.perform()
                self.assertTrue(caught.exception.ignore_retry)
                self.assertEqual(loaded.retry, 0)
        self.assertEqual(self.fm.write_call_count(), 0)

    def test_a_second_grade_pull_is_skipped_with_a_note(self):
        self.instance._job_push()
        self.fm.reset_calls()
        lines = self.env["op.result.line"].search_count([])
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", (PULL_LOCK, self.instance.id)
            )
            summary = self.instance._job_pull_grades()
            completion = self.instance._job_pull_completion()
        self.assertIn("skipped", summary)
        self.assertIn("skipped", completion)
        self.assertEqual(self.fm.calls, [])
        self.assertEqual(self.env["op.result.line"].search_count([]), lines)
        skipped = self.env["moodle.sync.run"].search(
            [("instance_id", "=", self.instance.id), ("state", "=", "skipped")]
        )
        self.assertEqual(sorted(skipped.mapped("kind")), ["completion", "grades"])

    def test_a_run_left_running_by_a_killed_worker_is_marked_interrupted(self):
        dead = self.env["moodle.sync.run"].create(
            {"instance_id": self.instance.id, "kind": "push", "state": "running"}
        )
        pull = self.env["moodle.sync.run"].create(
            {"instance_id": self.instance.id, "kind": "grades", "state": "running"}
        )
        self.instance._job_push()
        self.assertEqual(dead.state, "interrupted")
        self.assertIn("redoes it", dead.message)
        self.assertEqual(pull.state, "running")  # another lock: maybe alive

    def test_out_of_scope_mappings_are_retired_not_retried_forever(self):
        d = self.data
        self.instance._job_push()
        # Ann's account failed once and is due again...
        ann = self.env["moodle.mapping"].search(
            [("external_key", "=", f"oec_student_{d['ann'].id}")]
        )
        past = fields.Datetime.now() - datetime.timedelta(minutes=1)
        ann.write({"state": "error", "next_retry_date": past, "last_error": "x"})
        # ...but her department is no longer served (and no record matches a
        # deleted student either).
        other = self.env["op.department"].create({"name": "Other L", "code": "OL"})
        self.instance.department_ids = other
        with trap_jobs() as trap:
            self.env["moodle.instance"]._cron_retry_failed()
            self.assertEqual(trap.jobs_count(only=self.instance._job_push), 1)
            trap.perform_enqueued_jobs()
        self.assertEqual(ann.state, "retired")
        self.assertFalse(ann.next_retry_date)
        self.assertIn("No longer pushed", ann.last_error)
        with trap_jobs() as trap:
            self.env["moodle.instance"]._cron_retry_failed()
        trap.assert_jobs_count(0)

    def test_a_run_where_everything_failed_is_not_a_successful_sync(self):
        self.instance.last_sync_date = False
        summary, error = self.instance._run(
            "grades", lambda client: ("every course failed", {"failed": 3})
        )
        self.assertIsNone(error)
        run = self.env["moodle.sync.run"].search(
            [("instance_id", "=", self.instance.id)], limit=1
        )
        self.assertEqual(run.state, "partial")
        self.assertFalse(self.instance.last_sync_date)
        self.instance._run("grades", lambda client: ("", {"failed": 1, "updated": 9}))
        self.assertTrue(self.instance.last_sync_date)


@tagged("post_install", "-at_install")
class TestCompletionKeepsWhatItGot(InstitutionCase):
    suffix = "C"
    with_ben = True

    def completion_rows(self):
        return self.env["moodle.mapping"].search(
            [
                ("instance_id", "=", self.instance.id),
                ("moodle_model", "=", "completion"),
            ]
        )

    def test_a_failure_half_way_keeps_the_answers_and_the_next_run_resumes(self):
        self.instance._job_push()
        for course in self.fm.courses.values():
            if (course.get("idnumber") or "").startswith("oec_subj_"):
                self.fm.set_completion_criteria(course["id"])
        function = "core_completion_get_course_completion_status"
        self.fm.reset_calls()
        with freeze_time(T0):
            self.instance._job_pull_completion()
        asked_first = self.asked(function)
        self.assertEqual(len(asked_first), 3)  # Ann: 2 courses, Ben: 1
        self.assertEqual(len(self.completion_rows()), 3)
        # The next run meets an outage at its second call: the answer before it
        # is kept, not thrown away with the rest.
        original = MoodleClient.get_course_completion_status
        calls = []

        def flaky(client, courseid, userid):
            calls.append((courseid, userid))
            if len(calls) >= 2:
                raise MoodleTransientError("Connection refused")
            return original(client, courseid, userid)

        # A day apart: each run is the daily sweep, which asks every student
        # not complete (in between, only those active in their course are).
        later = T0 + datetime.timedelta(days=1)
        patched = patch.object(MoodleClient, "get_course_completion_status", flaky)
        with freeze_time(later), trap_jobs(), patched:
            summary = self.instance._job_pull_completion()
        self.assertIn("unreachable", summary)
        kept = self.completion_rows().filtered(lambda r: r.last_sync_date == later)
        self.assertEqual(len(kept), 1)
        # The run after that goes on with the sweep where it stopped: the
        # student answered in the failed run is not asked again.
        self.instance.backoff_until = False
        self.fm.reset_calls()
        with freeze_time(later + datetime.timedelta(hours=1)):
            self.instance._job_pull_completion()
        asked = self.asked(function)
        self.assertEqual(len(asked), 2)
        kept_user = kept.external_key.split("@")[0]
        kept_course = self.fm.find_course(idnumber=kept.external_key.split("@")[1])
        kept_userid = self.fm.find_user(idnumber=kept_user)["id"]
        self.assertNotIn((kept_course["id"], kept_userid), asked)

    def asked(self, function):
        return [
            (int(params["courseid"]), int(params["userid"]))
            for name, params in self.fm.calls
            if name == function
        ]


@tagged("post_install", "-at_install")
class TestConcurrency(MoodleCase):
    """Two workers, two real cursors, one committed instance."""

    def setUp(self):
        super().setUp()
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {"connector_no_export": True})
            dept = env["op.department"].create({"name": "Concurrency", "code": "CC"})
            instance = env["moodle.instance"].create(
                {
                    "name": "Committed Moodle",
                    "base_url": BASE_URL,
                    "token": TOKEN,
                    "department_ids": [(6, 0, dept.ids)],
                }
            )
        self.committed_id, self.dept_id = instance.id, dept.id
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {"connector_no_export": True})
            env["queue.job"].search(
                [("identity_key", "=like", f"moodle:{self.committed_id}:%")]
            ).unlink()
            env["moodle.instance"].browse(self.committed_id).unlink()
            env["op.department"].browse(self.dept_id).unlink()

    def worker(self):
        """A cursor and the committed instance on it, as a job's worker has."""
        cr = self.registry.cursor()
        self.addCleanup(cr.close)
        env = api.Environment(cr, SUPERUSER_ID, {"connector_no_export": True})
        return cr, env["moodle.instance"].browse(self.committed_id)

    def test_overlapping_jobs_both_commit_their_work(self):
        cr_push, push = self.worker()
        cr_health, health = self.worker()
        # The push's transaction starts first (its snapshot is older)...
        cr_push.execute("SELECT 1")
        push.name  # noqa: B018 - read, as a job does when it starts
        # ...a health check of the same instance runs and commits meanwhile...
        health._job_health_check()
        cr_health.commit()
        # ...then the push does its work and commits: not rolled back.
        summary = push._job_push()
        cr_push.commit()
        self.assertIn("departments: 1 created", summary)
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            instance = env["moodle.instance"].browse(self.committed_id)
            mapping = env["moodle.mapping"].search(
                [
                    ("instance_id", "=", self.committed_id),
                    ("moodle_model", "=", "category"),
                ]
            )
            self.assertEqual(mapping.external_key, f"oec_dept_{self.dept_id}")
            self.assertTrue(instance.last_sync_date)
            runs = env["moodle.sync.run"].search(
                [("instance_id", "=", self.committed_id)]
            )
            self.assertEqual(sorted(runs.mapped("kind")), ["health", "push"])
            self.assertEqual(
                sorted(runs.mapped(lambda r: (r.kind, r.state))),
                [("health", "done"), ("push", "done")],
            )

    def test_one_outage_met_by_two_workers_counts_once(self):
        cr_a, job_a = self.worker()
        cr_b, job_b = self.worker()
        cr_a.execute("SELECT 1")
        cr_b.execute("SELECT 1")
        self.fm.inject("drop", times=1000)
        job_a._job_health_check()
        cr_a.commit()
        # B's snapshot predates A's backoff; it still counts the same outage once.
        job_b._job_push()
        cr_b.commit()
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            instance = env["moodle.instance"].browse(self.committed_id)
            self.assertEqual(instance.failure_streak, 1)
            probes = env["queue.job"].search(
                [("identity_key", "=", f"moodle:{self.committed_id}:probe")]
            )
            self.assertEqual(len(probes), 1)
            self.assertEqual(probes.eta, instance.backoff_until)

    def test_a_second_push_waits_for_the_first_without_burning_retries(self):
        cr_first, first = self.worker()
        cr_second, second = self.worker()
        self.assertTrue(first._moodle_try_lock("push"))  # the first push runs
        with self.assertRaises(RetryableJobError) as caught:
            second._job_push()
        self.assertTrue(caught.exception.ignore_retry)
        cr_second.rollback()
        cr_first.commit()  # the first push ends: its lock goes with it
        summary = second._job_push()
        cr_second.commit()
        self.assertIn("departments: 1 created", summary)


@tagged("post_install", "-at_install")
class TestMassUnenrolmentGuard(InstitutionCase):
    suffix = "U"

    def enrolled(self):
        """(course idnumber, user idnumber) pairs Moodle holds for our people."""
        users = {u["id"]: u.get("idnumber") for u in self.fm.users.values()}
        courses = {c["id"]: c.get("idnumber") for c in self.fm.courses.values()}
        return {
            (courses[e["courseid"]], users[e["userid"]])
            for e in self.fm.enrolments.values()
            if (users.get(e["userid"]) or "").startswith("oec_")
        }

    def test_a_mass_unenrolment_waits_for_a_managers_confirmation(self):
        self.instance._job_push()
        before = self.enrolled()
        self.assertEqual(len(before), 3)  # Ann in two subjects, Eve in one
        self.instance.write({"unenrol_limit_percent": 0, "unenrol_limit_count": 1})
        # The registrar narrows the departments served: everyone would go.
        self.instance.department_ids = self.env["op.department"].create(
            {"name": "Elsewhere U", "code": "EU"}
        )
        manager = self.env.ref("openeducat_moodle.group_moodle_manager").users[:1]
        with patch(f"{PUSH_CORE}.UNENROL_LIMIT_FLOOR", 0):
            summary = self.instance._job_push()
        self.assertEqual(self.enrolled(), before)
        self.assertIn("held", summary)
        self.assertEqual(self.instance.unenrol_held_count, 3)
        self.assertIn("3", self.instance.unenrol_held_reason)
        activity = self.instance.activity_ids.filtered(
            lambda a: a.user_id == manager and "unenrolments held" in a.summary
        )
        self.assertEqual(len(activity), 1)
        activities = self.instance.activity_ids
        # The next hourly push holds the same ones: no second activity.
        with patch(f"{PUSH_CORE}.UNENROL_LIMIT_FLOOR", 0):
            self.instance._job_push()
        self.assertEqual(self.instance.activity_ids, activities)
        # The dry run lists them.
        wizard = (
            self.env["moodle.sync.wizard"]
            .with_context(active_model="moodle.instance", active_ids=self.instance.ids)
            .create({"direction": "push"})
        )
        with patch(f"{PUSH_CORE}.UNENROL_LIMIT_FLOOR", 0):
            wizard.action_dry_run()
            Job.load(self.env, wizard.job_uuid).perform()
        held = wizard.line_ids.filtered(lambda line: line.action == "held")
        self.assertEqual(len(held), 3)
        self.assertIn("3 unenrolments held", wizard.summary)
        # Confirmed: they go, with the push the button enqueues.
        with trap_jobs() as trap, patch(f"{PUSH_CORE}.UNENROL_LIMIT_FLOOR", 0):
            self.instance.action_release_unenrolments()
            trap.assert_jobs_count(1, only=self.instance._job_push)
            trap.perform_enqueued_jobs()
        self.assertEqual(self.enrolled(), set())
        self.assertFalse(self.instance.unenrol_held_count)
        self.assertFalse(self.instance.unenrol_confirmed_keys)
        self.assertFalse(activities.exists())  # marked done
