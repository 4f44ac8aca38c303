"""A full push in parallel jobs (issue 15, item 5).

The first classes run in the test's transaction: the jobs are real
``queue.job`` rows, run one by one as queue_job's runner does (started,
performed, done, then the jobs waiting for them released). The last one
commits an institution and runs two parts at once on two real cursors, as two
workers would.
"""

import os
from unittest.mock import patch

import responses

from odoo import SUPERUSER_ID, api
from odoo.tests import tagged
from odoo.tests.common import _super_send

from odoo.addons.openeducat_moodle.models.moodle_instance_parallel import (
    PARTS_PARAM,
    THRESHOLD_PARAM,
)
from odoo.addons.queue_job.exception import RetryableJobError
from odoo.addons.queue_job.job import Job

from tests.fake_moodle import FakeMoodle

from .common import BASE_URL, TOKEN, InstitutionCase, MoodleCase, make_institution

OTHER_URL = "https://moodle2.test"


def moodle_state(fm):
    """What Moodle holds, by idnumber (Moodle ids aside)."""
    cats = {c["id"]: c for c in fm.categories.values()}
    courses = {c["id"]: c for c in fm.courses.values() if c["id"] != 1}
    users = {u["id"]: u for u in fm.users.values() if u.get("idnumber")}
    enrolments = sorted(
        (users[e["userid"]]["idnumber"], courses[e["courseid"]]["idnumber"])
        for e in fm.enrolments.values()
        if e["userid"] in users and e["courseid"] in courses
    )
    roles = sorted(
        (u["idnumber"], c["idnumber"], role)
        for c in courses.values()
        for u in users.values()
        for role in fm.enrolled_roles(c["id"], u["id"])
    )
    groups = sorted(
        (
            g["idnumber"],
            courses[g["courseid"]]["idnumber"],
            tuple(sorted(users[m]["idnumber"] for m in fm.group_members(g["id"]))),
        )
        for g in fm.groups.values()
    )
    return {
        "categories": sorted(c["idnumber"] for c in cats.values() if c["idnumber"]),
        "courses": sorted(c["idnumber"] for c in courses.values()),
        "users": sorted(
            (u["idnumber"], u["username"], u["email"]) for u in users.values()
        ),
        "enrolments": enrolments,
        "roles": roles,
        "groups": groups,
    }


def sent(fm, function, records):
    """The records sent to ``function``, sorted (Moodle ids aside)."""
    return sorted(
        str(sorted((k, v) for k, v in record.items() if not k.endswith("id")))
        for name, params in fm.calls
        if name == function
        for record in params[records]
    )


def add_students(env, data, count, suffix):
    """More students in the institution's program and batch."""
    students = env["op.student"].create(
        [
            {
                "name": f"Stu{n} {suffix}",
                "first_name": f"Stu{n}",
                "last_name": suffix,
                "email": f"stu{n}.{suffix.lower()}@uni.test",
            }
            for n in range(count)
        ]
    )
    env["op.student.course"].create(
        [
            {
                "student_id": student.id,
                "course_id": data["program"].id,
                "batch_id": data["batch"].id,
                "subject_ids": [(6, 0, data["subjects"][: 1 + n % 3].ids)],
            }
            for n, student in enumerate(students)
        ]
    )
    return students


def part_jobs(env, instance, states=None):
    domain = [("identity_key", "=like", f"moodle:{instance.id}:push_part:%")]
    if states:
        domain.append(("state", "in", states))
    return env["queue.job"].search(domain, order="id")


def run_job(env, record, commit=None):
    """One job as queue_job's runner runs it: started, performed, done, then
    the jobs that waited for it released (``commit``: between those steps,
    as the runner does; none inside the test's transaction)."""
    job = Job.load(env, record.uuid)
    job.set_started()
    job.store()
    job.perform()
    job.set_done()
    job.store()
    env.flush_all()
    if commit:
        commit()
    job.enqueue_waiting()
    if commit:
        commit()
    env["queue.job"].invalidate_model()
    return job.result


def part_of(record):
    return record.args[1]


class ParallelCase(InstitutionCase):
    suffix = "P"

    @classmethod
    def _request_handler(cls, s, r, /, **kw):
        # A second simulated Moodle, for a push of the same data in one job.
        if r.url.startswith(OTHER_URL + "/"):
            return _super_send(s, r, **kw)
        return super()._request_handler(s, r, **kw)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.more = add_students(cls.no_export_env, cls.data, 7, cls.suffix)
        cls.instance.batch_size = 2

    def setUp(self):
        super().setUp()
        params = self.env["ir.config_parameter"].sudo()
        params.set_param(PARTS_PARAM, "2")
        params.set_param(THRESHOLD_PARAM, "1")

    def run_all(self):
        """Run the parts as the runner would: whatever is pending, until
        nothing is; returns the parts in the order they ran."""
        order = []
        while True:
            pending = part_jobs(self.env, self.instance, ["pending"])
            if not pending:
                return order
            for record in pending:
                run_job(self.env, record)
                order.append(part_of(record))

    def push_run(self):
        return self.env["moodle.sync.run"].search(
            [("instance_id", "=", self.instance.id), ("kind", "=", "push")]
        )


@tagged("post_install", "-at_install")
class TestSplit(ParallelCase):
    def test_a_first_push_splits_into_jobs_in_dependency_order(self):
        summary = self.instance._job_push()
        self.assertIn("Goes on in 5 parts", summary)
        run = self.push_run()
        self.assertEqual(run.state, "running")
        # The structure is in Moodle; nothing else yet.
        self.assertEqual(len(self.fm.courses) - 1, 3)
        self.assertFalse([u for u in self.fm.users.values() if u.get("idnumber")])
        jobs = part_jobs(self.env, self.instance)
        by_part = {part_of(j): j for j in jobs}
        self.assertEqual(
            sorted(by_part), ["courses-1", "courses-2", "last", "users-1", "users-2"]
        )
        self.assertEqual(len(set(jobs.mapped("graph_uuid"))), 1)
        self.assertEqual(set(jobs.mapped("channel")), {"root.moodle"})

        def parents(key):
            uuids = by_part[key].dependencies["depends_on"]
            return sorted(part_of(j) for j in jobs if j.uuid in uuids)

        self.assertEqual(parents("users-1"), [])
        self.assertEqual(parents("users-2"), [])
        for key in ("courses-1", "courses-2"):
            self.assertEqual(parents(key), ["users-1", "users-2"])
            self.assertEqual(by_part[key].state, "wait_dependencies")
        self.assertEqual(parents("last"), ["courses-1", "courses-2"])
        # The parts' records: disjoint, all of them.
        plan = {p["key"]: p for p in run.parallel_plan["parts"]}
        users = plan["users-1"]["users"] + plan["users-2"]["users"]
        self.assertEqual(len(users), len(set(users)))
        self.assertEqual(len(users), 10)  # 9 students, a teacher
        courses = plan["courses-1"]["courses"] + plan["courses-2"]["courses"]
        self.assertEqual(len(courses), len(set(courses)))
        self.assertEqual(len(courses), 3)
        order = self.run_all()
        self.assertEqual(sorted(order[:2]), ["users-1", "users-2"])
        self.assertEqual(sorted(order[2:4]), ["courses-1", "courses-2"])
        self.assertEqual(order[4:], ["last"])
        self.assertEqual(set(jobs.mapped("state")), {"done"})

    def test_the_parts_give_moodle_what_one_job_gives(self):
        other_fm = FakeMoodle(token=TOKEN)
        mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        rsps = mock.__enter__()
        self.addCleanup(mock.__exit__, None, None, None)
        self.fm.install(rsps, base_url=BASE_URL)
        other_fm.install(rsps, base_url=OTHER_URL)
        other = self.instance.copy(
            {"name": "Single job", "base_url": OTHER_URL, "token": TOKEN}
        )
        other.department_ids = self.instance.department_ids
        self.instance._job_push()
        self.run_all()
        params = self.env["ir.config_parameter"].sudo()
        params.set_param(PARTS_PARAM, "1")
        other._job_push()
        self.assertFalse(part_jobs(self.env, other))
        self.assertEqual(moodle_state(self.fm), moodle_state(other_fm))
        state = moodle_state(self.fm)
        self.assertEqual(len(state["users"]), 9)  # one student has no email
        self.assertEqual(len(state["enrolments"]), len(set(state["enrolments"])))
        self.assertTrue(state["groups"])

        def rows(instance):
            return sorted(
                (m.moodle_model, m.external_key, m.state, bool(m.moodle_id))
                for m in self.env["moodle.mapping"].search(
                    [("instance_id", "=", instance.id)]
                )
            )

        self.assertEqual(rows(self.instance), rows(other))
        # Each record was sent once: the records of one job's creates.
        for name, records in (
            ("core_user_create_users", "users"),
            ("enrol_manual_enrol_users", "enrolments"),
            ("core_group_add_group_members", "members"),
        ):
            self.assertEqual(
                sent(self.fm, name, records), sent(other_fm, name, records)
            )
            self.assertTrue(sent(self.fm, name, records))

    def test_a_part_runs_again_without_sending_anything(self):
        self.instance._job_push()
        for record in part_jobs(self.env, self.instance, ["pending"]):
            run_job(self.env, record)
        course = part_jobs(self.env, self.instance, ["pending"])[0]
        run_job(self.env, course)
        # Its first attempt trusted that the new courses had no groups.
        self.assertEqual(self.fm.call_counts["core_group_get_course_groups"], 0)
        with self.no_moodle_write():
            self.instance._job_push_part(course.args[0], part_of(course))
        # A worker made the groups and died before storing them: the rerun
        # looks them up and adopts them, it does not make them twice.
        groups = self.env["moodle.mapping"].search(
            [("instance_id", "=", self.instance.id), ("moodle_model", "=", "group")]
        )
        made = len(self.fm.groups)
        self.assertTrue(groups)
        groups.unlink()
        self.instance._job_push_part(course.args[0], part_of(course))
        self.assertTrue(self.fm.call_counts["core_group_get_course_groups"])
        self.assertEqual(len(self.fm.groups), made)

    def test_the_run_log_shows_one_push_that_sums_its_parts(self):
        self.instance._job_push()
        run = self.push_run()
        self.assertEqual(self.instance.last_run_id, run)
        self.instance.last_sync_date = False
        self.run_all()
        self.assertEqual(len(self.push_run()), 1)
        self.assertEqual(run.state, "done")
        parts = run.part_run_ids
        self.assertEqual(
            sorted(parts.mapped("part_key")),
            ["courses-1", "courses-2", "last", "users-1", "users-2"],
        )
        self.assertEqual(set(parts.mapped("kind")), {"push_part"})
        plan_own = run.parallel_plan["own"]
        for name in ("created", "unchanged", "failed", "blocked"):
            self.assertEqual(
                getattr(run, name),
                plan_own[name] + sum(parts.mapped(name)),
                name,
            )
        self.assertEqual(run.calls, sum(self.fm.call_counts.values()))
        # 9 accounts, 3 groups, the enrolments: created by the parts.
        self.assertGreaterEqual(sum(parts.mapped("created")), 9 + 3 + 13)
        self.assertIn("users-1: users:", run.message)
        self.assertTrue(self.instance.last_sync_date)
        self.instance.invalidate_recordset()
        self.assertEqual(self.instance.last_run_id, run)
        self.assertEqual(self.instance.last_push_state, "done")

    def test_a_part_failing_part_way_is_retried_alone(self):
        self.instance._job_push()
        users = part_jobs(self.env, self.instance, ["pending"])
        failing, other = users
        # The part's second batch of accounts meets an outage.
        self.fm.inject("drop", times=1000, function="core_user_create_users", after=1)
        run_job(self.env, failing)
        created = len([u for u in self.fm.users.values() if u.get("idnumber")])
        self.assertEqual(created, 2)  # its first batch is in Moodle...
        kept = self.env["moodle.mapping"].search(
            [
                ("instance_id", "=", self.instance.id),
                ("moodle_model", "=", "user"),
                ("state", "=", "synced"),
            ]
        )
        self.assertEqual(len(kept), 2)  # ...and stored
        failed = self.push_run().part_run_ids
        self.assertEqual(failed.mapped("state"), ["failed"])
        again = part_jobs(self.env, self.instance, ["pending"]) - other
        self.assertEqual(len(again), 1)
        self.assertEqual(part_of(again), part_of(failing))
        self.assertTrue(again.identity_key.startswith(failing.identity_key))
        self.assertGreaterEqual(again.eta, self.instance.backoff_until)
        courses = part_jobs(self.env, self.instance, ["wait_dependencies"]).filtered(
            lambda j: part_of(j).startswith("courses")
        )
        for job in courses:
            self.assertIn(again.uuid, job.dependencies["depends_on"])
        # Moodle answers again; the other part and the retry run.
        self.fm.faults.clear()
        self.instance.write({"backoff_until": False, "failure_streak": 0})
        run_job(self.env, other)
        self.assertEqual(set(courses.mapped("state")), {"wait_dependencies"})
        run_job(self.env, again)
        self.assertEqual(set(courses.mapped("state")), {"pending"})
        self.run_all()
        state = moodle_state(self.fm)
        self.assertEqual(len(state["users"]), 9)
        self.assertEqual(len({u[0] for u in state["users"]}), 9)
        run = self.push_run()
        self.assertEqual(run.state, "done")
        # Only the failing part ran twice.
        keys = sorted(run.part_run_ids.mapped("part_key"))
        self.assertEqual(keys.count(part_of(failing)), 2)
        self.assertEqual(len(keys), 6)

    def test_other_pushes_wait_while_parts_are_to_run(self):
        self.instance._job_push()
        student = self.data["ann"]
        # A save hook's push, another full push, a drift check: they wait,
        # without burning a retry.
        for job in (
            lambda: self.instance._job_push(None, {"op.student": [student.id]}),
            lambda: self.instance._job_push(),
            lambda: self.instance._job_drift_check(),
        ):
            with self.assertRaises(RetryableJobError) as caught:
                job()
            self.assertTrue(caught.exception.ignore_retry)
        # Another instance is not held up.
        other = self.env["moodle.instance"].create(
            {"name": "Other", "base_url": BASE_URL, "token": TOKEN}
        )
        other.department_ids = self.env["op.department"].create(
            {"name": "Other P", "code": "OP"}
        )
        self.assertIn("departments: 1 created", other._job_push())
        # Once the parts have run, pushes run again.
        self.run_all()
        self.assertIn(
            "users:", self.instance._job_push(None, {"op.student": [student.id]})
        )

    def test_a_part_failed_for_good_does_not_hold_the_instance(self):
        self.instance._job_push()
        first, second = part_jobs(self.env, self.instance, ["pending"])
        job = Job.load(self.env, first.uuid)
        job.set_failed(exc_info="max retries")
        job.store()
        # The next full push runs (it does not wait for a graph that cannot
        # go on), closes the stopped push and starts again.
        summary = self.instance._job_push()
        self.assertIn("Goes on", summary)
        new, old = self.push_run()
        self.assertEqual(old.state, "interrupted")
        self.assertEqual(new.state, "running")
        # What is left of the old push does nothing.
        with self.no_moodle_write():
            self.assertIn("has ended", run_job(self.env, second))


@tagged("post_install", "-at_install")
class TestWhenToSplit(ParallelCase):
    def test_little_to_create_stays_one_job(self):
        self.env["ir.config_parameter"].sudo().set_param(THRESHOLD_PARAM, "1000")
        summary = self.instance._job_push()
        self.assertNotIn("Goes on", summary)
        self.assertFalse(part_jobs(self.env, self.instance))
        self.assertEqual(self.push_run().state, "done")
        # Nothing left to create: one job even at the lowest threshold.
        self.env["ir.config_parameter"].sudo().set_param(THRESHOLD_PARAM, "1")
        with self.no_moodle_write():
            self.instance._job_push()
        self.assertFalse(part_jobs(self.env, self.instance))

    def test_a_push_of_some_records_is_one_job(self):
        student = self.data["ann"]
        self.instance._job_push(None, {"op.student": [student.id]})
        self.assertFalse(part_jobs(self.env, self.instance))

    def test_the_channels_capacity_sets_the_parts(self):
        params = self.env["ir.config_parameter"].sudo()
        params.set_param(PARTS_PARAM, "")
        for channels, parts in (
            ("root:6,root.moodle:4", 4),
            ("root:4,moodle:3", 3),
            ("root:2", 1),
        ):
            with patch.dict(os.environ, {"ODOO_QUEUE_JOB_CHANNELS": channels}):
                self.assertEqual(self.instance._moodle_push_parts(), parts)
        with patch.dict(os.environ, {"ODOO_QUEUE_JOB_CHANNELS": "root:2"}):
            self.assertNotIn("Goes on", self.instance._job_push())
        self.assertFalse(part_jobs(self.env, self.instance))


@tagged("post_install", "-at_install")
class TestPartsAtOnce(MoodleCase):
    """Two parts at once, on two real cursors, on a committed institution."""

    def setUp(self):
        super().setUp()
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {"connector_no_export": True})
            data = make_institution(env, "Q")
            more = add_students(env, data, 7, "Q")
            instance = env["moodle.instance"].create(
                {
                    "name": "Committed Moodle",
                    "base_url": BASE_URL,
                    "token": TOKEN,
                    "batch_size": 2,
                    "department_ids": [(6, 0, data["dept"].ids)],
                }
            )
            params = env["ir.config_parameter"].sudo()
            params.set_param(PARTS_PARAM, "2")
            params.set_param(THRESHOLD_PARAM, "1")
        self.committed_id = instance.id
        self.data = {k: (v._name, v.ids) for k, v in data.items()}
        self.data["more"] = ("op.student", more.ids)
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {"connector_no_export": True})
            env["queue.job"].search(
                [("identity_key", "=like", f"moodle:{self.committed_id}:%")]
            ).unlink()
            env["moodle.instance"].browse(self.committed_id).unlink()
            students = env["op.student"].browse(
                self.data["more"][1] + self.data["ann"][1] + self.data["nomail"][1]
            )
            env["op.student.course"].search(
                [("student_id", "in", students.ids)]
            ).unlink()
            faculty = env["op.faculty"].browse(self.data["teacher"][1])
            partners = students.partner_id | faculty.partner_id
            students.unlink()
            faculty.unlink()
            partners.unlink()
            for key in ("batch", "program", "subjects", "dept", "dept_root"):
                model, ids = self.data[key]
                env[model].browse(ids).unlink()
            params = env["ir.config_parameter"].sudo()
            params.search([("key", "in", [PARTS_PARAM, THRESHOLD_PARAM])]).unlink()

    def worker(self):
        cr = self.registry.cursor()
        self.addCleanup(cr.close)
        env = api.Environment(cr, SUPERUSER_ID, {})
        return cr, env

    def jobs(self, env, state):
        instance = env["moodle.instance"].browse(self.committed_id)
        return part_jobs(env, instance, [state])

    def test_two_parts_at_once_write_what_one_job_would(self):
        cr, env = self.worker()
        env["moodle.instance"].browse(self.committed_id)._job_push()
        cr.commit()
        for _stage in ("users", "courses"):
            cr_a, env_a = self.worker()
            cr_b, env_b = self.worker()
            first, second = self.jobs(env_a, "pending")
            # A's job starts (its snapshot, its shared lock)...
            instance_a = env_a["moodle.instance"].browse(self.committed_id)
            self.assertTrue(instance_a._moodle_try_lock("push_part"))
            # ...a save hook's push cannot start meanwhile...
            cr_c, env_c = self.worker()
            hook = env_c["moodle.instance"].browse(self.committed_id)
            with self.assertRaises(RetryableJobError):
                hook._job_push(None, {"op.student": self.data["ann"][1]})
            cr_c.rollback()
            # ...B runs its part whole and commits while A holds the lock...
            run_job(env_b, env_b["queue.job"].browse(second.id), cr_b.commit)
            # ...then A runs its part and commits: no conflict.
            run_job(env_a, env_a["queue.job"].browse(first.id), cr_a.commit)
        cr, env = self.worker()
        # Between two jobs of the push, no lock is held: a hook's push still
        # waits for the parts.
        hook = env["moodle.instance"].browse(self.committed_id)
        with self.assertRaises(RetryableJobError):
            hook._job_push(None, {"op.student": self.data["ann"][1]})
        cr.rollback()
        (last,) = self.jobs(env, "pending")
        run_job(env, last, cr.commit)
        state = moodle_state(self.fm)
        self.assertEqual(len(state["users"]), 9)
        self.assertEqual(len({u[0] for u in state["users"]}), 9)
        self.assertEqual(len(state["enrolments"]), len(set(state["enrolments"])))
        self.assertEqual(len(state["groups"]), 3)
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            run = env["moodle.sync.run"].search(
                [("instance_id", "=", self.committed_id), ("kind", "=", "push")]
            )
            self.assertEqual(run.state, "done")
            self.assertEqual(len(run.part_run_ids), 5)
            rows = env["moodle.mapping"].search(
                [("instance_id", "=", self.committed_id)]
            )
            keys = rows.mapped(lambda m: (m.moodle_model, m.external_key))
            self.assertEqual(len(keys), len(set(keys)))
            self.assertEqual(len(rows.filtered(lambda m: m.moodle_model == "user")), 10)
            instance = env["moodle.instance"].browse(self.committed_id)
            self.assertEqual(instance.last_run_id, run)
            # After the push, a hook's push runs at once.
            summary = instance._job_push(None, {"op.student": self.data["ann"][1]})
            self.assertIn("users:", summary)
            cr.rollback()
