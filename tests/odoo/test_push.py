import datetime

from freezegun import freeze_time
from psycopg2 import IntegrityError

from odoo.tests import tagged
from odoo.tools import mute_logger

from odoo.addons.queue_job.tests.common import trap_jobs

from .common import InstitutionCase, MoodleCase, make_institution


@tagged("post_install", "-at_install")
class TestPushHooks(MoodleCase):
    def _push_calls(self, trap):
        """The sync services' push jobs the hooks enqueued (SyncSubjects,
        SyncEnrollment; see test_services.py)."""
        return [
            (call.args, call.properties.get("identity_key"))
            for call in trap.calls
            if call.method.__name__.startswith("_job_sync_")
        ]

    def test_new_student_enqueues_a_users_push_with_identity_key(self):
        with trap_jobs() as trap:
            student = self.env["op.student"].create(
                {"name": "Kim Park", "first_name": "Kim", "last_name": "Park"}
            )
        trap.assert_enqueued_job(
            self.instance._job_sync_enrollment,
            args=({"op.student": [student.id]},),
            properties={"channel": "root.moodle"},
        )
        ((_args, key),) = [
            c for c in self._push_calls(trap) if c[0][0] == {"op.student": [student.id]}
        ]
        self.assertTrue(key.startswith(f"moodle:{self.instance.id}:sync_enrollment:"))

    def test_identity_key_is_deterministic(self):
        student = self.env["op.student"].create(
            {"name": "Kim Park", "first_name": "Kim", "last_name": "Park"}
        )
        keys = []
        for _ in range(2):
            with trap_jobs() as trap:
                student.write({"email": f"kim{len(keys)}@uni.test"})
            keys.append(self._push_calls(trap)[0][1])
        self.assertEqual(keys[0], keys[1])

    def test_subjects_added_to_a_program_enqueue_courses_groups_enrolments(self):
        data = make_institution(self.env)
        new = self.env["op.subject"].create({"name": "Drama", "code": "DRAMA_T"})
        with trap_jobs() as trap:
            data["program"].write({"subject_ids": [(4, new.id)]})
        seeds = {"op.course": [data["program"].id]}
        trap.assert_enqueued_job(self.instance._job_sync_subjects, args=(seeds,))
        trap.assert_enqueued_job(self.instance._job_sync_enrollment, args=(seeds,))

    def test_subject_rename_and_faculty_subjects(self):
        data = make_institution(self.env)
        with trap_jobs() as trap:
            data["subjects"][0].write({"name": "Linear Algebra"})
            data["teacher"].write(
                {"faculty_subject_ids": [(4, data["subjects"][1].id)]}
            )
        trap.assert_enqueued_job(
            self.instance._job_sync_subjects,
            args=({"op.subject": [data["subjects"][0].id]},),
        )
        trap.assert_enqueued_job(
            self.instance._job_sync_enrollment,
            args=({"op.faculty": [data["teacher"].id]},),
        )

    def test_unrelated_field_enqueues_nothing(self):
        data = make_institution(self.env)
        with trap_jobs() as trap:
            data["ann"].write({"blood_group": "A+"})
        trap.assert_jobs_count(0)

    def test_connector_no_export_suppresses_every_hook(self):
        env = self.env(context=dict(self.env.context, connector_no_export=True))
        with trap_jobs() as trap:
            data = make_institution(env, "N")
            data["subjects"][0].write({"name": "Renamed"})
            data["enrolments"][0].unlink()
        trap.assert_jobs_count(0)

    def test_one_job_per_active_instance(self):
        second = self.env["moodle.instance"].create(
            {"name": "Second", "base_url": "https://moodle2.test", "token": "t2"}
        )
        self.env["moodle.instance"].create(
            {
                "name": "Old",
                "base_url": "https://old.test",
                "token": "t3",
                "active": False,
            }
        )
        with trap_jobs() as trap:
            self.env["op.department"].create({"name": "Law", "code": "LAW"})
        instances = {call.method.__self__ for call in trap.calls}
        self.assertEqual(instances, {self.instance, second})

    def test_cron_enqueues_a_full_push_per_instance(self):
        with trap_jobs() as trap:
            self.env["moodle.instance"]._cron_full_push_sync()
        trap.assert_enqueued_job(
            self.instance._job_push,
            args=(None, None),
            properties={"channel": "root.moodle"},
        )

    def test_paused_instance_gets_no_job(self):
        self.instance.health_state = "access"
        with trap_jobs() as trap:
            self.env["moodle.instance"]._cron_full_push_sync()
        trap.assert_jobs_count(0)


@tagged("post_install", "-at_install")
class TestPushJobs(InstitutionCase):
    suffix = "T"

    def mapping(self, kind, key):
        return self.env["moodle.mapping"].search(
            [
                ("instance_id", "=", self.instance.id),
                ("moodle_model", "=", kind),
                ("external_key", "=", key),
            ]
        )

    def test_full_push_end_to_end(self):
        d = self.data
        summary = self.instance._job_push()
        fm = self.fm
        prog_cat = fm.find_category(idnumber=f"oec_course_{d['program'].id}")
        dept_cat = fm.find_category(idnumber=f"oec_dept_{d['dept'].id}")
        root_cat = fm.find_category(idnumber=f"oec_dept_{d['dept_root'].id}")
        self.assertEqual(prog_cat["parent"], dept_cat["id"])
        self.assertEqual(dept_cat["parent"], root_cat["id"])
        alg, bio, che = d["subjects"]
        course = fm.find_course(idnumber=f"oec_subj_{alg.id}_course_{d['program'].id}")
        self.assertEqual(course["shortname"], "ALGT_PRGT")
        self.assertEqual(course["fullname"], "Algebra T (Program T)")
        self.assertEqual(course["categoryid"], prog_cat["id"])
        ann = fm.find_user(idnumber=f"oec_student_{d['ann'].id}")
        eve = fm.find_user(idnumber=f"oec_faculty_{d['teacher'].id}")
        self.assertEqual(ann["email"], "ann.t@uni.test")
        self.assertIsNone(fm.find_user(idnumber=f"oec_student_{d['nomail'].id}"))
        # Ann chose two of the three subjects; Eve teaches Algebra.
        courses = {
            s: fm.find_course(idnumber=f"oec_subj_{s.id}_course_{d['program'].id}")[
                "id"
            ]
            for s in (alg, bio, che)
        }
        self.assertEqual(fm.enrolled_roles(courses[alg], ann["id"]), {5})
        self.assertEqual(fm.enrolled_roles(courses[bio], ann["id"]), {5})
        self.assertEqual(fm.enrolled_roles(courses[che], ann["id"]), set())
        self.assertEqual(fm.enrolled_roles(courses[alg], eve["id"]), {3})
        group = [
            g
            for g in fm.groups.values()
            if g["courseid"] == courses[alg]
            and g["idnumber"] == f"oec_batch_{d['batch'].id}"
        ]
        self.assertEqual(fm.group_members(group[0]["id"]), {ann["id"]})
        # What Odoo stored.
        m = self.mapping("course", f"oec_subj_{alg.id}_course_{d['program'].id}")
        self.assertEqual(
            (m.moodle_id, m.state, m.res_model, m.res_id),
            (courses[alg], "synced", "op.subject", alg.id),
        )
        self.assertEqual(len(m.sync_hash), 64)
        blocked = self.mapping("user", f"oec_student_{d['nomail'].id}")
        self.assertEqual(blocked.state, "blocked")
        self.assertIn("email", blocked.last_error)
        self.assertTrue(self.instance.last_sync_date)
        self.assertIn("users: 2 created", summary)
        # A second push costs no write call.
        with self.no_moodle_write():
            self.instance._job_push()

    def test_cron_order_is_dependency_order(self):
        self.instance._job_push()
        creates = [
            f for f, _ in self.fm.calls if "create" in f or f.startswith("enrol_")
        ]
        order = [
            "core_course_create_categories",
            "core_course_create_courses",
            "core_user_create_users",
            "core_group_create_groups",
            "enrol_manual_enrol_users",
        ]
        firsts = [creates.index(f) for f in order]
        self.assertEqual(firsts, sorted(firsts))

    def test_withdrawal_unenrols_and_reenrolment_works(self):
        d = self.data
        self.instance._job_push()
        ann_enrol = d["enrolments"][0]
        ann_enrol.with_context(connector_no_export=True).action_moodle_unenrol()
        # Still on OpenEduCat's own screens (no archive, no hidden row).
        self.assertIn(
            ann_enrol,
            self.env["op.student.course"].search([("student_id", "=", d["ann"].id)]),
        )
        self.instance._job_push(["enrolments"], {"op.student.course": [ann_enrol.id]})
        ann = self.fm.find_user(idnumber=f"oec_student_{d['ann'].id}")
        for subject in d["subjects"]:
            course = self.fm.find_course(
                idnumber=f"oec_subj_{subject.id}_course_{d['program'].id}"
            )
            self.assertEqual(self.fm.enrolled_roles(course["id"], ann["id"]), set())
        self.assertFalse(
            self.env["moodle.mapping"].search(
                [("res_model", "=", "op.student.course"), ("res_id", "=", ann_enrol.id)]
            )
        )
        # Enrolled again in the same batch: OpenEduCat's one enrolment per
        # student and batch holds, and Moodle enrols her again.
        refused = self.assertRaises(IntegrityError)
        with refused, mute_logger("odoo.sql_db"), self.env.cr.savepoint():
            self.env["op.student.course"].with_context(connector_no_export=True).create(
                {
                    "student_id": d["ann"].id,
                    "course_id": d["program"].id,
                    "batch_id": d["batch"].id,
                }
            )
        ann_enrol.with_context(connector_no_export=True).action_moodle_reenrol()
        self.instance._job_push(["enrolments"], {"op.student.course": [ann_enrol.id]})
        algebra = self.fm.find_course(
            idnumber=f"oec_subj_{d['subjects'][0].id}_course_{d['program'].id}"
        )
        self.assertEqual(self.fm.enrolled_roles(algebra["id"], ann["id"]), {5})

    def test_renamed_subject_updates_the_moodle_course(self):
        d = self.data
        self.instance._job_push()
        alg = d["subjects"][0]
        alg.with_context(connector_no_export=True).write({"name": "Linear Algebra"})
        self.fm.reset_calls()
        self.instance._job_push(["subjects"], {"op.subject": [alg.id]})
        course = self.fm.find_course(
            idnumber=f"oec_subj_{alg.id}_course_{d['program'].id}"
        )
        self.assertEqual(course["fullname"], "Linear Algebra (Program T)")
        self.assertEqual(self.fm.write_call_count(), 1)

    def test_store_writes_awkward_text_exactly(self):
        """Rows go in with COPY: tabs, newlines, backslashes, a literal \\N
        and non-ASCII text come back as they were, and the ORM sees the row."""
        from odoo.addons.openeducat_moodle.services.push import OdooStore
        from odoo.addons.openeducat_moodle.sync.store import Mapping

        awkward = "tab\there\nnew line \\ back\\slash « Zoë » \\N"
        rows = [
            Mapping(
                "user",
                f"oec_student_{n}",
                "op.student",
                n,
                moodle_id=9000 + n,
                idnumber=f"oec_student_{n}",
                sync_hash="h" * 64,
                state="error",
                retry_count=2,
                last_error=awkward if n == 1 else "\\N",
                extra={"note": 'say "hi"\\N\t', "groupid": None},
            )
            for n in (1, 2)
        ]
        OdooStore(self.instance).save(rows)
        loaded = OdooStore(self.instance).load("user")
        self.assertEqual(loaded["oec_student_1"].last_error, awkward)
        self.assertEqual(loaded["oec_student_2"].last_error, "\\N")
        self.assertEqual(
            loaded["oec_student_1"].extra, {"note": 'say "hi"\\N\t', "groupid": None}
        )
        self.assertEqual(loaded["oec_student_2"].moodle_id, 9002)
        record = self.mapping("user", "oec_student_1")
        self.assertEqual(
            (record.state, record.retry_count, record.moodle_id, record.last_error),
            ("error", 2, 9001, awkward),
        )
        self.assertEqual(record.create_uid, self.env.user)
        self.assertTrue(record.create_date)

    def test_push_keeps_other_services_keys_in_extra_data(self):
        d = self.data
        self.instance._job_push()
        alg = d["subjects"][0]
        mapping = self.mapping("course", f"oec_subj_{alg.id}_course_{d['program'].id}")
        mapping.extra_data = {"attendance_ids": [7], "failed_hash": "stale"}
        alg.with_context(connector_no_export=True).write({"name": "Algebra X"})
        self.instance._job_push(["subjects"], {"op.subject": [alg.id]})
        self.assertEqual(mapping.extra_data, {"attendance_ids": [7]})

    def test_access_error_pauses_the_instance(self):
        self.fm.token = "rotated"
        summary = self.instance._job_push()
        self.assertTrue(summary.startswith("paused"))
        self.assertEqual(self.instance.health_state, "access")

    def test_transient_error_keeps_successes_and_reschedules(self):
        self.fm.inject("http503", times=1, function="core_user_create_users")
        with trap_jobs() as trap:
            summary = self.instance._job_push()
        self.assertIn("unreachable", summary)
        trap.assert_jobs_count(1, only=self.instance._job_push)
        trap.assert_jobs_count(1, only=self.instance._job_probe)
        self.assertEqual(self.instance.health_state, "error")
        # The instance backs off as a whole: a probe at the end of the window,
        # the new push a minute after it.
        until = self.instance.backoff_until
        jobs = {job.method_name: job for job in trap.enqueued_jobs}
        self.assertEqual(jobs["_job_probe"].eta, until)
        self.assertEqual(jobs["_job_push"].eta, until + datetime.timedelta(minutes=1))
        run = self.env["moodle.sync.run"].search(
            [("instance_id", "=", self.instance.id)]
        )
        self.assertEqual(run.state, "failed")
        d = self.data
        m = self.mapping(
            "course", f"oec_subj_{d['subjects'][0].id}_course_{d['program'].id}"
        )
        self.assertEqual(m.state, "synced")
        with freeze_time(until + datetime.timedelta(minutes=2)):
            trap.perform_enqueued_jobs()
        self.assertTrue(self.fm.find_user(idnumber=f"oec_student_{d['ann'].id}"))
        self.assertEqual(self.instance.health_state, "ok")
        self.assertFalse(self.instance.backoff_until)
