import base64

from odoo.tests import Form, tagged

from odoo.addons.queue_job.job import Job
from odoo.addons.queue_job.tests.common import trap_jobs

from .common import InstitutionCase


@tagged("post_install", "-at_install")
class TestWizards(InstitutionCase):
    suffix = "W"

    def wizard(self, **values):
        ctx = {"active_model": "moodle.instance", "active_ids": self.instance.ids}
        return self.env["moodle.sync.wizard"].with_context(**ctx).create(values)

    def dry_run(self, wizard):
        """What the Dry Run button does: a job, so that no browser request
        waits on Moodle; then the job, as the runner would run it."""
        self.fm.reset_calls()
        wizard.action_dry_run()
        self.assertEqual(wizard.state, "planning")
        self.assertEqual(self.fm.calls, [], "Moodle called inside the request")
        self.assertIn("Moodle dry run", wizard.progress)
        self.assertIn("Pending", wizard.progress)
        Job.load(self.env, wizard.job_uuid).perform()
        self.assertEqual(wizard.state, "planned")

    def counts(self):
        return (
            self.env["moodle.mapping"].search_count([]),
            self.env["op.exam"].search_count([]),
            self.env["op.exam.attendees"].search_count([]),
            self.fm.write_call_count(),
        )

    def test_dry_run_plans_everything_and_writes_nothing(self):
        before = self.counts()
        wizard = self.wizard(direction="all")
        self.dry_run(wizard)
        self.assertEqual(self.counts(), before)
        self.assertEqual(wizard.state, "planned")
        plan = {(line.kind, line.action) for line in wizard.line_ids}
        self.assertIn(("departments", "create"), plan)
        self.assertIn(("subjects", "create"), plan)
        self.assertIn(("enrolments", "create"), plan)
        blocked = wizard.line_ids.filtered(lambda line: line.action == "blocked")
        self.assertIn(f"oec_student_{self.data['nomail'].id}", blocked.mapped("key"))
        self.assertIn("email", blocked.filtered(lambda l: l.kind == "users").reason)
        subjects = wizard.line_ids.filtered(lambda line: line.kind == "subjects")
        self.assertEqual(len(subjects), 3)
        self.assertIn("subjects: 3 to create", wizard.summary)

    def test_dry_run_after_a_change_shows_update_and_unchanged(self):
        self.instance._job_push()
        alg = self.data["subjects"][0]
        alg.with_context(connector_no_export=True).name = "Algebra II"
        self.fm.reset_calls()
        wizard = self.wizard(direction="push", subject_ids=[(6, 0, alg.ids)])
        self.dry_run(wizard)
        self.assertEqual(self.fm.write_call_count(), 0)
        self.assertEqual(
            [(line.kind, line.action) for line in wizard.line_ids],
            [("subjects", "update"), ("enrolments", "blocked")],
        )
        # The only blocked record is the student Moodle cannot take.
        self.assertIn(f"oec_student_{self.data['nomail'].id}@", wizard.line_ids[1].key)
        self.assertIn("2 unchanged", wizard.summary)

    def test_grade_dry_run_reads_but_writes_nothing(self):
        self.instance._job_push()
        d = self.data
        course = self.fm.find_course(
            idnumber=f"oec_subj_{d['subjects'][0].id}_course_{d['program'].id}"
        )
        ann = self.fm.find_user(idnumber=f"oec_student_{d['ann'].id}")
        item = self.fm.add_manual_item(course["id"], "Oral", grademax=20)
        self.fm.set_manual_grade(item, ann["id"], 15)
        self.fm.reset_calls()
        before = self.counts()
        wizard = self.wizard(direction="pull")
        self.dry_run(wizard)
        self.assertEqual(self.counts(), before)
        self.assertEqual(
            [(line.action, line.label) for line in wizard.line_ids],
            [("create", "75 / 100")],
        )

    def test_run_enqueues_jobs_and_shows_progress(self):
        wizard = self.wizard(direction="all", do_enrolments=False)
        with trap_jobs() as trap:
            wizard.action_run()
        trap.assert_enqueued_job(
            self.instance._job_push,
            args=(["departments", "programs", "subjects", "users", "batches"], None),
        )
        trap.assert_enqueued_job(self.instance._job_pull_grades)
        self.assertEqual(wizard.state, "running")

    def test_run_progress_counts_the_jobs_as_they_end(self):
        wizard = self.wizard(direction="pull")
        wizard.action_run()  # real queue.job rows this time
        wizard.invalidate_recordset(["progress"])
        self.assertIn("0 of 1 jobs done", wizard.progress)
        job = self.env["queue.job"].search(
            [
                ("model_name", "=", "moodle.instance"),
                ("method_name", "=", "_job_pull_grades"),
            ]
        )
        job.write({"state": "done"})
        wizard.invalidate_recordset(["progress"])
        self.assertIn("1 of 1 jobs done", wizard.progress)

    def test_wizard_form_opens(self):
        form = Form(
            self.env["moodle.sync.wizard"].with_context(
                active_model="moodle.instance", active_ids=self.instance.ids
            )
        )
        self.assertEqual(form.instance_ids[:], self.instance)


@tagged("post_install", "-at_install")
class TestInitialImport(InstitutionCase):
    suffix = "I"

    def mappings(self):
        return {
            (m.moodle_model, m.external_key): (m.moodle_id, m.sync_hash, m.res_id)
            for m in self.env["moodle.mapping"].search(
                [("instance_id", "=", self.instance.id), ("state", "=", "synced")]
            )
        }

    def test_mapping_rebuild_after_the_table_is_emptied(self):
        self.instance._job_push()
        before = self.mappings()
        self.env["moodle.mapping"].search(
            [("instance_id", "=", self.instance.id)]
        ).unlink()
        # in one of our program categories: the import reads those, never
        # the whole site (issue 15)
        program = self.fm.find_category(
            idnumber=f"oec_course_{self.data['program'].id}"
        )["id"]
        ghost = self.fm.add_course(
            "Ghost", "GHOST", categoryid=program, idnumber="oec_subj_999999_course_1"
        )
        self.fm.reset_calls()
        wizard = self.env["moodle.import.wizard"].create(
            {"instance_id": self.instance.id}
        )
        wizard.action_import()
        # A job, not the browser's request, reads Moodle.
        self.assertEqual(self.fm.calls, [])
        self.assertEqual(wizard.state, "running")
        self.assertIn("Moodle initial import", wizard.progress)
        Job.load(self.env, wizard.job_uuid).perform()
        self.assertEqual(wizard.state, "done")
        self.assertEqual(self.fm.write_call_count(), 0)
        self.assertEqual(self.mappings(), before)
        # The gap report, on screen and as CSV.
        sides = {(line.side, line.key) for line in wizard.line_ids}
        self.assertIn(("moodle", "oec_subj_999999_course_1"), sides)
        self.assertIn(("openeducat", f"oec_student_{self.data['nomail'].id}"), sides)
        csv_text = base64.b64decode(wizard.csv_file).decode()
        self.assertTrue(
            csv_text.startswith("side,kind,key,label,res_model,res_id,moodle_id")
        )
        self.assertIn(
            f"moodle,course,oec_subj_999999_course_1,Ghost,,,{ghost},", csv_text
        )
        # A push after the rebuild duplicates nothing and writes nothing.
        sizes = (len(self.fm.courses), len(self.fm.users), len(self.fm.groups))
        self.instance._job_push()
        self.assertEqual(
            (len(self.fm.courses), len(self.fm.users), len(self.fm.groups)), sizes
        )
        self.assertEqual(self.fm.write_call_count(), 0)


@tagged("post_install", "-at_install")
class TestDrift(InstitutionCase):
    suffix = "D"

    def test_drift_is_pushed_back_and_deletions_recreated(self):
        d = self.data
        self.instance._job_push()
        key = f"oec_subj_{d['subjects'][0].id}_course_{d['program'].id}"
        course = self.fm.find_course(idnumber=key)
        self.fm.courses[course["id"]]["fullname"] = "Renamed in Moodle"
        group = next(
            g for g in self.fm.groups.values() if g["courseid"] == course["id"]
        )
        self.fm.groups.pop(group["id"])
        self.fm.reset_calls()
        with trap_jobs() as trap:
            summary = self.instance._job_drift_check()
            self.assertEqual(self.fm.write_call_count(), 0)
            self.assertIn("1 changed in Moodle, 1 deleted in Moodle", summary)
            trap.assert_jobs_count(1, only=self.instance._job_push)
            trap.perform_enqueued_jobs()
        self.assertEqual(
            self.fm.find_course(idnumber=key)["fullname"], "Algebra D (Program D)"
        )
        groups = [g for g in self.fm.groups.values() if g["courseid"] == course["id"]]
        self.assertEqual(len(groups), 1)
        ann = self.fm.find_user(idnumber=f"oec_student_{d['ann'].id}")
        self.assertEqual(self.fm.group_members(groups[0]["id"]), {ann["id"]})
        run = self.env["moodle.sync.run"].search(
            [("instance_id", "=", self.instance.id), ("kind", "=", "drift")]
        )
        self.assertEqual((run.updated, run.failed), (1, 1))
