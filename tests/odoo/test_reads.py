"""Issue 15 in Odoo: completion and attendance pulls that read what changed
(with the companion plugin local_openeducat and without it), and where they
keep their watermark."""

import calendar
import datetime
from unittest.mock import patch

from freezegun import freeze_time

from odoo.tests import tagged

from odoo.addons.openeducat_moodle.moodle.catalogue import (
    PLUGIN_ATTENDANCE_LOGS,
    PLUGIN_COMPLETIONS,
)
from odoo.addons.openeducat_moodle.services import attendance as service

from .common import InstitutionCase

T0 = datetime.datetime(2026, 10, 5, 9, 0, 0)
EPOCH = calendar.timegm(T0.timetuple())
SITE_INFO = "core_webservice_get_site_info"
STATUS = "core_completion_get_course_completion_status"
ACCESS = "core_enrol_get_enrolled_users"


class ReadsCase(InstitutionCase):
    with_ben = True

    def setUp(self):
        super().setUp()
        self.instance._job_push()
        d = self.data
        self.alg, self.bio = (
            self.fm.find_course(
                idnumber=f"oec_subj_{subject.id}_course_{d['program'].id}"
            )["id"]
            for subject in d["subjects"][:2]
        )
        self.ann = self.fm.find_user(idnumber=f"oec_student_{d['ann'].id}")["id"]
        self.ben_id = self.fm.find_user(idnumber=f"oec_student_{self.ben.id}")["id"]

    def at(self, seconds):
        """Both clocks ``seconds`` after T0: Odoo's and the simulator's."""
        self.fm.clock = lambda: EPOCH + seconds
        self.fm.reset_calls()
        return freeze_time(T0 + datetime.timedelta(seconds=seconds))

    def calls(self):
        return dict(self.fm.call_counts)


@tagged("post_install", "-at_install")
class TestCompletionReads(ReadsCase):
    suffix = "RC"

    def setUp(self):
        super().setUp()
        for courseid in (self.alg, self.bio):
            self.fm.set_completion_criteria(courseid)

    def rows(self):
        rows = self.env["moodle.mapping"].search(
            [
                ("instance_id", "=", self.instance.id),
                ("moodle_model", "=", "completion"),
            ]
        )
        return {row.external_key: row for row in rows}

    def key(self, student, courseid):
        user = f"oec_student_{student.id}"
        course = next(
            c["idnumber"] for c in self.fm.courses.values() if c["id"] == courseid
        )
        return f"{user}@{course}"

    def test_with_the_plugin_a_run_costs_two_calls(self):
        self.fm.install_plugin()
        with self.at(0):
            self.instance._job_pull_completion()
        self.assertEqual(self.calls(), {SITE_INFO: 1, PLUGIN_COMPLETIONS: 1})
        rows = self.rows()
        self.assertEqual(len(rows), 3)
        self.assertEqual(
            {r.extra_data["completion"] for r in rows.values()}, {"incomplete"}
        )
        mark = self.instance.completion_watermark
        self.assertEqual((mark["since"], mark["plugin"]), (EPOCH, True))

        # Nothing changed: two calls, no row written.
        written = {key: row.last_sync_date for key, row in rows.items()}
        with self.at(900):
            self.instance._job_pull_completion()
        self.assertEqual(self.calls(), {SITE_INFO: 1, PLUGIN_COMPLETIONS: 1})
        self.assertEqual(
            {key: row.last_sync_date for key, row in self.rows().items()}, written
        )

        # Ann completes Algebra (dated a day back, as a date criterion is).
        self.fm.clock = lambda: EPOCH + 1000
        self.fm.complete_course(self.alg, self.ann, when=EPOCH - 86400)
        with self.at(1800):
            self.instance._job_pull_completion()
        done = self.rows()[self.key(self.data["ann"], self.alg)].extra_data
        self.assertEqual(
            done, {"completion": "complete", "completed_at": EPOCH - 86400}
        )
        asked = [p for name, p in self.fm.calls if name == PLUGIN_COMPLETIONS]
        self.assertEqual(asked[0]["since"], str(EPOCH + 900))

    def test_without_the_plugin_only_the_active_are_asked(self):
        with self.at(0):
            self.instance._job_pull_completion()
        # the first run is the day's sweep: every student not complete
        self.assertEqual(self.calls(), {SITE_INFO: 1, STATUS: 3})

        # After a grade pull where nobody went into a course: one call per
        # course with criteria.
        with self.at(900):
            self.instance._job_pull_grades()
        self.assertEqual(self.calls().get(STATUS, 0), 0)
        self.assertEqual(self.calls()[ACCESS], 2)

        # Ben goes into Algebra: he alone is asked.
        self.fm.access_course(self.alg, self.ben_id, EPOCH + 1000)
        self.fm.complete_course(self.alg, self.ben_id)
        with self.at(1800):
            self.instance._job_pull_completion()
        asked = [
            (int(p["courseid"]), int(p["userid"]))
            for n, p in self.fm.calls
            if n == STATUS
        ]
        self.assertEqual(asked, [(self.alg, self.ben_id)])
        ben = self.rows()[self.key(self.ben, self.alg)].extra_data
        self.assertEqual(ben["completion"], "complete")

        # A day later: the sweep asks every student not complete (Ann twice).
        with self.at(86400 + 1800):
            self.instance._job_pull_completion()
        self.assertEqual(self.calls(), {SITE_INFO: 1, STATUS: 2})

    def test_the_watermark_is_written_in_a_transaction_of_its_own(self):
        self.fm.install_plugin()
        instance_class = type(self.instance)
        own = instance_class._moodle_own_transaction
        original_write = instance_class.write
        inside = []
        writes = []

        def spy(instance, work):
            inside.append(True)
            try:
                return own(instance, work)
            finally:
                inside.pop()

        def write(records, vals):
            if "completion_watermark" in vals:
                writes.append(bool(inside))
            return original_write(records, vals)

        with (
            patch.object(instance_class, "_moodle_own_transaction", spy),
            patch.object(instance_class, "write", write),
            self.at(0),
        ):
            self.instance._job_pull_completion()
        self.assertEqual(writes, [True])

    def test_a_failed_run_leaves_the_watermark(self):
        self.fm.install_plugin()
        with self.at(0):
            self.instance._job_pull_completion()
        before = dict(self.instance.completion_watermark)
        self.fm.inject("http503", function=PLUGIN_COMPLETIONS)
        with self.at(900):
            summary = self.instance._job_pull_completion()
        self.assertIn("unreachable", summary)
        self.assertEqual(self.instance.completion_watermark, before)


@tagged("post_install", "-at_install")
class TestAttendanceReads(ReadsCase):
    suffix = "RA"

    def setUp(self):
        super().setUp()
        self.fm.clock = lambda: EPOCH - 3600
        self.attid = self.fm.add_attendance(self.alg, "Attendance")
        self.session = self.fm.add_attendance_session(self.attid, EPOCH - 3600, 3600)
        self.fm.set_attendance_status_by_acronym(self.session, self.ann, "A")
        self.fm.set_attendance_status_by_acronym(self.session, self.ben_id, "L")

    def lines(self):
        return self.env["op.attendance.line"].search(
            [("register_id.subject_id", "=", self.data["subjects"][0].id)]
        )

    def mark_row(self):
        return self.env["moodle.mapping"].search(
            [
                ("instance_id", "=", self.instance.id),
                ("moodle_model", "=", "attendance"),
                ("external_key", "=", service.READS_KEY),
            ]
        )

    def test_with_the_plugin_nothing_new_costs_two_calls(self):
        self.fm.install_plugin()
        with self.at(0):
            summary = self.instance._job_sync_attendance()
        self.assertEqual(self.calls(), {SITE_INFO: 1, PLUGIN_ATTENDANCE_LOGS: 1})
        self.assertIn("2 lines created", summary)
        self.assertIn("1 activities found in Moodle", summary)
        row = self.mark_row()
        self.assertEqual(
            (row.res_model, row.res_id), ("moodle.instance", self.instance.id)
        )
        self.assertEqual(row.extra_data["since"], EPOCH)

        with self.at(1800):
            summary = self.instance._job_sync_attendance()
        self.assertEqual(self.calls(), {SITE_INFO: 1, PLUGIN_ATTENDANCE_LOGS: 1})
        self.assertIn("0 sessions", summary)
        self.assertEqual(self.mark_row().extra_data["since"], EPOCH + 1800)

        # A status taken again in Moodle comes in.
        self.fm.clock = lambda: EPOCH + 2000
        self.fm.set_attendance_status_by_acronym(self.session, self.ann, "P")
        with self.at(3600):
            summary = self.instance._job_sync_attendance()
        self.assertIn("1 updated", summary)
        flags = {line.student_id: line.present for line in self.lines()}
        self.assertEqual(flags, {self.data["ann"]: True, self.ben: False})

    def test_without_the_plugin_an_unchanged_session_is_left_alone(self):
        with self.at(0):
            self.instance._job_sync_attendance()
        self.assertEqual(len(self.lines()), 2)
        with self.at(1800):
            summary = self.instance._job_sync_attendance()
        # one call per activity (and the site info); Algebra's activity is
        # known: not listed; Biology (Ann, no activity known) is listed
        self.assertEqual(
            self.calls(),
            {
                SITE_INFO: 1,
                "mod_attendance_get_sessions": 1,
                "core_course_get_contents": 1,
            },
        )
        listed = [
            int(p["courseid"]) for n, p in self.fm.calls if n.endswith("contents")
        ]
        self.assertEqual(listed, [self.bio])
        self.assertIn("2 unchanged", summary)
        self.assertIn("0 lines created, 0 updated", summary)
        links = self.env["moodle.mapping"].search(
            [
                ("instance_id", "=", self.instance.id),
                ("moodle_model", "=", "attendance"),
                ("res_model", "=", "op.attendance.sheet"),
            ]
        )
        self.assertTrue(links and all(link.extra_data.get("moodle") for link in links))

    def test_a_rolled_back_run_leaves_the_watermark(self):
        self.fm.install_plugin()
        with self.at(0):
            self.instance._job_sync_attendance()
        with self.env.cr.savepoint(flush=True) as savepoint, self.at(1800):
            self.instance._job_sync_attendance()
            self.assertEqual(self.mark_row().extra_data["since"], EPOCH + 1800)
            savepoint.rollback()
        self.env.invalidate_all()
        self.assertEqual(self.mark_row().extra_data["since"], EPOCH)
