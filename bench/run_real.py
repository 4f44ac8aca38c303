"""The benchmark against a real Moodle (``MOODLE_URL``, ``MOODLE_TOKEN``).

1. The five phases with the sync core (preset ``real``), as against the
   simulator; no grade items are seeded (Moodle has no web service that
   creates them), so the grade pull reads reports without grades and the
   completion pull meets courses without criteria.
2. Moodle's own limit on the same site: the same kinds and numbers of
   records (a second copy of the institution, with other idnumbers) sent
   straight through the client, at the largest batches the form-field limit
   allows, with no sync logic and no mapping table.
3. Everything created is deleted (courses, users, categories).

The run uses an id range and a name tag drawn at random, so every idnumber,
shortname, username and e-mail is new on the site. The token is read from the
environment and never printed or written.
"""

import dataclasses
import datetime
import os
import random
import time

from openeducat_moodle.moodle.client import MoodleClient
from openeducat_moodle.moodle.errors import MoodleError
from openeducat_moodle.sync import idnumbers
from openeducat_moodle.sync.push import username_for

from . import generate, report
from .measure import Meter, machine
from .run_core import run_phases

STRAIGHT_BATCH = 10_000  # the form-field limit (max_fields) is what bounds it


def _chunks(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def straight_through(meter, client, snapshot):
    """Create the snapshot's objects with plain batch calls; return the ids."""
    created = {}
    with meter.phase("straight-through (Moodle's limit)") as phase:
        cat = {}
        depth = generate.department_depth(snapshot)
        for level in range(max(depth.values()) + 1):
            depts = [d for d in snapshot.departments.values() if depth[d.id] == level]
            _ids(
                client.create_categories(
                    [
                        {
                            "name": d.name,
                            "idnumber": idnumbers.department(d.id),
                            "parent": cat.get(d.parent_id, 0),
                        }
                        for d in depts
                    ]
                ),
                [d.id for d in depts],
                cat,
            )
        created["categories"] = [
            cat[d.id] for d in snapshot.departments.values() if not d.parent_id
        ]
        programs = list(snapshot.programs.values())
        prog = {}
        _ids(
            client.create_categories(
                [
                    {
                        "name": p.name,
                        "idnumber": idnumbers.program(p.id),
                        "parent": cat[p.department_id],
                    }
                    for p in programs
                ]
            ),
            [p.id for p in programs],
            prog,
        )
        pairs = [(p, snapshot.subjects[s]) for p in programs for s in p.subject_ids]
        course = {}
        _ids(
            client.create_courses(
                [
                    {
                        "fullname": f"{s.name} ({p.name})",
                        "shortname": f"{s.code}_{p.code}",
                        "categoryid": prog[p.id],
                        "idnumber": idnumbers.subject_course(s.id, p.id),
                    }
                    for p, s in pairs
                ]
            ),
            [(s.id, p.id) for p, s in pairs],
            course,
        )
        created["courses"] = list(course.values())
        people = [*snapshot.students.values(), *snapshot.faculty.values()]
        user = {}
        _ids(
            client.create_users(
                [
                    {
                        "username": username_for(x),
                        "firstname": x.first_name,
                        "lastname": x.last_name,
                        "email": x.email,
                        "idnumber": (
                            idnumbers.student(x.id)
                            if x.kind == "student"
                            else idnumbers.faculty(x.id)
                        ),
                        "auth": "manual",
                        "createpassword": 1,
                    }
                    for x in people
                ]
            ),
            [(x.kind, x.id) for x in people],
            user,
        )
        created["users"] = list(user.values())
        group_keys, group_records = [], []
        for b in snapshot.batches.values():
            for s in snapshot.programs[b.course_id].subject_ids:
                group_keys.append((b.id, s))
                group_records.append(
                    {
                        "courseid": course[(s, b.course_id)],
                        "name": b.name,
                        "idnumber": idnumbers.batch(b.id),
                        "description": "",
                    }
                )
        group = {}
        _ids(client.create_groups(group_records), group_keys, group)
        enrols, members = [], []
        for e in snapshot.enrolments.values():
            uid = user[("student", e.student_id)]
            for s in e.subject_ids:
                enrols.append(
                    {"roleid": 5, "userid": uid, "courseid": course[(s, e.course_id)]}
                )
                members.append({"groupid": group[(e.batch_id, s)], "userid": uid})
        for f in snapshot.faculty.values():
            for s in f.subject_ids:
                for p in programs:
                    if s in p.subject_ids:
                        enrols.append(
                            {
                                "roleid": 3,
                                "userid": user[("faculty", f.id)],
                                "courseid": course[(s, p.id)],
                            }
                        )
        _ok(client.enrol_users(enrols))
        _ok(client.add_group_members(members))
        phase.summary = (
            f"{len(cat) + len(prog)} categories, {len(course)} courses, "
            f"{len(user)} users, {len(group)} groups, {len(enrols)} enrolments, "
            f"{len(members)} group memberships"
        )
    return phase, created


def _ids(batch, keys, into):
    _ok(batch)
    for key, outcome in zip(keys, batch.outcomes, strict=True):
        into[key] = outcome.value["id"]


def _ok(batch):
    batch.raise_if_aborted()
    if batch.failed:
        raise RuntimeError(
            f"{batch.wsfunction}: {len(batch.failed)} records failed, first: "
            f"{batch.failed[0].error}"
        )


def cleanup(client, run_no, log):
    """Delete everything run ``run_no`` created, found by its names.

    Works after a crash too: ``python -m bench --preset real --cleanup N``.
    Courses are deleted a few at a time (Moodle takes seconds per course).
    """
    started = time.perf_counter()
    presets = [_presets(run_no)[0], _presets(run_no)[1]]
    tags = tuple(p.tag for p in presets)
    courses = [
        c["id"]
        for c in client.get_courses_by_field()
        if (c.get("shortname") or "").startswith(tags)
    ]
    for chunk in _chunks(sorted(courses), 5):
        _quietly(log, client.delete_courses, chunk)
    users = []
    for preset in presets:
        snap = generate.build(preset)
        names = [
            username_for(x) for x in (*snap.students.values(), *snap.faculty.values())
        ]
        users += [u["id"] for u in client.get_users_by_field("username", names)]
    for chunk in _chunks(sorted(users), 100):
        _quietly(log, client.delete_users, chunk)
    tops = [
        c["id"]
        for c in client.get_categories()
        if (c.get("name") or "").startswith(tags) and not c.get("parent")
    ]
    if tops:
        _quietly(
            log,
            client.delete_categories,
            [{"id": c, "recursive": 1} for c in sorted(tops)],
        )
    log(
        f"  cleanup of run {run_no}: {len(courses)} courses, {len(users)} users, "
        f"{len(tops)} category trees deleted in {time.perf_counter() - started:.0f} s"
    )


def _quietly(log, method, *args):
    try:
        result = method(*args)
    except MoodleError as err:
        log(f"  cleanup: {err}")
        return
    if hasattr(result, "failed") and (result.failed or result.aborted):
        log(f"  cleanup: {len(result.failed)} failed, aborted: {result.aborted}")


def _presets(run_no):
    base = generate.PRESETS["real"]
    return (
        dataclasses.replace(base, id_base=run_no * 1_000_000, tag=f"bx{run_no}"),
        dataclasses.replace(
            base, id_base=run_no * 1_000_000 + 500_000, tag=f"by{run_no}"
        ),
    )


def main(args, log):
    url, token = os.environ.get("MOODLE_URL"), os.environ.get("MOODLE_TOKEN")
    if not (url and token):
        log("preset real: set MOODLE_URL and MOODLE_TOKEN (a test site)")
        return 2
    slow = MoodleClient(url, token, read_timeout=900)
    if args.cleanup:
        cleanup(slow, args.cleanup, log)
        return 0
    run_no = random.SystemRandom().randint(100, 999)
    preset, twin = _presets(run_no)
    meter = Meter(MoodleClient)
    client = MoodleClient(url, token, batch_size=args.batch_size)
    release = client.get_site_info().release
    info = {"mode": "core", "naive": False, "batch_size": args.batch_size}
    info["moodle"] = f"Moodle {release} at {url}"
    log(f"== real Moodle {release}, run {run_no} (tags {preset.tag}, {twin.tag})")
    try:
        run_phases(meter, client, generate.build(preset), info, log=log)
        fast = MoodleClient(url, token, batch_size=STRAIGHT_BATCH)
        straight, _created = straight_through(meter, fast, generate.build(twin))
        log(f"  straight-through: {straight.wall:.1f} s")
        status = _print(args, meter, info, preset, client)
    finally:
        meter.close()
        cleanup(slow, run_no, log)
    return status


def _print(args, meter, info, preset, client):
    phases, straight = meter.phases[:-1], meter.phases[-1]
    out = [
        (
            "## openeducat_moodle benchmark against a real Moodle, "
            f"{datetime.date.today()}"
        ),
        "",
        f"Machine: {machine()}.  ",
        f"Moodle: {info['moodle']}; connector batch size {args.batch_size}.  ",
        f"Institution: {preset.describe()} (no grade items: see bench/run_real.py).",
        "",
        report.summary_table(meter.phases),
        "",
        report.calls_table(meter.phases),
        "",
        report.notes(meter.phases),
        "",
    ]
    rows = report.checks(phases, info)
    ratio = phases[0].wall / straight.wall
    rows.append(
        report.Check(
            "real Moodle: initial push wall ≤ 1.25 × straight-through",
            ratio <= report.TARGET_REAL_RATIO,
            f"{phases[0].wall:.1f} s against {straight.wall:.1f} s straight "
            f"through (ratio {ratio:.2f}); connector batch size "
            f"{args.batch_size}, straight-through batches bounded by "
            f"{client.max_fields} form fields",
        )
    )
    out += ["Targets:", "", report.checks_table(rows), ""]
    print("\n".join(out), flush=True)
    if args.check and not all(r.met for r in rows):
        return 1
    return 0
