"""The sync services by name: SyncSubjects, SyncEnrollment and the others,
each runnable alone (a job, the Sync Wizard, a dry run)."""

import datetime

from odoo.tests import tagged

from odoo.addons.openeducat_moodle.services.sync_services import (
    SERVICES,
    SyncEnrollment,
    SyncSubjects,
    run_service,
    services_of,
)
from odoo.addons.queue_job.job import Job
from odoo.addons.queue_job.tests.common import trap_jobs

from .common import InstitutionCase, MoodleCase, make_institution


def sync_calls(trap):
    """``{method name: [(args, identity key)]}`` of the trapped jobs."""
    calls = {}
    for call in trap.calls:
        calls.setdefault(call.method.__name__, []).append(
            (call.args, call.properties.get("identity_key"))
        )
    return calls


@tagged("post_install", "-at_install")
class TestServiceHooks(MoodleCase):
    """A save enqueues the service the product's tables name."""

    def test_the_eight_services(self):
        self.assertEqual(
            [s.title for s in SERVICES.values()],
            [
                "SyncSubjects",
                "SyncEnrollment",
                "SyncGrades",
                "SyncCompletion",
                "SyncAttendance",
                "SyncRetries",
                "SyncHealth",
                "SyncDrift",
            ],
        )
        for service in SERVICES.values():
            self.assertTrue(callable(getattr(self.instance, service.job)))
        self.assertEqual(services_of(["subjects"]), ["subjects"])
        self.assertEqual(services_of(["users", "enrolments"]), ["enrollment"])
        self.assertEqual(
            services_of(["programs", "batches"]), ["subjects", "enrollment"]
        )

    def test_job_functions_are_declared_on_root_moodle(self):
        # The full push keeps its job: jobs queued before an upgrade run.
        push = self.env.ref("openeducat_moodle.job_function_moodle_instance__job_push")
        for method in (
            "_job_sync_subjects",
            "_job_sync_enrollment",
            "_job_sync_retries",
        ):
            function = self.env.ref(
                f"openeducat_moodle.job_function_moodle_instance_{method}"
            )
            self.assertEqual(function.method, method)
            self.assertEqual(function.channel, "root.moodle")
            self.assertEqual(function.retry_pattern, push.retry_pattern)

    def test_subject_name_change_enqueues_sync_subjects(self):
        data = make_institution(self.env, "HV")
        subject = data["subjects"][0]
        with trap_jobs() as trap:
            subject.write({"name": "Linear Algebra"})
        trap.assert_jobs_count(1)
        trap.assert_enqueued_job(
            self.instance._job_sync_subjects,
            args=({"op.subject": [subject.id]},),
            properties={"channel": "root.moodle"},
        )
        ((args, key),) = sync_calls(trap)["_job_sync_subjects"]
        self.assertRegex(
            key, rf"^moodle:{self.instance.id}:sync_subjects:[0-9a-f]{{16}}$"
        )
        # The code too; the same seeds give the same key (a waiting job is
        # not enqueued twice).
        with trap_jobs() as trap:
            subject.write({"code": "LINALG_HV"})
        self.assertEqual(sync_calls(trap)["_job_sync_subjects"], [(args, key)])

    def test_enrolment_subject_change_enqueues_sync_enrollment(self):
        data = make_institution(self.env, "HW")
        enrolment = data["enrolments"][0]
        with trap_jobs() as trap:
            enrolment.write({"subject_ids": [(6, 0, data["subjects"][:1].ids)]})
        trap.assert_jobs_count(1)
        trap.assert_enqueued_job(
            self.instance._job_sync_enrollment,
            args=({"op.student.course": [enrolment.id]},),
            properties={"channel": "root.moodle"},
        )
        ((_args, key),) = sync_calls(trap)["_job_sync_enrollment"]
        self.assertTrue(key.startswith(f"moodle:{self.instance.id}:sync_enrollment:"))
        # A withdrawn enrolment deleted: SyncEnrollment unenrols it.
        with trap_jobs() as trap:
            enrolment.unlink()
        trap.assert_enqueued_job(
            self.instance._job_sync_enrollment,
            args=({"op.student.course": [enrolment.id]},),
        )
        self.assertNotIn("_job_push", sync_calls(trap))

    def test_new_subject_in_a_program_runs_enrollment_after_subjects(self):
        data = make_institution(self.env, "HX")
        new = self.env["op.subject"].create({"name": "Drama", "code": "DRAMA_HX"})
        with trap_jobs() as trap:
            data["program"].write({"subject_ids": [(4, new.id)]})
        trap.assert_jobs_count(2)
        jobs = {job.method_name: job for job in trap.enqueued_jobs}
        self.assertEqual(
            jobs["_job_sync_enrollment"].depends_on, {jobs["_job_sync_subjects"]}
        )
        self.assertFalse(jobs["_job_sync_subjects"].depends_on)

    def test_structure_and_people_saves(self):
        with trap_jobs() as trap:
            dept = self.env["op.department"].create({"name": "Law", "code": "LAW"})
            student = self.env["op.student"].create(
                {"name": "Kim Park", "first_name": "Kim", "last_name": "Park"}
            )
        calls = sync_calls(trap)
        self.assertEqual(
            [args for args, _key in calls["_job_sync_subjects"]],
            [({"op.department": [dept.id]},)],
        )
        self.assertEqual(
            [args for args, _key in calls["_job_sync_enrollment"]],
            [({"op.student": [student.id]},)],
        )
        self.assertNotIn("_job_push", calls)

    def test_a_persons_contact_data_on_the_partner_enqueues_sync_enrollment(self):
        """Every field the reader takes from the partner (PARTNER_FIELDS) is
        one the save hook watches: the account carries them."""
        student = self.env["op.student"].create(
            {"name": "Lea Roy", "first_name": "Lea", "last_name": "Roy"}
        )
        france = self.env.ref("base.fr")
        for values in (
            {"phone": "+33 1 23 45 67 89"},
            {"city": "Lyon"},
            {"country_id": france.id},
            {"street": "1 rue Neuve"},
        ):
            with trap_jobs() as trap:
                student.write(values)
            calls = sync_calls(trap)
            self.assertEqual(
                [args for args, _key in calls.get("_job_sync_enrollment", [])],
                [({"op.student": [student.id]},)],
                values,
            )
        with trap_jobs() as trap:
            student.write({"birth_date": "2001-02-03"})  # not on the account
        self.assertNotIn("_job_sync_enrollment", sync_calls(trap))

    def test_paused_instance_and_pulls_enqueue_nothing(self):
        no_export = self.env(context=dict(self.env.context, connector_no_export=True))
        with trap_jobs() as trap:
            make_institution(no_export, "HY")
        trap.assert_jobs_count(0)
        self.instance.health_state = "access"
        with trap_jobs() as trap:
            self.env["op.department"].create({"name": "Art", "code": "ART"})
        trap.assert_jobs_count(0)


class ServiceCase(InstitutionCase):
    def ann_roles_in_algebra(self):
        d = self.data
        course = self.fm.find_course(
            idnumber=f"oec_subj_{d['subjects'][0].id}_course_{d['program'].id}"
        )
        ann = self.fm.find_user(idnumber=f"oec_student_{d['ann'].id}")
        if not (course and ann):
            return set()
        return self.fm.enrolled_roles(course["id"], ann["id"])


@tagged("post_install", "-at_install")
class TestServicesRunAlone(ServiceCase):
    suffix = "V"

    def kinds_in_moodle(self):
        return (
            len(self.fm.categories),
            len(self.fm.courses),
            len(self.fm.users),
            len(self.fm.groups),
        )

    def mappings(self):
        return {
            (m.moodle_model, m.external_key): (m.state, m.sync_hash, m.moodle_id)
            for m in self.env["moodle.mapping"].search(
                [("instance_id", "=", self.instance.id)]
            )
        }

    def last_run(self):
        return self.env["moodle.sync.run"].search(
            [("instance_id", "=", self.instance.id)], order="id desc", limit=1
        )

    def test_sync_subjects_alone_then_sync_enrollment_alone(self):
        d = self.data
        categories, courses, users, groups = self.kinds_in_moodle()
        summary = self.instance._job_sync_subjects()
        self.assertTrue(summary.startswith("SyncSubjects: departments: 2 created"))
        self.assertEqual(
            self.kinds_in_moodle(), (categories + 3, courses + 3, users, groups)
        )
        self.assertEqual(self.fm.call_counts["core_user_create_users"], 0)
        self.assertEqual(self.fm.call_counts["enrol_manual_enrol_users"], 0)
        run = self.last_run()
        self.assertEqual((run.kind, run.state, run.created), ("push", "done", 6))
        self.assertTrue(run.message.startswith("SyncSubjects:"))

        summary = self.instance._job_sync_enrollment()
        self.assertTrue(summary.startswith("SyncEnrollment: users: 2 created"))
        self.assertEqual(
            self.kinds_in_moodle(), (categories + 3, courses + 3, users + 2, groups + 3)
        )
        alg = d["subjects"][0]
        course = self.fm.find_course(
            idnumber=f"oec_subj_{alg.id}_course_{d['program'].id}"
        )
        ann = self.fm.find_user(idnumber=f"oec_student_{d['ann'].id}")
        eve = self.fm.find_user(idnumber=f"oec_faculty_{d['teacher'].id}")
        self.assertEqual(self.fm.enrolled_roles(course["id"], ann["id"]), {5})
        self.assertEqual(self.fm.enrolled_roles(course["id"], eve["id"]), {3})
        self.assertTrue(self.last_run().message.startswith("SyncEnrollment:"))
        # Nothing changed: neither writes anything again.
        with self.no_moodle_write():
            self.instance._job_sync_subjects()
            self.instance._job_sync_enrollment()

    def test_sync_enrollment_before_subjects_waits_for_the_courses(self):
        summary = self.instance._job_sync_enrollment()
        self.assertEqual(self.fm.call_counts["core_course_create_courses"], 0)
        self.assertEqual(self.fm.call_counts["core_course_create_categories"], 0)
        self.assertEqual(self.fm.call_counts["enrol_manual_enrol_users"], 0)
        self.assertIn("enrolments: 0 created", summary)
        self.instance._job_sync_subjects()
        self.instance._job_sync_enrollment()
        self.assertEqual(self.ann_roles_in_algebra(), {5})

    def test_hook_job_runs_its_service(self):
        d = self.data
        self.instance._job_push()
        alg = d["subjects"][0]
        with trap_jobs() as trap:
            # (The institution's records carry connector_no_export.)
            alg.with_env(self.env).write({"name": "Linear Algebra"})
        trap.assert_jobs_count(1, only=self.instance._job_sync_subjects)
        self.fm.reset_calls()
        trap.perform_enqueued_jobs()
        course = self.fm.find_course(
            idnumber=f"oec_subj_{alg.id}_course_{d['program'].id}"
        )
        self.assertEqual(course["fullname"], "Linear Algebra (Program V)")
        self.assertEqual(self.fm.write_call_count(), 1)
        self.assertTrue(self.last_run().message.startswith("SyncSubjects:"))

    def test_service_classes_run_with_records_and_dry_run(self):
        d = self.data
        client = self.instance._get_client()
        before = self.mappings()
        plan = SyncSubjects(self.instance, client, dry_run=True).run()
        self.assertEqual(self.fm.write_call_count(), 0)
        self.assertEqual(self.mappings(), before)
        self.assertEqual(
            (plan.service, plan.dry_run, plan.created), ("SyncSubjects", True, 6)
        )
        self.assertEqual(
            {line["kind"] for line in plan.lines},
            {"departments", "programs", "subjects"},
        )
        result = SyncSubjects(self.instance, client).run(d["subjects"][0])
        self.assertEqual((result.created, result.failed, result.errors), (6, 0, []))
        # SyncEnrollment about Ann only: her account and enrolments, no one
        # else's.
        result = SyncEnrollment(self.instance, client).run(d["ann"])
        self.assertEqual(result.detail.phases["users"].created, 1)
        self.assertIsNone(self.fm.find_user(idnumber=f"oec_faculty_{d['teacher'].id}"))
        self.assertEqual(result.detail.phases["enrolments"].created, 2)

    def test_every_service_has_a_dry_run_that_writes_nothing(self):
        self.instance._job_push()
        self.instance._job_pull_grades()
        alg = self.data["subjects"][0]
        key = f"oec_subj_{alg.id}_course_{self.data['program'].id}"
        self.fm.courses[self.fm.find_course(idnumber=key)["id"]]["fullname"] = "Edited"
        alg.with_context(connector_no_export=True).name = "Algebra II"
        client = self.instance._get_client()
        before = self.mappings()
        attendance = self.env["op.attendance.line"].search_count([])
        exams = self.env["op.exam"].search_count([])
        self.fm.reset_calls()
        results = {
            name: run_service(name, self.instance, client, dry_run=True)
            for name in SERVICES
        }
        self.assertEqual(self.fm.write_call_count(), 0)
        self.assertEqual(self.mappings(), before)
        self.assertEqual(self.env["op.attendance.line"].search_count([]), attendance)
        self.assertEqual(self.env["op.exam"].search_count([]), exams)
        self.assertTrue(all(r.dry_run for r in results.values()))
        self.assertEqual(results["subjects"].updated, 1)
        self.assertEqual(
            [(line["key"], line["action"]) for line in results["drift"].lines],
            [(key, "update")],
        )
        self.assertIn("Moodle", results["health"].summary)
        self.assertEqual(results["retries"].summary, "nothing to retry")

    def test_sync_retries_alone(self):
        bio = self.data["subjects"][1]
        squatter = self.fm.add_course("Squatter", f"BIO{self.suffix}_PRG{self.suffix}")
        self.instance._job_push()
        key = f"oec_subj_{bio.id}_course_{self.data['program'].id}"
        mapping = self.env["moodle.mapping"].search([("external_key", "=", key)])
        self.assertEqual(mapping.state, "error")
        self.assertEqual(
            self.instance._job_sync_retries(), "SyncRetries: nothing to retry"
        )
        self.fm.courses[squatter]["shortname"] = "OLD_SQUATTER"
        mapping.next_retry_date = mapping.next_retry_date - datetime.timedelta(hours=1)
        plan = run_service("retries", self.instance, self.instance._get_client(), True)
        self.assertEqual([line["action"] for line in plan.lines], ["create"])
        self.assertEqual(mapping.state, "error")
        summary = self.instance._job_sync_retries()
        self.assertTrue(summary.startswith("SyncRetries: subjects: 1 created"))
        self.assertEqual(mapping.state, "synced")
        # By hand, from the Sync Wizard: a job on root.moodle.
        with trap_jobs() as trap:
            self.instance._enqueue_services(["retries"])
        trap.assert_enqueued_job(
            self.instance._job_sync_retries,
            properties={
                "channel": "root.moodle",
                "identity_key": f"moodle:{self.instance.id}:sync_retries",
            },
        )

    def test_transient_failure_requeues_the_same_service(self):
        self.fm.inject("http503", times=1, function="core_course_create_courses")
        with trap_jobs() as trap:
            summary = self.instance._job_sync_subjects()
        self.assertIn("unreachable", summary)
        trap.assert_jobs_count(0, only=self.instance._job_push)
        trap.assert_jobs_count(1, only=self.instance._job_sync_subjects)
        jobs = {job.method_name: job for job in trap.enqueued_jobs}
        self.assertEqual(
            jobs["_job_sync_subjects"].eta,
            self.instance.backoff_until + datetime.timedelta(minutes=1),
        )
        # What came before the failure is kept and logged.
        run = self.last_run()
        self.assertEqual((run.kind, run.state, run.created), ("push", "failed", 3))

    def test_old_job_push_still_runs(self):
        """``_job_push`` keeps its signature and body: a full push, and a job
        queued by a hook before the upgrade (phases and seeds)."""
        d = self.data
        summary = self.instance._job_push()
        self.assertTrue(summary.startswith("departments: 2 created"))
        self.assertEqual(self.last_run().kind, "push")
        alg = d["subjects"][0]
        alg.with_context(connector_no_export=True).name = "Algebra Old"
        job = self.instance.with_delay()._job_push(
            ["subjects"], {"op.subject": [alg.id]}
        )
        self.fm.reset_calls()
        Job.load(self.env, job.uuid).perform()
        course = self.fm.find_course(
            idnumber=f"oec_subj_{alg.id}_course_{d['program'].id}"
        )
        self.assertEqual(course["fullname"], "Algebra Old (Program V)")
        self.assertEqual(self.fm.write_call_count(), 1)

    def test_cron_full_push_is_one_job_of_both_services(self):
        with trap_jobs() as trap:
            self.env["moodle.instance"]._cron_full_push_sync()
        trap.assert_enqueued_job(self.instance._job_push, args=(None, None))
        trap.perform_enqueued_jobs()
        run = self.last_run()
        self.assertIn("subjects:", run.message)
        self.assertIn("enrolments:", run.message)


@tagged("post_install", "-at_install")
class TestWizardServices(ServiceCase):
    suffix = "X"

    def wizard(self, **values):
        ctx = {"active_model": "moodle.instance", "active_ids": self.instance.ids}
        return self.env["moodle.sync.wizard"].with_context(**ctx).create(values)

    def only(self, *names):
        values = {f"service_{name}": name in names for name in SERVICES}
        return self.wizard(direction="services", **values)

    def dry_run(self, wizard):
        wizard.action_dry_run()
        Job.load(self.env, wizard.job_uuid).perform()
        self.assertEqual(wizard.state, "planned")

    def test_dry_run_of_sync_subjects_alone(self):
        wizard = self.only("subjects")
        self.dry_run(wizard)
        self.assertEqual(self.fm.write_call_count(), 0)
        self.assertFalse(
            self.env["moodle.mapping"].search_count(
                [("instance_id", "=", self.instance.id)]
            )
        )
        self.assertEqual(
            {line.kind for line in wizard.line_ids},
            {"departments", "programs", "subjects"},
        )
        self.assertIn("SyncSubjects / subjects: 3 to create", wizard.summary)

    def test_dry_run_of_every_service(self):
        self.instance._job_push()
        self.fm.reset_calls()
        wizard = self.only(*SERVICES)
        self.dry_run(wizard)
        self.assertEqual(self.fm.write_call_count(), 0)
        for title in ("SyncSubjects /", "SyncEnrollment /", "SyncRetries:"):
            self.assertIn(title, wizard.summary)
        for title in ("SyncCompletion:", "SyncHealth:", "SyncDrift:"):
            self.assertIn(title, wizard.summary)
        self.assertIn(" / grades:", wizard.summary)
        self.assertIn(" / attendance:", wizard.summary)

    def test_no_service_chosen_is_refused(self):
        wizard = self.only()
        with self.assertRaisesRegex(Exception, "at least one sync service"):
            wizard.action_dry_run()

    def test_run_enqueues_the_chosen_services(self):
        wizard = self.only("subjects", "enrollment", "grades", "drift")
        wizard.course_ids = self.data["program"]
        seeds = {"op.course": [self.data["program"].id]}
        with trap_jobs() as trap:
            wizard.action_run()
        trap.assert_enqueued_job(self.instance._job_sync_subjects, args=(seeds,))
        trap.assert_enqueued_job(self.instance._job_sync_enrollment, args=(seeds,))
        trap.assert_enqueued_job(self.instance._job_pull_grades)
        trap.assert_enqueued_job(self.instance._job_drift_check)
        trap.assert_jobs_count(4)
        self.assertEqual(wizard.state, "running")
        trap.perform_enqueued_jobs()
        self.assertEqual(self.ann_roles_in_algebra(), {5})

    def test_run_with_departments_passes_them_on(self):
        wizard = self.only("subjects")
        wizard.department_ids = self.data["dept"]
        with trap_jobs() as trap:
            wizard.action_run()
        trap.assert_enqueued_job(
            self.instance._job_sync_subjects,
            args=(None,),
            kwargs={"department_ids": self.data["dept"].ids},
        )
