"""The benchmark's institutions, as plain rows (and as counts to check).

Deterministic: the same preset always gives the same institution. The
reference institution of the issue:

* 20 departments over three levels (2 → 6 → 12),
* 60 programs (``op.course``), 3 per leaf department,
* 600 subject-program courses: 10 subjects per program,
* 300 batches: 5 per program,
* 20,000 students, each in one program (one ``op.student.course``, in one of
  its batches) taking 5 of its 10 subjects: 100,000 student enrolments in
  Moodle courses,
* 800 faculty, each teaching one subject (every course has one or two
  teachers): 800 teacher enrolments,
* 5 grade items per course (set up in the simulator after the first push).
"""

import dataclasses

from openeducat_moodle.sync.rows import (
    Batch,
    Department,
    Enrolment,
    Person,
    Program,
    Snapshot,
    Subject,
)


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    levels: tuple  # departments per level, top first
    programs: int
    subjects_per_program: int
    batches_per_program: int
    students: int
    faculty: int
    subjects_per_student: int
    grade_items: int
    # OpenEduCat ids start after this (a real site gets a unique range, so
    # that every idnumber, username and e-mail of a run is new there).
    id_base: int = 0
    tag: str = ""

    @property
    def departments(self):
        return sum(self.levels)

    @property
    def courses(self):
        return self.programs * self.subjects_per_program

    @property
    def batches(self):
        return self.programs * self.batches_per_program

    @property
    def student_enrolments(self):
        return self.students * self.subjects_per_student

    def describe(self):
        return (
            f"{self.departments} departments over {len(self.levels)} levels "
            f"({' → '.join(map(str, self.levels))}), {self.programs} programs, "
            f"{self.courses} subject-program courses, {self.batches} batches, "
            f"{self.students:,} students, {self.faculty:,} faculty, "
            f"{self.student_enrolments:,} student enrolments "
            f"(+{self.faculty:,} teacher enrolments), "
            f"{self.grade_items} grade items per course"
        )


PRESETS = {
    "small": Preset("small", (1, 2, 3), 6, 5, 2, 1_000, 40, 3, 5),
    "reference": Preset("reference", (2, 6, 12), 60, 10, 5, 20_000, 800, 5, 5),
    # Sized for a 2-core machine running a real Moodle: a few minutes a push.
    "real": Preset("real", (1, 2, 3), 6, 10, 2, 2_000, 60, 4, 5),
}


def build(preset):
    """Return the :class:`Snapshot` of a preset's institution."""
    base = preset.id_base
    tag = preset.tag
    departments, leaves, parents = [], [], [None]
    next_id = base + 1
    for depth, count in enumerate(preset.levels):
        level = []
        for n in range(count):
            parent = parents[n % len(parents)]
            level.append(
                Department(next_id, f"{tag}Department {next_id}", f"D{next_id}", parent)
            )
            next_id += 1
        departments += level
        parents = [d.id for d in level]
        if depth == len(preset.levels) - 1:
            leaves = parents
    programs, subjects, batches = [], [], []
    for p in range(preset.programs):
        pid = base + p + 1
        dept = leaves[p % len(leaves)]
        subject_ids = []
        for s in range(preset.subjects_per_program):
            sid = base + p * preset.subjects_per_program + s + 1
            subject_ids.append(sid)
            subjects.append(Subject(sid, f"{tag}Subject {sid}", f"{tag}S{sid}", dept))
        programs.append(
            Program(
                pid, f"{tag}Program {pid}", f"{tag}P{pid}", dept, tuple(subject_ids)
            )
        )
        for b in range(preset.batches_per_program):
            bid = base + p * preset.batches_per_program + b + 1
            batches.append(Batch(bid, f"{tag}Batch {bid}", f"{tag}B{bid}", pid))
    students, enrolments = [], []
    for n in range(preset.students):
        sid = base + n + 1
        students.append(
            Person(
                sid,
                "student",
                f"Student{sid}",
                f"Family{n % 997}",
                f"{tag}student{sid}@bench.example.edu",
            )
        )
        program = programs[n % preset.programs]
        rotation = (n // preset.programs) % preset.subjects_per_program
        chosen = [
            program.subject_ids[(rotation + k) % preset.subjects_per_program]
            for k in range(preset.subjects_per_student)
        ]
        batch = (
            base
            + (n % preset.programs) * preset.batches_per_program
            + (n // preset.programs) % preset.batches_per_program
            + 1
        )
        enrolments.append(Enrolment(sid, sid, program.id, batch, tuple(chosen)))
    faculty = []
    for n in range(preset.faculty):
        fid = base + n + 1
        subject = subjects[n % len(subjects)]
        faculty.append(
            Person(
                fid,
                "faculty",
                f"Teacher{fid}",
                f"Staff{n % 331}",
                f"{tag}faculty{fid}@bench.example.edu",
                subject_ids=(subject.id,),
                department_id=subject.department_id,
            )
        )
    return Snapshot.build(
        departments=departments,
        programs=programs,
        subjects=subjects,
        batches=batches,
        students=students,
        faculty=faculty,
        enrolments=enrolments,
    )


def change_one_percent(snapshot):
    """Change 1 % of each kind of record, as a day of edits would.

    Students and faculty renamed, subjects renamed (their courses' full
    names change), and student-course enrolments moved to another batch of
    their program (their Moodle enrolments change group). Returns the new
    snapshot and what was changed, ``{kind: [ids]}``.
    """
    changed = {}

    def pick(rows):
        ids = sorted(rows)
        step = 100
        return ids[::step]

    students = dict(snapshot.students)
    changed["students"] = pick(students)
    for sid in changed["students"]:
        students[sid] = dataclasses.replace(
            students[sid], last_name=students[sid].last_name + "-Renamed"
        )
    faculty = dict(snapshot.faculty)
    changed["faculty"] = pick(faculty)
    for fid in changed["faculty"]:
        faculty[fid] = dataclasses.replace(
            faculty[fid], last_name=faculty[fid].last_name + "-Renamed"
        )
    subjects = dict(snapshot.subjects)
    changed["subjects"] = pick(subjects)
    for sid in changed["subjects"]:
        subjects[sid] = dataclasses.replace(
            subjects[sid], name=subjects[sid].name + " (revised)"
        )
    by_program = {}
    for batch in snapshot.batches.values():
        by_program.setdefault(batch.course_id, []).append(batch.id)
    enrolments = dict(snapshot.enrolments)
    changed["enrolments"] = pick(enrolments)
    for eid in changed["enrolments"]:
        row = enrolments[eid]
        options = sorted(by_program[row.course_id])
        new = options[(options.index(row.batch_id) + 1) % len(options)]
        enrolments[eid] = dataclasses.replace(row, batch_id=new)
    new = dataclasses.replace(
        snapshot,
        students=students,
        faculty=faculty,
        subjects=subjects,
        enrolments=enrolments,
    )
    return new, changed


def department_depth(snapshot):
    """``{department id: level}``: 0 for a root, 1 for its children…"""
    depth = {}
    for dept in snapshot.departments.values():
        d, parent = 0, dept.parent_id
        while parent:
            d += 1
            parent = snapshot.departments[parent].parent_id
        depth[dept.id] = d
    return depth


def minimum_push(snapshot, batch_size, changed=None):
    """The fewest write calls a push needs, per write function.

    Each kind needs ``ceil(records ÷ batch size)`` calls; categories go one
    dependency level at a time (a sub-category needs its parent's Moodle id),
    so they need that per level: departments level by level, then programs.

    :param dict changed: for a partial change, ``{kind: [ids]}`` from
        :func:`change_one_percent`; ``None`` for the initial push
    """

    def calls(n):
        return -(-n // batch_size) if n else 0

    programs = snapshot.programs
    if changed is None:
        depth = department_depth(snapshot)
        per_level = [0] * (max(depth.values()) + 1)
        for d in depth.values():
            per_level[d] += 1
        courses = sum(len(p.subject_ids) for p in programs.values())
        groups = sum(
            len(programs[b.course_id].subject_ids) for b in snapshot.batches.values()
        )
        student_enrols = sum(
            len(e.subject_ids) or len(programs[e.course_id].subject_ids)
            for e in snapshot.enrolments.values()
        )
        teacher_enrols = sum(
            sum(1 for p in programs.values() if s in p.subject_ids)
            for f in snapshot.faculty.values()
            for s in f.subject_ids
        )
        members = sum(
            len(e.subject_ids) or len(programs[e.course_id].subject_ids)
            for e in snapshot.enrolments.values()
            if e.batch_id
        )
        return {
            "core_course_create_categories": sum(calls(n) for n in per_level)
            + calls(len(programs)),
            "core_course_create_courses": calls(courses),
            "core_user_create_users": calls(
                len(snapshot.students) + len(snapshot.faculty)
            ),
            "core_group_create_groups": calls(groups),
            "enrol_manual_enrol_users": calls(student_enrols + teacher_enrols),
            "core_group_add_group_members": calls(members),
        }
    moved = changed.get("enrolments", [])
    moved_enrols = sum(
        len(snapshot.enrolments[e].subject_ids)
        or len(programs[snapshot.enrolments[e].course_id].subject_ids)
        for e in moved
    )
    courses = sum(
        sum(1 for p in programs.values() if s in p.subject_ids)
        for s in changed.get("subjects", [])
    )
    return {
        "core_user_update_users": calls(
            len(changed.get("students", [])) + len(changed.get("faculty", []))
        ),
        "core_course_update_courses": calls(courses),
        "enrol_manual_enrol_users": calls(moved_enrols),
        "core_group_delete_group_members": calls(moved_enrols),
        "core_group_add_group_members": calls(moved_enrols),
    }
