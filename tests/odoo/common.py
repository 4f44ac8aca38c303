"""Base class of the Odoo layer: a Moodle instance backed by the simulator."""

import contextlib

import responses

from odoo.tests.common import TransactionCase, _super_send

from tests.fake_moodle import FakeMoodle

MOODLE_HOST = "moodle.test"
BASE_URL = f"https://{MOODLE_HOST}"
TOKEN = "simtoken"


class MoodleCase(TransactionCase):
    """A ``moodle.instance`` whose URL the Moodle simulator answers.

    Odoo's test case blocks outgoing HTTP before ``responses`` sees it; the
    requests for the fake host are forwarded to the real ``Session.send``,
    where ``responses`` (and behind it the simulator) answers.
    """

    @classmethod
    def _request_handler(cls, s, r, /, **kw):
        if r.url.startswith(BASE_URL + "/"):
            return _super_send(s, r, **kw)
        return super()._request_handler(s, r, **kw)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=True))
        cls.instance = cls.env["moodle.instance"].create(
            {"name": "Test Moodle", "base_url": BASE_URL, "token": TOKEN}
        )

    def setUp(self):
        super().setUp()
        self.fm = FakeMoodle(token=TOKEN)
        # Not enterContext: Odoo 17 also runs on Python 3.10, which lacks it.
        mock = responses.RequestsMock(assert_all_requests_are_fired=False)
        rsps = mock.__enter__()
        self.addCleanup(mock.__exit__, None, None, None)
        self.fm.install(rsps, base_url=BASE_URL)

    @contextlib.contextmanager
    def no_moodle_write(self):
        before = self.fm.write_call_count()
        yield
        self.assertEqual(self.fm.write_call_count(), before, "a write call was made")


class InstitutionCase(MoodleCase):
    """A MoodleCase with a small institution of its own, served alone by the
    instance (OpenEduCat's demo data stays out of Moodle)."""

    suffix = "T"
    # A second student, Ben, enrolled in the first subject only.
    with_ben = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.no_export_env = cls.env(
            context=dict(cls.env.context, connector_no_export=True)
        )
        d = cls.data = make_institution(env, cls.suffix)
        cls.instance.department_ids = d["dept"]
        if cls.with_ben:
            cls.ben = env["op.student"].create(
                {
                    "name": "Ben Ode",
                    "first_name": "Ben",
                    "last_name": "Ode",
                    "email": f"ben.{cls.suffix.lower()}@uni.test",
                }
            )
            env["op.student.course"].create(
                {
                    "student_id": cls.ben.id,
                    "course_id": d["program"].id,
                    "batch_id": d["batch"].id,
                    "subject_ids": [(6, 0, d["subjects"][:1].ids)],
                }
            )


def make_institution(env, suffix="T"):
    """A small institution of its own: one department tree, one program with
    three subjects, a batch, two students (one without email) and a teacher."""
    dept_root = env["op.department"].create({"name": f"Faculty {suffix}", "code": "F"})
    dept = env["op.department"].create(
        {"name": f"Dept {suffix}", "code": "D", "parent_id": dept_root.id}
    )
    subjects = env["op.subject"].create(
        [
            {"name": f"Algebra {suffix}", "code": f"ALG{suffix}"},
            {"name": f"Biology {suffix}", "code": f"BIO{suffix}"},
            {"name": f"Chemistry {suffix}", "code": f"CHE{suffix}"},
        ]
    )
    program = env["op.course"].create(
        {
            "name": f"Program {suffix}",
            "code": f"PRG{suffix}",
            "department_id": dept.id,
            "subject_ids": [(6, 0, subjects.ids)],
        }
    )
    batch = env["op.batch"].create(
        {
            "name": f"Batch {suffix}",
            "code": f"BAT{suffix}",
            "course_id": program.id,
            "start_date": "2026-09-01",
            "end_date": "2027-06-30",
        }
    )
    ann, nomail = env["op.student"].create(
        [
            {
                "name": "Ann Lee",
                "first_name": "Ann",
                "last_name": "Lee",
                "email": f"ann.{suffix.lower()}@uni.test",
            },
            {"name": "No Mail", "first_name": "No", "last_name": "Mail"},
        ]
    )
    teacher = env["op.faculty"].create(
        {
            "name": "Eve Qi",
            "first_name": "Eve",
            "last_name": "Qi",
            "email": f"eve.{suffix.lower()}@uni.test",
            "birth_date": "1980-01-01",
            "gender": "female",
            "faculty_subject_ids": [(6, 0, subjects[:1].ids)],
            "main_department_id": dept.id,
        }
    )
    enrolments = env["op.student.course"].create(
        [
            {
                "student_id": ann.id,
                "course_id": program.id,
                "batch_id": batch.id,
                "subject_ids": [(6, 0, subjects[:2].ids)],
            },
            {"student_id": nomail.id, "course_id": program.id, "batch_id": batch.id},
        ]
    )
    return {
        "dept_root": dept_root,
        "dept": dept,
        "subjects": subjects,
        "program": program,
        "batch": batch,
        "ann": ann,
        "nomail": nomail,
        "teacher": teacher,
        "enrolments": enrolments,
    }
