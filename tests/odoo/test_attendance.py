import calendar
import datetime
import zoneinfo
from unittest import mock

from odoo.tests import tagged

from odoo.addons.openeducat_moodle.services import attendance as service
from odoo.addons.queue_job.tests.common import trap_jobs

from .common import InstitutionCase

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

    def attendance_id(self):
        """The attendance activity the connector made in the Algebra course."""
        return self.course_mapping().extra_data["attendance_ids"][0]

    def first_run_with_a_session(self):
        """First run creates one activity per mapped course; then a teacher
        adds a session to Algebra's."""
        self.instance._job_sync_attendance()
        attid = self.attendance_id()
        session = self.fm.add_attendance_session(attid, self.tx - 3600, 3600)
        return attid, session

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
        # one activity per mapped course, recorded on the course mapping
        self.assertEqual(
            self.fm.call_counts["mod_attendance_add_attendance"], len(d["subjects"])
        )
        self.assertEqual(self.fm.attendances[attid]["courseid"], self.course["id"])
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
        second = self.fm.add_attendance_session(attid, self.tx - 1800, 600)
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
        _attid, session = self.first_run_with_a_session()
        self.fm.set_attendance_status_by_acronym(session, self.ann_id, "P")
        with trap_jobs() as trap:
            self.instance._job_sync_attendance()
        trap.assert_jobs_count(0)
        self.assertTrue(self.lines())

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
        self.assertEqual(
            self.fm.call_counts["mod_attendance_add_attendance"],
            len(d["subjects"]) - 1,
        )

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
        own, _session = self.first_run_with_a_session()
        attid, session = self.teacher_activity()
        self.instance._job_sync_attendance()
        self.assertEqual(
            self.course_mapping().extra_data["attendance_ids"], [own, attid]
        )
        self.assertEqual(self.by_student(), {self.data["ann"]: A, self.ben: L})

    def test_without_course_contents_a_teacher_activity_is_not_read(self):
        self.fm.remove_function("core_course_get_contents")
        attid, _session = self.teacher_activity()

        summary = self.instance._job_sync_attendance()

        self.assertEqual(self.fm.call_counts["core_course_get_contents"], 0)
        self.assertFalse(self.lines())
        # old behaviour: the connector makes and reads its own activity
        known = self.course_mapping().extra_data["attendance_ids"]
        self.assertEqual(len(known), 1)
        self.assertNotIn(attid, known)
        self.assertEqual(
            self.fm.call_counts["mod_attendance_add_attendance"],
            len(self.data["subjects"]),
        )
        self.assertNotIn("found in Moodle", summary)

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
