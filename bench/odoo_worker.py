"""The Odoo side of the benchmark; runs under Odoo's own Python.

``python -m bench.odoo_worker STEP --config C --db D ...`` with STEP:

* ``clone``: copy the template database (``--template``) to ``--db`` and
  update ``openeducat_moodle`` there to the code on disk;
* ``generate``: create the institution as OpenEduCat records and a
  ``moodle.instance`` pointing at the simulator, and commit;
* ``phases``: run the five phases through the addon's job methods, commit
  after each as queue_job does, and write the measurements as JSON;
* ``chaos``: the Odoo-mode chaos run (``bench/chaos_odoo.py``) on ``--db``
  at ``--rate``, writing its result as JSON;
* ``drop``: drop ``--db``.

``generate`` and ``phases`` are separate processes so that the peak memory
of the phases is the connector's, not the data generator's.
"""

import argparse
import collections
import dataclasses
import datetime
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import requests

from bench import generate
from bench.measure import Meter

CTX = {
    "tracking_disable": True,
    "connector_no_export": True,
    "mail_create_nolog": True,
    "mail_notrack": True,
    "no_reset_password": True,
}
CHUNK = 2000
# Parts per stage of a parallel full push (moodle_instance_parallel.py): 1
# (one job, as before) unless ``--workers`` asks for more.
PARTS_PARAM = "openeducat_moodle.push_parts"


def _odoo(config, log_level="warn"):
    import odoo
    from odoo.tools import config as odoo_config

    odoo_config.parse_config(["-c", config, f"--log-level={log_level}"])
    return odoo


def _env(odoo, db):
    registry = odoo.modules.registry.Registry(db)
    cr = registry.cursor()
    env = odoo.api.Environment(cr, odoo.SUPERUSER_ID, dict(CTX))
    return cr, env


def _create(env, model, vals_list):
    records = env[model].browse()
    for start in range(0, len(vals_list), CHUNK):
        records |= env[model].create(vals_list[start : start + CHUNK])
    return records


def step_generate(args, odoo):
    preset = generate.PRESETS[args.preset]
    snap = generate.build(preset)
    cr, env = _env(odoo, args.db)
    log = _logger(args)
    dept_ids = {}
    for dept in sorted(
        snap.departments.values(), key=lambda d: (_depth(snap, d), d.id)
    ):
        record = env["op.department"].create(
            {
                "name": dept.name,
                "code": dept.code,
                "parent_id": dept_ids.get(dept.parent_id, False),
            }
        )
        dept_ids[dept.id] = record.id
    subjects = list(snap.subjects.values())
    subject_ids = dict(
        zip(
            [s.id for s in subjects],
            _create(
                env,
                "op.subject",
                [
                    {
                        "name": s.name,
                        "code": s.code,
                        "department_id": dept_ids[s.department_id],
                    }
                    for s in subjects
                ],
            ).ids,
            strict=True,
        )
    )
    programs = list(snap.programs.values())
    program_ids = dict(
        zip(
            [p.id for p in programs],
            _create(
                env,
                "op.course",
                [
                    {
                        "name": p.name,
                        "code": p.code,
                        "department_id": dept_ids[p.department_id],
                        "subject_ids": [
                            (6, 0, [subject_ids[s] for s in p.subject_ids])
                        ],
                    }
                    for p in programs
                ],
            ).ids,
            strict=True,
        )
    )
    today = datetime.date.today()
    batches = list(snap.batches.values())
    batch_ids = dict(
        zip(
            [b.id for b in batches],
            _create(
                env,
                "op.batch",
                [
                    {
                        "name": b.name,
                        "code": b.code,
                        "course_id": program_ids[b.course_id],
                        "start_date": today - datetime.timedelta(days=60),
                        "end_date": today + datetime.timedelta(days=300),
                    }
                    for b in batches
                ],
            ).ids,
            strict=True,
        )
    )
    log(f"structure: {len(subjects)} subjects, {len(programs)} programs")
    students = list(snap.students.values())
    student_ids = dict(
        zip(
            [s.id for s in students],
            _create(
                env,
                "op.student",
                [
                    {
                        "name": f"{s.first_name} {s.last_name}",
                        "first_name": s.first_name,
                        "last_name": s.last_name,
                        "email": s.email,
                        "gender": "m",
                    }
                    for s in students
                ],
            ).ids,
            strict=True,
        )
    )
    log(f"{len(students)} students")
    faculty = list(snap.faculty.values())
    _create(
        env,
        "op.faculty",
        [
            {
                "name": f"{f.first_name} {f.last_name}",
                "first_name": f.first_name,
                "last_name": f.last_name,
                "email": f.email,
                "gender": "female",
                "birth_date": datetime.date(1980, 1, 1),
                "main_department_id": dept_ids[f.department_id],
                "faculty_subject_ids": [
                    (6, 0, [subject_ids[s] for s in f.subject_ids])
                ],
            }
            for f in faculty
        ],
    )
    enrolments = list(snap.enrolments.values())
    _create(
        env,
        "op.student.course",
        [
            {
                "student_id": student_ids[e.student_id],
                "course_id": program_ids[e.course_id],
                "batch_id": batch_ids[e.batch_id],
                "subject_ids": [(6, 0, [subject_ids[s] for s in e.subject_ids])],
            }
            for e in enrolments
        ],
    )
    log(f"{len(faculty)} faculty, {len(enrolments)} student-course rows")
    env["moodle.instance"].create(
        {
            "name": "Benchmark",
            # The template database holds OpenEduCat's demo data: serve the
            # benchmark's departments only.
            "department_ids": [(6, 0, list(dept_ids.values()))],
            "base_url": args.url,
            "token": args.token,
            "batch_size": args.batch_size,
            "sync_attendance": False,
        }
    )
    # The clone's configuration may give root.moodle a capacity: the runs
    # push in one job unless --workers asks for parts.
    env["ir.config_parameter"].sudo().set_param(PARTS_PARAM, "1")
    cr.commit()
    cr.close()


def _depth(snap, dept):
    depth, parent = 0, dept.parent_id
    while parent:
        depth += 1
        parent = snap.departments[parent].parent_id
    return depth


def _logger(args):
    def log(text):
        print(f"  [odoo] {text}", file=sys.stderr, flush=True)

    return log


def _served(snap, departments):
    """The part of the snapshot an instance serving ``departments`` pushes."""
    programs = {
        k: p for k, p in snap.programs.items() if p.department_id in departments
    }
    subjects = {s for p in programs.values() for s in p.subject_ids}
    enrolments = {k: e for k, e in snap.enrolments.items() if e.course_id in programs}
    students = {e.student_id for e in enrolments.values()}
    return dataclasses.replace(
        snap,
        departments={k: d for k, d in snap.departments.items() if k in departments},
        programs=programs,
        batches={k: b for k, b in snap.batches.items() if b.course_id in programs},
        students={k: s for k, s in snap.students.items() if k in students},
        faculty={
            k: f
            for k, f in snap.faculty.items()
            if f.department_id in departments or subjects & set(f.subject_ids)
        },
        enrolments=enrolments,
    )


def _apply_change(env, snap, changed):
    """Write the 1 % change through the ORM (no job enqueued)."""
    for sid in changed["students"]:
        row = snap.students[sid]
        env["op.student"].browse(sid).write({"last_name": row.last_name})
    for fid in changed["faculty"]:
        row = snap.faculty[fid]
        env["op.faculty"].browse(fid).write({"last_name": row.last_name})
    for sid in changed["subjects"]:
        env["op.subject"].browse(sid).write({"name": snap.subjects[sid].name})
    for eid in changed["enrolments"]:
        env["op.student.course"].browse(eid).write(
            {"batch_id": snap.enrolments[eid].batch_id}
        )


def _naive(odoo):
    """Make the addon push like a simple connector: no hash skip."""
    from odoo.addons.openeducat_moodle.services import push as service
    from odoo.addons.openeducat_moodle.sync import push as core

    class NaivePushSync(core.PushSync):
        def plan(self, item):
            action, reason = super().plan(item)
            if action == core.UNCHANGED:
                return core.UPDATE, None
            return action, reason

    service.PushSync = NaivePushSync


def _naive_grades():
    """One gradebook call per student instead of one per course."""
    from odoo.addons.openeducat_moodle.sync import pull

    class _Course:
        def __init__(self, courseid, rows):
            self.courseid, self.rows, self.error = courseid, rows, None

    def fetch(self, courseids, students=None):
        for courseid in courseids:
            rows = []
            for userid in (students or {}).get(courseid, []):
                rows += pull.gradebook_rows(
                    self.client.get_grade_items(courseid, userid)
                )
            yield _Course(courseid, rows)

    pull.GradeFetcher.fetch = fetch


def step_phases(args, odoo):
    from odoo.addons.openeducat_moodle.moodle.client import MoodleClient
    from odoo.addons.openeducat_moodle.services.push import OdooReader

    log = _logger(args)
    if args.naive:
        _naive(odoo)
        _naive_grades()
    meter = Meter(MoodleClient, sql_counter=lambda: odoo.sql_db.sql_counter)
    cr, env = _env(odoo, args.db)
    instance = env["moodle.instance"].search([], limit=1)
    instance.batch_size = args.batch_size
    cr.commit()
    env["ir.config_parameter"].sudo().set_param(PARTS_PARAM, str(args.workers))
    cr.commit()
    info = {"workers": args.workers}
    snap = _served(OdooReader(env).snapshot()[0], set(instance.department_ids.ids))
    minimum = generate.minimum_push(snap, args.batch_size)
    for name in ("initial full push", "no-change full push"):
        with meter.phase(name, minimum if name.startswith("initial") else {}) as phase:
            phase.summary = instance._job_push()
            cr.commit()
            if args.workers > 1:
                parts = _run_parts(odoo, args, instance, log)
                if parts["jobs"]:
                    phase.notes.append(_parts_note(env, instance, parts))
        log(f"{name}: {phase.wall:.1f} s, {sum(phase.calls.values())} calls")
    env.invalidate_all()
    changed_snap, changed = generate.change_one_percent(snap)
    _apply_change(env, changed_snap, changed)
    cr.commit()
    env.invalidate_all()
    minimum = generate.minimum_push(changed_snap, args.batch_size, changed)
    with meter.phase("1%-changed push", minimum) as phase:
        phase.summary = instance._job_push()
        cr.commit()
    phase.notes.append(
        "changed: " + ", ".join(f"{len(v)} {k}" for k, v in changed.items())
    )
    log(f"{phase.name}: {phase.wall:.1f} s, {sum(phase.calls.values())} calls")
    preset = generate.PRESETS[args.preset]
    info["seeded"] = {
        **_control(
            args.url,
            "seed_grades",
            items_per_course=preset.grade_items,
            graded=args.grade_share,
        ),
        **_control(args.url, "seed_completion"),
    }
    env.invalidate_all()
    courses = env["moodle.mapping"].search_count(
        [("instance_id", "=", instance.id), ("moodle_model", "=", "course")]
    )
    instance.write({"pull_completion": False})
    cr.commit()
    with meter.phase(
        "grade pull (all courses)", {"gradereport_user_get_grade_items": courses}
    ) as phase:
        phase.summary = instance._job_pull_grades()
        cr.commit()
    match = re.search(r"(\d+) grades created, (\d+) updated", phase.summary)
    info["grades_written"] = int(match[1]) + int(match[2]) if match else 0
    info["courses"] = courses
    from odoo.addons.openeducat_moodle.sync.idnumbers import base36

    info["exams_written"] = env["op.exam"].search_count(
        [("exam_code", "=like", f"M{base36(instance.id)}.%")]
    )
    log(f"{phase.name}: {phase.wall:.1f} s, {sum(phase.calls.values())} calls")
    instance.write(
        {
            "pull_completion": True,
            "pull_gradebook": False,
            "pull_assignments": False,
            "pull_quizzes": False,
        }
    )
    cr.commit()
    enrols = env["moodle.mapping"].search_count(
        [
            ("instance_id", "=", instance.id),
            ("moodle_model", "=", "enrolment"),
            ("res_model", "=", "op.student.course"),
        ]
    )
    with meter.phase(
        "completion pull",
        {"core_completion_get_course_completion_status": enrols},
    ) as phase:
        phase.summary = instance._job_pull_grades()
        cr.commit()
    log(f"{phase.name}: {phase.wall:.1f} s, {sum(phase.calls.values())} calls")
    info["mappings"] = env["moodle.mapping"].search_count([])
    info["counts"] = dict(
        collections.Counter(
            {
                m: env[m].with_context(active_test=False).search_count([])
                for m in (
                    "op.student",
                    "op.faculty",
                    "op.student.course",
                    "op.exam",
                    "op.exam.attendees",
                    "op.result.line",
                )
            }
        )
    )
    cr.close()
    meter.close()
    pathlib.Path(args.out).write_text(
        json.dumps({"info": info, "phases": [p.as_dict() for p in meter.phases]})
    )


def _run_parts(odoo, args, instance, log):
    """Run the parts the push left queued, ``--workers`` at once."""
    from bench.odoo_jobs import run_parts

    return run_parts(odoo, args.db, instance.id, args.workers, log=log)


def _parts_note(env, instance, parts):
    env.invalidate_all()
    run = env["moodle.sync.run"].search(
        [("instance_id", "=", instance.id), ("kind", "=", "push")], limit=1
    )
    spans = ", ".join(f"{p} {b:.0f}–{e:.0f} s" for p, b, e in parts["order"])
    return (
        f"{parts['jobs']} part jobs, {len(parts['order'])} run "
        f"({parts['postponed']} postponed), at most {instance._moodle_push_parts()} "
        f"at once after the first job: {spans}; the push's run: {run.state}, "
        f"{run.created} created, {run.failed} failed, {run.calls} calls"
    )


def _drop(odoo, db):
    """Drop the clone (``exp_drop`` refuses databases ``dbfilter`` hides)."""
    import shutil
    from contextlib import closing

    from psycopg2 import sql

    odoo.sql_db.close_db(db)
    with closing(odoo.sql_db.db_connect("postgres").cursor()) as cr:
        cr._cnx.autocommit = True
        odoo.service.db._drop_conn(cr, db)
        cr.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(db)))
    shutil.rmtree(odoo.tools.config.filestore(db), ignore_errors=True)


def _control(url, op, **kw):
    response = requests.post(f"{url}/bench/{op}", json=kw, timeout=3600)
    response.raise_for_status()
    return response.json()


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "step", choices=["clone", "generate", "phases", "chaos", "drop"]
    )
    parser.add_argument("--config", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--template")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--url")
    parser.add_argument("--token")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--naive", action="store_true")
    parser.add_argument("--grade-share", type=float, default=1.0)
    parser.add_argument("--out")
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-runs", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    odoo = _odoo(args.config)
    if args.step == "clone":
        odoo.service.db.exp_duplicate_database(args.template, args.db)
        # The addon's code may be newer than the template: update it there.
        odoo.tools.config["update"]["openeducat_moodle"] = 1
        odoo.tools.config["init"]["openeducat_moodle_exam"] = 1
        odoo.modules.registry.Registry.new(args.db, update_module=True)
    elif args.step == "drop":
        _drop(odoo, args.db)
    elif args.step == "generate":
        step_generate(args, odoo)
    elif args.step == "chaos":
        from bench import chaos_odoo

        chaos_odoo.step_chaos(args, odoo)
    else:
        step_phases(args, odoo)


if __name__ == "__main__":
    main()
