"""Moodle accounts in the Odoo layer: the instance's adoption policy, review in
the Initial Import wizard, one account per email address, Moodle's language
codes."""

from odoo.tests import Form, tagged

from odoo.addons.openeducat_moodle.services.push import SyncPush, _moodle_lang
from odoo.addons.queue_job.job import Job
from odoo.addons.queue_job.tests.common import trap_jobs

from .common import InstitutionCase


@tagged("post_install", "-at_install")
class TestAccounts(InstitutionCase):
    suffix = "A"

    def mapping(self, record):
        key = f"oec_{record._name.split('.')[-1]}_{record.id}"
        return self.env["moodle.mapping"].search(
            [
                ("instance_id", "=", self.instance.id),
                ("moodle_model", "=", "user"),
                ("external_key", "=", key),
            ]
        )

    def student(self, first, last, email, **values):
        return self.no_export_env["op.student"].create(
            {
                "name": f"{first} {last}",
                "first_name": first,
                "last_name": last,
                "email": email,
                **values,
            }
        )

    def enrol(self, student):
        d = self.data
        self.no_export_env["op.student.course"].create(
            {
                "student_id": student.id,
                "course_id": d["program"].id,
                "batch_id": d["batch"].id,
            }
        )

    def test_the_safe_policy_is_the_default_and_on_the_form(self):
        instance = self.env["moodle.instance"].create(
            {"name": "Other", "base_url": "https://other.test"}
        )
        self.assertEqual(instance.adopt_existing_accounts, "review")
        self.assertTrue(instance.adopt_keep_auth)
        with Form(instance) as form:
            form.adopt_existing_accounts = "never"
            form.adopt_keep_auth = False
        settings = SyncPush(instance, None).settings()
        self.assertEqual(
            (settings.adopt_accounts, settings.adopt_keep_auth), ("never", False)
        )

    def test_a_teacher_s_account_is_not_taken_by_a_student_s_email(self):
        """A student who sets a teacher's address in OpenEduCat gets nothing."""
        d = self.data
        uid = self.fm.add_user("mrs.qi", "Mrs", "Qi", "boss@uni.test", auth="oauth2")
        d["ann"].with_context(connector_no_export=True).email = "Boss@Uni.Test"

        self.instance._job_push()

        self.assertEqual(self.fm.users[uid]["idnumber"], "")
        self.assertEqual(self.fm.users[uid]["firstname"], "Mrs")
        self.assertEqual(d["ann"].moodle_sync_state, "blocked")
        self.assertIn(
            f"Moodle account {uid} (mrs.qi, by email)", d["ann"].moodle_sync_error
        )
        self.assertEqual(self.mapping(d["ann"]).retry_count, 0)

    def test_two_people_one_email_and_an_existing_account(self):
        """Before: both mapped to the one account, a unique violation, and the
        hourly push failed whole, every hour."""
        d = self.data
        uid = self.fm.add_user("kim.old", "Kim", "Old", "kim@uni.test")
        kim = self.student("Kim", "Ro", "kim@uni.test")
        kim2 = self.student("Kim", "Ra", "KIM@uni.test")
        for student in (kim, kim2):
            self.enrol(student)

        summary = self.instance._job_push()

        self.assertIn("users:", summary)
        ann = self.fm.find_user(idnumber=f"oec_student_{d['ann'].id}")
        self.assertTrue(ann, "the rest did not go through")
        self.assertEqual(self.fm.users[uid]["idnumber"], "")
        self.assertEqual(kim.moodle_sync_state, "blocked")
        self.assertIn(
            f"Moodle account {uid} (kim.old, by email)", kim.moodle_sync_error
        )
        self.assertEqual(kim2.moodle_sync_state, "blocked")
        self.assertIn(
            f"already used by Kim Ro (oec_student_{kim.id})", kim2.moodle_sync_error
        )
        with self.no_moodle_write():
            self.instance._job_push()
        self.assertEqual(self.mapping(kim2).retry_count, 0)

    def test_two_people_one_email_without_an_account(self):
        """Before: the second failed on "Invalid parameter value detected",
        and was tried again and again."""
        kim = self.student("Kim", "Ro", "kim@uni.test")
        kim2 = self.student("Kim", "Ra", "Kim@Uni.Test")
        for student in (kim, kim2):
            self.enrol(student)

        self.instance._job_push()

        self.assertEqual(kim.moodle_sync_state, "synced")
        self.assertEqual(kim2.moodle_sync_state, "blocked")
        self.assertIn("Moodle allows one account per email", kim2.moodle_sync_error)
        due = self.env["moodle.mapping"].search(
            [("instance_id", "=", self.instance.id), ("state", "=", "error")]
        )
        self.assertFalse(due)

    def test_review_in_the_initial_import_then_the_push_adopts(self):
        d = self.data
        uid = self.fm.add_user("ann.legacy", "A", "L", d["ann"].email, auth="ldap")
        self.instance._job_push()
        self.assertEqual(d["ann"].moodle_sync_state, "blocked")
        self.fm.reset_calls()

        wizard = self.env["moodle.import.wizard"].create(
            {"instance_id": self.instance.id}
        )
        wizard.action_import()
        Job.load(self.env, wizard.job_uuid).perform()
        line = wizard.candidate_ids
        self.assertEqual(
            (line.key, line.moodle_id, line.moodle_username, line.match),
            (f"oec_student_{d['ann'].id}", uid, "ann.legacy", "email"),
        )
        self.assertNotIn(line, wizard.line_ids)  # not a gap
        self.assertEqual(self.fm.write_call_count(), 0)

        line.decision = "adopt"
        with trap_jobs() as trap:
            wizard.action_apply_decisions()
        trap.assert_enqueued_job(
            self.instance._job_push,
            args=(["users", "enrolments"], {"op.student": [d["ann"].id]}),
        )
        self.assertEqual(self.mapping(d["ann"]).extra_data["adopt"]["moodle_id"], uid)
        trap.perform_enqueued_jobs()

        user = self.fm.users[uid]
        self.assertEqual(
            (user["idnumber"], user["auth"], user["username"]),
            (f"oec_student_{d['ann'].id}", "ldap", "ann.legacy"),
        )
        d["ann"].invalidate_recordset()
        self.assertEqual(d["ann"].moodle_sync_state, "synced")

    def test_someone_else_stays_blocked(self):
        d = self.data
        uid = self.fm.add_user("ann.other", "A", "L", d["ann"].email)
        wizard = self.env["moodle.import.wizard"].create(
            {"instance_id": self.instance.id}
        )
        wizard.action_import()
        Job.load(self.env, wizard.job_uuid).perform()
        wizard.candidate_ids.decision = "separate"
        with trap_jobs() as trap:
            wizard.action_apply_decisions()
            trap.perform_enqueued_jobs()
        self.assertEqual(self.fm.users[uid]["idnumber"], "")
        d["ann"].invalidate_recordset()
        self.assertIn("someone else", d["ann"].moodle_sync_error)

    def test_a_student_who_teaches_has_one_account(self):
        """One partner, a student and a faculty member: one Moodle account
        with both roles (the student's idnumber); the mapping table takes it."""
        d = self.data
        teacher = self.no_export_env["op.faculty"].create(
            {
                "partner_id": d["ann"].partner_id.id,
                "first_name": "Ann",
                "last_name": "Lee",
                "birth_date": "1990-01-01",
                "gender": "female",
                "faculty_subject_ids": [(6, 0, d["subjects"][:1].ids)],
                "main_department_id": d["dept"].id,
            }
        )

        self.instance._job_push()

        ann = self.fm.find_user(idnumber=f"oec_student_{d['ann'].id}")
        course = self.fm.find_course(
            idnumber=f"oec_subj_{d['subjects'][0].id}_course_{d['program'].id}"
        )
        self.assertEqual(self.fm.enrolled_roles(course["id"], ann["id"]), {3, 5})
        self.assertEqual(teacher.moodle_sync_state, "synced")
        self.assertEqual(
            self.mapping(teacher).extra_data["account"], f"oec_student_{d['ann'].id}"
        )
        with self.no_moodle_write():
            self.instance._job_push()

    def test_languages_are_moodle_s_and_a_missing_one_blocks_nothing(self):
        self.assertEqual(
            [_moodle_lang(c) for c in ("zh_CN", "pt_BR", "fr_FR", "es_MX", "en_US")],
            ["zh_cn", "pt_br", "fr", "es_mx", None],
        )
        d = self.data
        for code in ("pt_BR", "zh_CN"):
            self.env["res.lang"]._activate_lang(code)
        kim = self.student("Kim", "Ro", "kim@uni.test", lang="zh_CN")
        self.enrol(kim)
        d["ann"].partner_id.with_context(connector_no_export=True).lang = "pt_BR"

        self.instance._job_push()

        self.assertEqual(
            self.fm.find_user(idnumber=f"oec_student_{d['ann'].id}")["lang"], "pt_br"
        )
        # The simulated site has no Chinese pack: the account has the default.
        moodle_kim = self.fm.find_user(idnumber=f"oec_student_{kim.id}")
        self.assertEqual(moodle_kim["lang"], "en")
        self.assertEqual(kim.moodle_sync_state, "synced")
        self.assertIn(
            "language zh_cn is not installed", self.mapping(kim).extra_data["note"]
        )
