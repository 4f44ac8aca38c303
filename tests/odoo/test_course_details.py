"""Course details (summary, dates) and people's contact data, read from
OpenEduCat and pushed: what the reader fills, what Moodle ends up holding, and
what a batch's save enqueues."""

import datetime
import zoneinfo

from odoo.tests import tagged

from odoo.addons.openeducat_moodle.services.push import OdooReader
from odoo.addons.queue_job.tests.common import trap_jobs

from .common import InstitutionCase

KOLKATA = zoneinfo.ZoneInfo("Asia/Kolkata")


def at(day, hour=0, minute=0):
    """A Unix time in Kolkata (the institution's time zone in these tests)."""
    return int(
        datetime.datetime.combine(day, datetime.time(hour, minute), KOLKATA).timestamp()
    )


@tagged("post_install", "-at_install")
class TestCourseDetails(InstitutionCase):
    suffix = "CD"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env.company.partner_id.tz = "Asia/Kolkata"

    def course(self, subject=None):
        subject = subject or self.data["subjects"][0]
        return self.fm.find_course(
            idnumber=f"oec_subj_{subject.id}_course_{self.data['program'].id}"
        )

    def test_courses_carry_a_summary_and_the_batch_dates(self):
        self.instance._job_push()

        course = self.course()
        self.assertEqual(
            course["summary"],
            "<p><strong>Subject:</strong> Algebra CD (ALGCD)</p>"
            "<p><strong>Program:</strong> Program CD (PRGCD)</p>"
            "<p><strong>Department:</strong> Dept CD</p>",
        )
        self.assertEqual(course["summaryformat"], 1)
        # the batch runs from 2026-09-01 to 2027-06-30, days in Kolkata
        self.assertEqual(course["startdate"], at(datetime.date(2026, 9, 1)))
        self.assertEqual(course["enddate"], at(datetime.date(2027, 6, 30), 23, 59))
        with self.no_moodle_write():
            self.instance._job_push()

    def test_the_earliest_start_and_latest_end_of_the_active_batches(self):
        d = self.data
        batches = self.no_export_env["op.batch"]
        batches.create(
            [
                {
                    "name": "Early CD",
                    "code": "EARLYCD",
                    "course_id": d["program"].id,
                    "start_date": "2026-08-17",
                    "end_date": "2027-01-31",
                },
                {
                    "name": "Old CD",
                    "code": "OLDCD",
                    "course_id": d["program"].id,
                    "start_date": "2020-01-01",
                    "end_date": "2030-12-31",
                    "active": False,
                },
            ]
        )

        self.instance._job_push()

        course = self.course()
        self.assertEqual(course["startdate"], at(datetime.date(2026, 8, 17)))
        self.assertEqual(course["enddate"], at(datetime.date(2027, 6, 30), 23, 59))

    # ------------------------------------------------------------ save hooks
    def enqueued(self, trap):
        """``{job method: [args]}`` of the jobs a save enqueued."""
        jobs = {}
        for call in trap.calls:
            jobs.setdefault(call.method.__name__, []).append(call.args)
        return jobs

    def test_new_batch_dates_enqueue_sync_subjects_for_the_program_s_courses(self):
        batch = self.env["op.batch"].browse(self.data["batch"].id)
        for vals in ({"end_date": "2027-07-15"}, {"start_date": "2026-08-20"}):
            with trap_jobs() as trap:
                batch.write(vals)
            trap.assert_enqueued_job(
                self.instance._job_sync_subjects, args=({"op.batch": [batch.id]},)
            )

    def test_a_new_or_archived_batch_enqueues_sync_subjects(self):
        with trap_jobs() as trap:
            batch = self.env["op.batch"].create(
                {
                    "name": "New CD",
                    "code": "NEWCD",
                    "course_id": self.data["program"].id,
                    "start_date": "2026-09-01",
                    "end_date": "2027-06-30",
                }
            )
        self.assertEqual(
            self.enqueued(trap)["_job_sync_subjects"], [({"op.batch": [batch.id]},)]
        )
        with trap_jobs() as trap:
            batch.active = False
        self.assertEqual(
            self.enqueued(trap)["_job_sync_subjects"], [({"op.batch": [batch.id]},)]
        )

    def test_a_batch_rename_enqueues_no_sync_subjects(self):
        batch = self.env["op.batch"].browse(self.data["batch"].id)
        with trap_jobs() as trap:
            batch.write({"name": "Renamed CD"})
        jobs = self.enqueued(trap)
        self.assertNotIn("_job_sync_subjects", jobs)
        self.assertTrue(jobs, "the groups are pushed")

    def test_the_sync_subjects_job_updates_the_program_s_courses(self):
        d = self.data
        self.instance._job_push()
        d["batch"].write({"end_date": "2027-07-15"})  # no export: run it here
        self.fm.reset_calls()

        self.instance._job_sync_subjects({"op.batch": [d["batch"].id]})

        self.assertEqual(self.fm.call_counts["core_course_update_courses"], 1)
        self.assertEqual(self.fm.write_call_count(), 1)
        for subject in d["subjects"]:
            self.assertEqual(
                self.course(subject)["enddate"], at(datetime.date(2027, 7, 15), 23, 59)
            )

    # -------------------------------------------------------------- people
    def contacts(self):
        d = self.data
        d["ann"].partner_id.write(
            {
                "phone": False,
                "mobile": "+91 98765 43210",
                "city": "Pune",
                "country_id": self.env.ref("base.in").id,
                "street": "12 MG Road",
                "street2": "Flat 4",
            }
        )
        d["teacher"].partner_id.write(
            {
                "phone": "+33 4 77 00 00 00",
                "mobile": "+33 6 00 00 00 00",
                "city": "Saint-Étienne",
                "country_id": self.env.ref("base.fr").id,
                "street": False,
                "street2": "Bâtiment B",
            }
        )

    def test_the_reader_fills_the_contact_data(self):
        d = self.data
        self.contacts()

        snapshot, _scope = OdooReader(self.env).snapshot()

        ann = snapshot.students[d["ann"].id]
        self.assertEqual(
            (ann.phone, ann.city, ann.country, ann.address),
            ("+91 98765 43210", "Pune", "IN", "12 MG Road, Flat 4"),
        )
        eve = snapshot.faculty[d["teacher"].id]
        self.assertEqual(
            (eve.phone, eve.city, eve.country, eve.address),
            ("+33 4 77 00 00 00", "Saint-Étienne", "FR", "Bâtiment B"),
        )
        nomail = snapshot.students[d["nomail"].id]
        self.assertEqual(
            (nomail.phone, nomail.city, nomail.country, nomail.address),
            (None, None, None, None),
        )
        self.assertEqual(snapshot.tz, "Asia/Kolkata")
        batch = snapshot.batches[d["batch"].id]
        self.assertEqual(
            (batch.start_date, batch.end_date),
            (datetime.date(2026, 9, 1), datetime.date(2027, 6, 30)),
        )

    def test_people_s_contact_data_reaches_moodle(self):
        d = self.data
        self.contacts()

        self.instance._job_push()

        ann = self.fm.find_user(idnumber=f"oec_student_{d['ann'].id}")
        self.assertEqual(
            {k: ann[k] for k in ("phone1", "city", "country", "address")},
            {
                "phone1": "+91 98765 43210",
                "city": "Pune",
                "country": "IN",
                "address": "12 MG Road, Flat 4",
            },
        )
        eve = self.fm.find_user(idnumber=f"oec_faculty_{d['teacher'].id}")
        self.assertEqual(
            (eve["phone1"], eve["city"], eve["country"], eve["address"]),
            ("+33 4 77 00 00 00", "Saint-Étienne", "FR", "Bâtiment B"),
        )
        with self.no_moodle_write():
            self.instance._job_push()

    def test_a_changed_city_is_pushed_again(self):
        d = self.data
        self.contacts()
        self.instance._job_push()
        d["ann"].partner_id.city = "Mumbai"
        self.fm.reset_calls()

        self.instance._job_push(["users"], {"op.student": [d["ann"].id]})

        (sent,) = [
            user
            for f, params in self.fm.calls
            if f == "core_user_update_users"
            for user in params["users"]
        ]
        self.assertEqual(sent["city"], "Mumbai")
        ann = self.fm.find_user(idnumber=f"oec_student_{d['ann'].id}")
        self.assertEqual(ann["city"], "Mumbai")

    # --------------------------------------------------------------- drift
    def test_the_drift_check_finds_details_edited_in_moodle(self):
        d = self.data
        self.contacts()
        self.instance._job_push()
        course = self.course()
        pushed = dict(course)
        course.update(summary="<p>Edited in Moodle</p>", enddate=0)
        ann = self.fm.find_user(idnumber=f"oec_student_{d['ann'].id}")
        self.fm.users[ann["id"]]["country"] = "LK"

        with trap_jobs() as trap:
            summary = self.instance._job_drift_check()
            trap.perform_enqueued_jobs()

        self.assertIn(
            f"oec_subj_{d['subjects'][0].id}_course_{d['program'].id}: "
            "changed in Moodle: summary, enddate",
            summary,
        )
        self.assertIn(f"oec_student_{d['ann'].id}: changed in Moodle: country", summary)
        course = self.course()
        self.assertEqual(
            (course["summary"], course["enddate"]),
            (pushed["summary"], pushed["enddate"]),
        )
        self.assertEqual(self.fm.users[ann["id"]]["country"], "IN")
