import calendar
import datetime
import zoneinfo
from unittest import mock

from odoo import SUPERUSER_ID, api
from odoo.exceptions import ValidationError
from odoo.tests import tagged

from odoo.addons.openeducat_moodle.services import attendance as service
from odoo.addons.openeducat_moodle.sync import attendance as core
from odoo.addons.queue_job.tests.common import trap_jobs

from tests.fake_moodle.errors import invalid_parameter
from tests.fake_moodle.schema import FUNCTIONS as FAKE_KINDS

from .common import BASE_URL, TOKEN, InstitutionCase

FLAGS = ("present", "absent", "late", "excused")


def flags(line):
    return tuple(line[f] for f in FLAGS)


P = (True, False, False, False)
A = (False, True, False, False)
L = (False, False, True, False)
E = (False, False, False, True)


@tagged("post_install", "-at_install")
class TestAttendance(InstitutionCase):
    suffix = "AT"
    with_ben = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        d = cls.data
        cls.alg = d["subjects"][0]
        cls.course_key = f"oec_subj_{cls.alg.id}_course_{d['program'].id}"

    def setUp(self):
        super().setUp()
        fm = self.fm
        self.instance._job_push()
        self.course = fm.find_course(idnumber=self.course_key)
        self.ann_id = fm.find_user(idnumber=f"oec_student_{self.data['ann'].id}")["id"]
        self.ben_id = fm.find_user(idnumber=f"oec_student_{self.ben.id}")["id"]
        # Moodle's clock an hour before this transaction's time, unless a
        # test moves it.
        self.tx = calendar.timegm(self.env.cr.now().timetuple())
        fm.clock = lambda: self.tx - 3600
        self.tz = zoneinfo.ZoneInfo(service.SyncAttendance(self.instance, None)._tz())
        self.day = datetime.datetime.fromtimestamp(self.tx - 3600, self.tz).date()
        fm.reset_calls()

    # ------------------------------------------------------------ helpers

    def course_mapping(self):
        return self.env["moodle.mapping"].search(
            [
                ("instance_id", "=", self.instance.id),
                ("moodle_model", "=", "course"),
                ("external_key", "=", self.course_key),
            ]
        )

    def activity_rows(self, instance=None):
        """The activities the connector made (one mapping row each)."""
        instance = instance or self.instance
        return instance.env["moodle.mapping"].search(
            [
                ("instance_id", "=", instance.id),
                ("moodle_model", "=", "attendance_activity"),
            ]
        )

    def attendance_id(self):
        """Algebra's attendance activity: the connector's own, else the first
        one found in Moodle."""
        own = self.activity_rows().filtered(lambda m: m.external_key == self.course_key)
        if own:
            return own.moodle_id
        return self.course_mapping().extra_data["attendance_ids"][0]

    def first_run_with_a_session(self):
        """First run: pulling, it finds the activity a teacher made in
        Algebra (and creates nothing); pushing, it creates one per mapped
        course. Then a teacher adds a session to Algebra's."""
        if self.instance.sync_attendance_from == "moodle":
            self.fm.add_attendance(self.course["id"], "Attendance")
        self.instance._job_sync_attendance()
        attid = self.attendance_id()
        session = self.fm.add_attendance_session(attid, self.tx - 3600, 3600)
        return attid, session

    def write_calls(self):
        return [name for name, _p in self.fm.calls if FAKE_KINDS.get(name) == "write"]

    def lines(self):
        return self.env["op.attendance.line"].search(
            [("register_id.subject_id", "=", self.alg.id)]
        )

    def by_student(self):
        return {line.student_id: flags(line) for line in self.lines()}

    def moodle_log(self, session):
        statuses = {s["id"]: s["acronym"] for s in self.fm.attendance_statuses.values()}
        return {
            log["studentid"]: statuses[log["statusid"]]
            for log in self.fm.attendance_logs.values()
            if log["sessionid"] == session
        }

    def updates(self):
        return [
            (int(p["sessionid"]), int(p["studentid"]), int(p["statusid"]))
            for name, p in self.fm.calls
            if name.endswith("update_user_status")
        ]

    def status_id(self, attid, acronym):
        return next(
            s["id"]
            for s in self.fm.attendance_statuses.values()
            if s["attendanceid"] == attid and s["acronym"] == acronym
        )

    def oec_sheet(self, statuses, date=None):
        """Attendance taken in OpenEduCat, as a user would: own register."""
        d = self.data
        register = self.env["op.attendance.register"].create(
            {
                "name": "Algebra",
                "code": "ALGREG-AT",
                "course_id": d["program"].id,
                "batch_id": d["batch"].id,
                "subject_id": self.alg.id,
            }
        )
        sheet = self.env["op.attendance.sheet"].create(
            {"register_id": register.id, "attendance_date": date or self.day}
        )
        for student, values in statuses.items():
            self.env["op.attendance.line"].create(
                {"attendance_id": sheet.id, "student_id": student.id, **values}
            )
        return sheet

    # ------------------------------------------------------ moodle → oec

    def test_pull_fills_registers_sheets_and_lines(self):
        d = self.data
        attid, session = self.first_run_with_a_session()
        # the teacher's activity, found and recorded on the course mapping;
        # nothing created in Moodle
        self.assertEqual(self.course_mapping().extra_data["attendance_ids"], [attid])
        self.assertEqual(self.write_calls(), [])
        self.assertFalse(self.activity_rows())
        self.fm.set_attendance_status_by_acronym(session, self.ann_id, "A")
        self.fm.set_attendance_status_by_acronym(session, self.ben_id, "L")
        self.fm.reset_calls()

        summary = self.instance._job_sync_attendance()

        self.assertEqual(self.fm.write_call_count(), 0)
        self.assertEqual(self.by_student(), {d["ann"]: A, self.ben: L})
        sheet = self.lines().attendance_id
        self.assertEqual(len(sheet), 1)
        self.assertEqual(sheet.attendance_date, self.day)
        self.assertFalse(sheet.faculty_id)
        self.assertFalse(sheet.session_id)
        self.assertEqual(sheet.state, "done")
        register = sheet.register_id
        self.assertEqual(
            (register.course_id, register.batch_id, register.subject_id),
            (d["program"], d["batch"], self.alg),
        )
        self.assertLessEqual(len(register.code), 16)
        self.assertLessEqual(len(register.name), 16)
        self.assertIn("2 lines created", summary)
        self.assertEqual(self.instance.attendance_status, "ok")
        run = self.env["moodle.sync.run"].search(
            [("instance_id", "=", self.instance.id), ("kind", "=", "attendance")],
            limit=1,
        )
        self.assertEqual((run.created, run.state), (2, "done"))

    def test_rerun_changes_nothing_and_later_changes_update_in_place(self):
        d = self.data
        _attid, session = self.first_run_with_a_session()
        self.fm.set_attendance_status_by_acronym(session, self.ann_id, "P")
        self.fm.set_attendance_status_by_acronym(session, self.ben_id, "E")
        self.instance._job_sync_attendance()
        before = {line.id: line.write_date for line in self.lines()}
        counts = {
            model: self.env[model].search_count([])
            for model in (
                "op.attendance.register",
                "op.attendance.sheet",
                "op.attendance.line",
                "moodle.mapping",
            )
        }
        self.fm.reset_calls()

        summary = self.instance._job_sync_attendance()

        self.assertEqual(self.fm.write_call_count(), 0)
        self.assertIn("0 lines created, 0 updated", summary)
        self.assertIn("2 unchanged", summary)
        self.assertEqual({line.id: line.write_date for line in self.lines()}, before)
        self.assertEqual(
            {model: self.env[model].search_count([]) for model in counts}, counts
        )

        # A later change in Moodle updates the same line.
        self.fm.set_attendance_status_by_acronym(session, self.ann_id, "L")
        summary = self.instance._job_sync_attendance()
        self.assertIn("0 lines created, 1 updated", summary)
        self.assertEqual(set(self.lines().ids), set(before))
        self.assertEqual(self.by_student(), {d["ann"]: L, self.ben: E})

    def test_two_sessions_on_one_day_get_two_sheets_in_one_register(self):
        attid, first = self.first_run_with_a_session()
        # A minute after the first (tx - 3600): on the same day whatever the
        # hour (tx - 1800 fell on the next day during the first hour of one).
        second = self.fm.add_attendance_session(attid, self.tx - 3540, 600)
        self.fm.set_attendance_status_by_acronym(first, self.ann_id, "P")
        self.fm.set_attendance_status_by_acronym(second, self.ann_id, "A")
        self.instance._job_sync_attendance()
        self.instance._job_sync_attendance()
        sheets = self.lines().attendance_id
        self.assertEqual(len(sheets), 2)
        self.assertEqual(len(sheets.register_id), 1)
        self.assertEqual(sorted(flags(line) for line in self.lines()), sorted([P, A]))

    def test_custom_status_is_skipped_and_counted(self):
        attid, session = self.first_run_with_a_session()
        self.fm.add_attendance_status(attid, "R", "Remote", 2.0)
        self.fm.set_attendance_status_by_acronym(session, self.ann_id, "R")
        self.fm.set_attendance_status_by_acronym(session, self.ben_id, "P")
        summary = self.instance._job_sync_attendance()
        self.assertIn("1 custom statuses skipped", summary)
        self.assertEqual(self.by_student(), {self.ben: P})

    def test_pull_enqueues_no_push(self):
        """A write through the attendance run's environment on a model with a
        save hook (a student) is not pushed back."""
        _attid, session = self.first_run_with_a_session()
        self.fm.set_attendance_status_by_acronym(session, self.ann_id, "P")
        original = service.SyncAttendance._tz
        ann = self.data["ann"]

        def tz_and_touch(sync):
            ann.with_env(sync.env).write({"first_name": "Ann"})
            return original(sync)

        with (
            trap_jobs() as trap,
            mock.patch.object(service.SyncAttendance, "_tz", tz_and_touch),
        ):
            self.instance._job_sync_attendance()
        trap.assert_jobs_count(0)
        self.assertTrue(self.lines())
        with trap_jobs() as trap:
            ann.with_env(self.env).write({"first_name": "Anne"})
        trap.assert_jobs_count(1)

    def test_legacy_site_reads_known_activities(self):
        self.fm.enable_legacy_attendance(only=True)
        attid = self.fm.add_attendance(self.course["id"], "Teacher's attendance")
        session = self.fm.add_attendance_session(attid, self.tx - 3600, 3600)
        self.fm.set_attendance_status_by_acronym(session, self.ann_id, "E")
        mapping = self.course_mapping()
        mapping.extra_data = {**(mapping.extra_data or {}), "attendance_ids": [attid]}
        self.instance._job_sync_attendance()
        self.assertEqual(self.by_student(), {self.data["ann"]: E})
        self.assertEqual(self.fm.call_counts["mod_wsattendance_get_sessions"], 1)
        self.assertEqual(self.fm.call_counts["mod_attendance_add_attendance"], 0)

    # ------------------------------------------------------ oec → moodle

    def test_push_creates_session_and_writes_each_line(self):
        d = self.data
        self.instance.sync_attendance_from = "oec"
        sheet = self.oec_sheet(
            {
                d["ann"]: {"absent": True},  # present stays True (the default)
                self.ben: {"present": False, "late": True},
            }
        )

        summary = self.instance._job_sync_attendance()

        attid = self.attendance_id()
        (session,) = [
            s
            for s in self.fm.attendance_sessions.values()
            if s["attendanceid"] == attid
        ]
        self.assertEqual(session["description"], f"oec_attendance_sheet_{sheet.id}")
        self.assertEqual(
            datetime.datetime.fromtimestamp(session["sessdate"], self.tz).date(),
            self.day,
        )
        self.assertEqual(
            self.moodle_log(session["id"]), {self.ann_id: "A", self.ben_id: "L"}
        )
        self.assertEqual(len(self.updates()), 2)
        self.assertIn("2 statuses written", summary)
        # OpenEduCat is untouched: the user's sheet, no register of ours
        self.assertEqual(self.lines().attendance_id, sheet)
        self.assertEqual(
            {line.student_id: flags(line) for line in sheet.attendance_line},
            {d["ann"]: (True, True, False, False), self.ben: L},
        )

        self.fm.reset_calls()
        summary = self.instance._job_sync_attendance()
        self.assertEqual(self.fm.write_call_count(), 0)
        self.assertIn("2 unchanged", summary)

        line = sheet.attendance_line.filtered(lambda x: x.student_id == self.ben)
        line.write({"present": False, "absent": False, "late": False, "excused": True})
        self.fm.reset_calls()
        self.instance._job_sync_attendance()
        self.assertEqual(
            self.updates(),
            [(session["id"], self.ben_id, self.status_id(attid, "E"))],
        )
        self.assertEqual(self.moodle_log(session["id"])[self.ben_id], "E")

    def test_push_ignores_changes_made_in_moodle(self):
        d = self.data
        self.instance.sync_attendance_from = "oec"
        self.oec_sheet({d["ann"]: {"present": True}})
        self.instance._job_sync_attendance()
        (session,) = self.fm.attendance_sessions
        self.fm.set_attendance_status_by_acronym(session, self.ann_id, "A")
        self.fm.reset_calls()
        self.instance._job_sync_attendance()
        self.assertEqual(self.moodle_log(session), {self.ann_id: "P"})
        self.assertEqual(self.by_student(), {d["ann"]: P})

    # --------------------------------------------------------------- both

    def test_both_moves_each_sides_change_to_the_other(self):
        d = self.data
        self.instance.sync_attendance_from = "both"
        attid, session = self.first_run_with_a_session()
        self.fm.set_attendance_status_by_acronym(session, self.ann_id, "P")
        # Ben is marked in OpenEduCat, on the same day: the sheet is adopted.
        sheet = self.oec_sheet({self.ben: {"present": False, "absent": True}})

        summary = self.instance._job_sync_attendance()

        self.assertEqual(self.moodle_log(session), {self.ann_id: "P", self.ben_id: "A"})
        self.assertEqual(self.by_student(), {d["ann"]: P, self.ben: A})
        self.assertEqual(self.lines().attendance_id, sheet)
        self.assertEqual(self.fm.call_counts["mod_attendance_add_session"], 0)
        self.assertIn("0 conflicts", summary)
        self.fm.reset_calls()
        self.instance._job_sync_attendance()
        self.assertEqual(self.fm.write_call_count(), 0)

    def _conflict(self, moodle_later):
        d = self.data
        self.instance.sync_attendance_from = "both"
        _attid, session = self.first_run_with_a_session()
        self.fm.set_attendance_status_by_acronym(session, self.ann_id, "P")
        self.instance._job_sync_attendance()
        self.assertEqual(self.by_student(), {d["ann"]: P})
        # Both sides change Ann's status; Moodle before or after OpenEduCat.
        self.fm.clock = lambda: self.tx + (3600 if moodle_later else -600)
        self.fm.set_attendance_status_by_acronym(session, self.ann_id, "L")
        line = self.lines()
        line.write({"present": False, "absent": True, "late": False, "excused": False})
        self.fm.reset_calls()
        summary = self.instance._job_sync_attendance()
        self.assertIn("1 conflicts", summary)
        run = self.env["moodle.sync.run"].search(
            [("instance_id", "=", self.instance.id), ("kind", "=", "attendance")],
            limit=1,
        )
        self.assertEqual(run.conflicts, 1)
        return session

    def test_both_conflict_moodle_later_wins(self):
        session = self._conflict(moodle_later=True)
        self.assertEqual(self.by_student(), {self.data["ann"]: L})
        self.assertEqual(self.moodle_log(session), {self.ann_id: "L"})
        self.assertEqual(self.updates(), [])

    def test_both_conflict_openeducat_later_wins(self):
        session = self._conflict(moodle_later=False)
        self.assertEqual(self.by_student(), {self.data["ann"]: A})
        self.assertEqual(self.moodle_log(session), {self.ann_id: "A"})
        self.assertEqual(len(self.updates()), 1)
        self.fm.reset_calls()
        summary = self.instance._job_sync_attendance()
        self.assertEqual(self.fm.write_call_count(), 0)
        self.assertIn("0 conflicts", summary)

    # ------------------------------------------------------ prerequisites

    def test_site_without_attendance_is_skipped_other_syncs_run(self):
        self.fm.disable_attendance(uninstall=True)
        summary = self.instance._job_sync_attendance()
        self.assertEqual(self.instance.attendance_status, "skipped")
        self.assertIn("mod_attendance", self.instance.attendance_message)
        self.assertTrue(summary.startswith("attendance skipped"))
        self.assertEqual(
            [name for name, _p in self.fm.calls], ["core_webservice_get_site_info"]
        )
        self.assertEqual(self.instance.health_state, "ok")
        self.assertFalse(
            self.env["op.attendance.sheet"]
            .search([])
            .filtered(lambda s: s.register_id.subject_id == self.alg)
        )
        # push and grades still run
        self.data["ann"].with_context(connector_no_export=False).write(
            {"last_name": "Leeds", "name": "Ann Leeds"}
        )
        self.fm.reset_calls()
        self.instance._job_push()
        self.assertEqual(self.fm.call_counts["core_user_update_users"], 1)
        self.instance._job_pull_grades()
        self.assertTrue(self.fm.call_counts["gradereport_user_get_grade_items"])
        self.assertEqual(self.instance.health_state, "ok")

    def test_odoo_without_openeducat_attendance_is_skipped(self):
        with mock.patch.object(service, "ATTENDANCE_MODELS", ("op.attendance.absent",)):
            summary = self.instance._job_sync_attendance()
        self.assertIn("openeducat_attendance is not installed", summary)
        self.assertEqual(self.instance.attendance_status, "skipped")
        self.assertEqual(self.fm.calls, [])

    def test_dry_run_writes_nowhere(self):
        _attid, session = self.first_run_with_a_session()
        self.fm.set_attendance_status_by_acronym(session, self.ann_id, "A")
        self.instance.sync_attendance_from = "both"
        self.oec_sheet({self.ben: {"late": True, "present": False}}, self.day)
        mappings = self.env["moodle.mapping"].search_count([])
        self.fm.reset_calls()
        client = self.instance._get_client()
        result = service.SyncAttendance(self.instance, client, dry_run=True).run()
        self.assertEqual(self.fm.write_call_count(), 0)
        self.assertEqual(self.env["moodle.mapping"].search_count([]), mappings)
        self.assertIn(("pull", session, self.ann_id, "A"), result.planned)
        self.assertIn(("push", session, self.ben_id, "L"), result.planned)
        self.assertEqual(self.by_student(), {self.ben: L})

    # ------------------------------------------------------ cron and button

    def test_button_and_cron_enqueue_the_job_on_root_moodle(self):
        for enqueue in (
            self.instance.action_sync_attendance_now,
            self.env["moodle.instance"]._cron_attendance_sync,
        ):
            with trap_jobs() as trap:
                enqueue()
            trap.assert_jobs_count(1, only=self.instance._job_sync_attendance)
            trap.assert_enqueued_job(
                self.instance._job_sync_attendance,
                properties={
                    "channel": "root.moodle",
                    "identity_key": f"moodle:{self.instance.id}:attendance",
                },
            )
        self.instance.sync_attendance = False
        with trap_jobs() as trap:
            self.env["moodle.instance"]._cron_attendance_sync()
        trap.assert_jobs_count(0, only=self.instance._job_sync_attendance)
        self.assertEqual(self.fm.calls, [])

    def test_sync_wizard_plan(self):
        _attid, session = self.first_run_with_a_session()
        self.fm.set_attendance_status_by_acronym(session, self.ann_id, "A")
        self.fm.reset_calls()
        summary, lines = self.instance._moodle_attendance_dry_run(
            self.instance._get_client()
        )
        self.assertEqual(self.fm.write_call_count(), 0)
        self.assertIn("attendance (moodle)", summary)
        self.assertEqual(
            lines,
            [
                {
                    "kind": "attendance",
                    "key": f"att_session_{session}@user_{self.ann_id}",
                    "label": "Moodle → OpenEduCat: A",
                    "action": "update",
                }
            ],
        )
        self.assertFalse(self.lines())

    def test_lost_activity_ids_are_recovered_from_the_session_links(self):
        attid, session = self.first_run_with_a_session()
        self.fm.set_attendance_status_by_acronym(session, self.ann_id, "P")
        self.instance._job_sync_attendance()
        mapping = self.course_mapping()
        mapping.extra_data = {}  # e.g. overwritten by a concurrent push
        self.fm.remove_function("core_course_get_contents")  # no listing either
        self.fm.reset_calls()
        summary = self.instance._job_sync_attendance()
        self.assertEqual(
            [
                a
                for a in self.fm.attendances.values()
                if a["courseid"] == self.course["id"]
            ],
            [self.fm.attendances[attid]],
        )
        self.assertIn("1 unchanged", summary)

    # ------------------------------------------- activities added in Moodle

    def teacher_activity(self):
        """An attendance activity a teacher adds in Moodle's Algebra course
        (not through the connector), moved to another section, with a taken
        session."""
        attid = self.fm.add_attendance(self.course["id"], "Teacher's roll call")
        self.fm.set_module(self.fm.attendances[attid]["cmid"], section=2)
        session = self.fm.add_attendance_session(attid, self.tx - 3600, 3600)
        self.fm.set_attendance_status_by_acronym(session, self.ann_id, "A")
        self.fm.set_attendance_status_by_acronym(session, self.ben_id, "L")
        self.fm.reset_calls()
        return attid, session

    def contents_courses(self):
        return sorted(
            int(p["courseid"])
            for name, p in self.fm.calls
            if name == "core_course_get_contents"
        )

    def test_teacher_made_activity_is_pulled_into_registers(self):
        d = self.data
        attid, session = self.teacher_activity()

        summary = self.instance._job_sync_attendance()

        self.assertEqual(self.by_student(), {d["ann"]: A, self.ben: L})
        self.assertEqual(self.course_mapping().extra_data["attendance_ids"], [attid])
        sheet = self.lines().attendance_id
        self.assertEqual(len(sheet), 1)
        self.assertEqual(sheet.attendance_date, self.day)
        self.assertIn("1 activities found in Moodle", summary)
        # One call per mapped course that has students (Algebra: Ann and Ben;
        # Biology: Ann; Chemistry has none), and no second activity in Algebra.
        biology = self.fm.find_course(
            idnumber=f"oec_subj_{d['subjects'][1].id}_course_{d['program'].id}"
        )
        self.assertEqual(
            self.contents_courses(), sorted([self.course["id"], biology["id"]])
        )
        self.assertEqual(
            [a["courseid"] for a in self.fm.attendances.values()].count(
                self.course["id"]
            ),
            1,
        )
        self.assertEqual(self.write_calls(), [])  # pulling creates nothing

        # Rerun: known now, recorded once, nothing changes.
        self.fm.reset_calls()
        summary = self.instance._job_sync_attendance()
        self.assertEqual(self.course_mapping().extra_data["attendance_ids"], [attid])
        self.assertIn("2 unchanged", summary)
        self.assertNotIn("found in Moodle", summary)
        self.assertEqual(self.fm.write_call_count(), 0)

        # A later session of the teacher's activity comes in too.
        later = self.fm.add_attendance_session(attid, self.tx - 3600 + 86400, 3600)
        self.fm.set_attendance_status_by_acronym(later, self.ann_id, "P")
        self.instance._job_sync_attendance()
        self.assertEqual(len(self.lines().attendance_id), 2)

    def test_teacher_activity_next_to_the_connectors_own(self):
        self.instance.sync_attendance_from = "both"
        own, _session = self.first_run_with_a_session()
        attid, session = self.teacher_activity()
        self.instance._job_sync_attendance()
        self.assertEqual(self.course_mapping().extra_data["attendance_ids"], [attid])
        self.assertEqual(self.attendance_id(), own)
        self.assertEqual(self.by_student(), {self.data["ann"]: A, self.ben: L})
        self.assertEqual(
            [a["courseid"] for a in self.fm.attendances.values()].count(
                self.course["id"]
            ),
            2,
        )

    def test_without_course_contents_a_teacher_activity_is_not_read(self):
        self.fm.remove_function("core_course_get_contents")
        attid, _session = self.teacher_activity()

        summary = self.instance._job_sync_attendance()

        self.assertEqual(self.fm.call_counts["core_course_get_contents"], 0)
        self.assertFalse(self.lines())
        # pulling, the connector makes no activity of its own either
        self.assertFalse((self.course_mapping().extra_data or {}).get("attendance_ids"))
        self.assertFalse(self.activity_rows())
        self.assertEqual(self.write_calls(), [])
        self.assertNotIn("found in Moodle", summary)
        self.assertIn(core.DISCOVERY_NOTE, summary)
        self.assertIn(core.DISCOVERY_NOTE, self.instance.attendance_message)

    def test_dry_run_plans_the_teacher_activity_and_records_nothing(self):
        _attid, session = self.teacher_activity()
        with self.no_moodle_write():
            summary, lines = self.instance._moodle_attendance_dry_run(
                self.instance._get_client()
            )
        self.assertIn("1 activities found in Moodle", summary)
        self.assertIn(
            f"att_session_{session}@user_{self.ann_id}", [x["key"] for x in lines]
        )
        self.assertFalse((self.course_mapping().extra_data or {}).get("attendance_ids"))
        self.assertFalse(self.lines())

    # ------------------------------------------------ pulling creates nothing

    def test_pull_only_creates_nothing_in_moodle(self):
        """Pull only, on a site that could create: no activity in the courses
        that have none, no session for OpenEduCat's sheet, no status written
        back; with and without the listing."""
        d = self.data
        _attid, session = self.first_run_with_a_session()
        self.fm.set_attendance_status_by_acronym(session, self.ann_id, "P")
        # OpenEduCat has its own sheet on another day, and Ben's status
        self.oec_sheet(
            {self.ben: {"present": False, "absent": True}},
            self.day - datetime.timedelta(1),
        )
        for listing in (True, False):
            if not listing:
                self.fm.remove_function("core_course_get_contents")
            self.fm.reset_calls()
            summary = self.instance._job_sync_attendance()
            self.assertEqual(self.write_calls(), [])
            self.assertEqual(self.fm.write_call_count(), 0)
            self.assertIn("0 sessions and 0 activities created", summary)
        self.assertFalse(self.activity_rows())
        self.assertEqual(
            [a["courseid"] for a in self.fm.attendances.values()], [self.course["id"]]
        )
        self.assertEqual(self.moodle_log(session), {self.ann_id: "P"})
        self.assertEqual(self.by_student(), {d["ann"]: P, self.ben: A})

    # ------------------------------------------------- one course at a time

    def refuse_lines_of(self, subject):
        """OpenEduCat refuses the attendance lines of ``subject`` (say a
        constraint of a customisation)."""
        lines = type(self.env["op.attendance.line"])
        create = lines.create

        def refuse(records, vals_list):
            sheets = records.env["op.attendance.sheet"].browse(
                [v["attendance_id"] for v in vals_list]
            )
            if subject in sheets.register_id.subject_id:
                raise ValidationError("Attendance is locked for this subject")
            return create(records, vals_list)

        return mock.patch.object(lines, "create", refuse)

    def test_a_course_openeducat_refuses_is_rolled_back_alone(self):
        d = self.data
        biology = d["subjects"][1]
        bio_course = self.fm.find_course(
            idnumber=f"oec_subj_{biology.id}_course_{d['program'].id}"
        )
        _attid, session = self.first_run_with_a_session()
        bio_att = self.fm.add_attendance(bio_course["id"], "Attendance")
        bio_session = self.fm.add_attendance_session(bio_att, self.tx - 3600, 3600)
        self.fm.set_attendance_status_by_acronym(session, self.ann_id, "A")
        self.fm.set_attendance_status_by_acronym(session, self.ben_id, "L")
        self.fm.set_attendance_status_by_acronym(bio_session, self.ann_id, "E")
        registers = self.env["op.attendance.register"].search_count([])

        with self.refuse_lines_of(self.alg):
            summary = self.instance._job_sync_attendance()

        self.assertIn("Attendance is locked for this subject", summary)
        self.assertIn(f"course {self.course_key}: ", summary)
        self.assertIn("1 lines created", summary)  # Biology's only
        self.assertIn("1 failed", summary)
        self.assertFalse(self.lines())  # Algebra: rolled back, register too
        self.assertEqual(
            self.env["op.attendance.register"].search_count([]), registers + 1
        )
        bio_lines = self.env["op.attendance.line"].search(
            [("register_id.subject_id", "=", biology.id)]
        )
        self.assertEqual(
            {line.student_id: flags(line) for line in bio_lines}, {d["ann"]: E}
        )
        self.assertEqual(self.instance.attendance_status, "ok")
        run = self.env["moodle.sync.run"].search(
            [("instance_id", "=", self.instance.id), ("kind", "=", "attendance")],
            limit=1,
        )
        self.assertEqual((run.state, run.failed), ("partial", 1))

        # The refusal is lifted: Algebra comes in, Biology stays as it is.
        summary = self.instance._job_sync_attendance()
        self.assertIn("2 lines created", summary)
        self.assertEqual(self.by_student(), {d["ann"]: A, self.ben: L})
        self.assertEqual(len(bio_lines.exists()), 1)

    def test_a_course_moodle_rejects_half_way_is_rolled_back_and_redone_once(self):
        """Pushing two sheets of Algebra: Moodle makes the activity and the
        first session, then rejects the second session. The course is rolled
        back in OpenEduCat (no link to the first session is kept) but the
        activity stays on record; the next run adopts the first session by
        its marker: nothing is made twice in Moodle."""
        d = self.data
        self.instance.sync_attendance_from = "oec"
        first = self.oec_sheet({d["ann"]: {"absent": True, "present": False}})
        second = self.env["op.attendance.sheet"].create(
            {
                "register_id": first.register_id.id,
                "attendance_date": self.day - datetime.timedelta(1),
            }
        )
        self.env["op.attendance.line"].create(
            {"attendance_id": second.id, "student_id": self.ben.id, "late": True}
        )
        add_session = self.fm.ws_mod_attendance_add_session

        def reject_second(**kw):
            if kw["description"] == f"oec_attendance_sheet_{second.id}":
                raise invalid_parameter("Session time is not allowed")
            return add_session(**kw)

        self.fm.ws_mod_attendance_add_session = reject_second
        summary = self.instance._job_sync_attendance()

        self.assertIn(f"course {self.course_key}: ", summary)
        attid = self.attendance_id()  # kept through the course's rollback
        links = self.env["moodle.mapping"].search(
            [
                ("instance_id", "=", self.instance.id),
                ("moodle_model", "=", "attendance"),
            ]
        )
        self.assertFalse(links.filtered(lambda m: m.moodle_idnumber == self.course_key))
        made = {
            s["description"]: s["id"]
            for s in self.fm.attendance_sessions.values()
            if s["attendanceid"] == attid
        }
        self.assertEqual(list(made), [f"oec_attendance_sheet_{first.id}"])

        self.fm.ws_mod_attendance_add_session = add_session
        self.fm.reset_calls()
        summary = self.instance._job_sync_attendance()

        self.assertIn("0 failed", summary)
        self.assertNotIn(f"course {self.course_key}: ", summary)
        self.assertEqual(self.fm.call_counts["mod_attendance_add_attendance"], 0)
        self.assertEqual(self.fm.call_counts["mod_attendance_add_session"], 1)
        self.assertEqual(
            [a["courseid"] for a in self.fm.attendances.values()].count(
                self.course["id"]
            ),
            1,
        )
        sessions = {
            s["description"]: s["id"]
            for s in self.fm.attendance_sessions.values()
            if s["attendanceid"] == attid
        }
        self.assertEqual(
            self.moodle_log(sessions[f"oec_attendance_sheet_{first.id}"]),
            {self.ann_id: "A"},
        )
        self.assertEqual(
            self.moodle_log(sessions[f"oec_attendance_sheet_{second.id}"]),
            {self.ben_id: "L"},
        )

    # ------------------------------------------------- look up before create

    def test_lookup_lists_a_course_before_creating_its_activity(self):
        """An earlier push made Chemistry's activity (no student there), then
        its record was lost: the listing finds it before anything is made."""
        d = self.data
        chemistry = self.fm.find_course(
            idnumber=f"oec_subj_{d['subjects'][2].id}_course_{d['program'].id}"
        )
        earlier = self.fm.add_attendance(chemistry["id"], "Attendance")
        self.instance.sync_attendance_from = "oec"
        self.instance._job_sync_attendance()
        self.assertEqual(
            [a["courseid"] for a in self.fm.attendances.values()].count(
                chemistry["id"]
            ),
            1,
        )
        self.assertIn(chemistry["id"], self.contents_courses())
        chem_mapping = self.env["moodle.mapping"].search(
            [
                ("instance_id", "=", self.instance.id),
                ("moodle_model", "=", "course"),
                ("moodle_id", "=", chemistry["id"]),
            ]
        )
        self.assertEqual(chem_mapping.extra_data["attendance_ids"], [earlier])

    def test_a_course_made_again_in_moodle_gets_a_new_activity(self):
        """Algebra's Moodle course was deleted and the push made it again: the
        activity on record is in the old course; a new one is made in the new
        course and replaces it on record."""
        self.instance.sync_attendance_from = "oec"
        self.instance._job_sync_attendance()
        old = self.attendance_id()
        renewed = self.fm.add_course("Algebra again", "ALG_AGAIN")
        mapping = self.course_mapping()
        mapping.moodle_id = renewed
        self.fm.reset_calls()

        summary = self.instance._job_sync_attendance()

        self.assertIn("0 failed", summary)
        self.assertEqual(self.fm.call_counts["mod_attendance_add_attendance"], 1)
        row = self.activity_rows().filtered(lambda m: m.external_key == self.course_key)
        self.assertEqual(len(row), 1)
        self.assertNotEqual(row.moodle_id, old)
        self.assertEqual(self.fm.attendances[row.moodle_id]["courseid"], renewed)
        self.assertEqual(row.extra_data, {"course": renewed})

    def committed_instance(self):
        """An instance, and Algebra's course mapping, committed for real (and
        removed after the test): what a job sees in production."""
        with self.registry.cursor() as cr:
            env = api.Environment(
                cr,
                SUPERUSER_ID,
                {"tracking_disable": True, "connector_no_export": True},
            )
            instance = env["moodle.instance"].create(
                {
                    "name": "Committed Moodle",
                    "base_url": BASE_URL,
                    "token": TOKEN,
                    "sync_attendance_from": "oec",
                }
            )
            env["moodle.mapping"].create(
                {
                    "instance_id": instance.id,
                    "moodle_model": "course",
                    "external_key": self.course_key,
                    "moodle_idnumber": self.course_key,
                    "moodle_id": self.course["id"],
                    "res_model": "op.subject",
                    "res_id": self.alg.id,
                    "state": "synced",
                }
            )
            instance_id = instance.id
        self.addCleanup(self.drop_committed, instance_id)
        return instance_id

    def drop_committed(self, instance_id):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            env["queue.job"].search(
                [("identity_key", "=like", f"moodle:{instance_id}:%")]
            ).unlink()
            env["moodle.instance"].browse(instance_id).unlink()

    def run_job_apart(self, instance_id, commit=True):
        """Run the attendance job as queue_job does: in a transaction of its
        own, committed, or rolled back at the end (a serialization failure
        at commit, a worker killed before it)."""
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            summary = env["moodle.instance"].browse(instance_id)._job_sync_attendance()
            if not commit:
                cr.rollback()
            return summary

    def test_an_activity_made_before_a_rollback_is_not_made_again(self):
        """Without the listing: Moodle made Algebra's activity, then the job's
        transaction was rolled back. The activity was recorded apart, at once:
        the next run reads it instead of making a second one."""
        self.fm.remove_function("core_course_get_contents")
        instance_id = self.committed_instance()

        self.run_job_apart(instance_id, commit=False)

        self.assertEqual(self.fm.call_counts["mod_attendance_add_attendance"], 1)
        (attid,) = [
            a["id"]
            for a in self.fm.attendances.values()
            if a["courseid"] == self.course["id"]
        ]
        self.fm.reset_calls()

        self.run_job_apart(instance_id)

        self.assertEqual(self.fm.call_counts["mod_attendance_add_attendance"], 0)
        self.assertEqual(
            [
                int(p["attendanceid"])
                for name, p in self.fm.calls
                if name == "mod_attendance_get_sessions"
            ],
            [attid],
        )
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            row = self.activity_rows(env["moodle.instance"].browse(instance_id))
            self.assertEqual(
                (row.moodle_id, row.external_key, row.extra_data),
                (attid, self.course_key, {"course": self.course["id"]}),
            )

    # ---------------------------------------------------- Test Connection

    def test_test_connection_recommends_the_listing(self):
        self.fm.remove_function("core_course_get_contents")
        action = self.instance.action_test_connection()
        self.assertEqual(self.instance.health_state, "ok")
        self.assertIn("RECOMMENDED", self.instance.health_message)
        self.assertIn("core_course_get_contents", self.instance.health_message)
        self.assertIn("core_course_get_contents", action["params"]["message"])

        self.fm.add_function("core_course_get_contents")
        self.instance.action_test_connection()
        self.assertNotIn("RECOMMENDED", self.instance.health_message)

        self.fm.remove_function("core_course_get_contents")
        self.instance.sync_attendance = False
        self.instance.action_test_connection()
        self.assertNotIn("RECOMMENDED", self.instance.health_message)
