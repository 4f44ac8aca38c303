"""Push: OpenEduCat's structure, people and enrolments into Moodle.

:class:`PushSync` plans every Moodle object the snapshot calls for, compares
each payload's hash with the mapping table, and sends only what changed, in
batches, in dependency order: departments (parents first) → programs →
subjects → users → batches → enrolments. Each create is preceded by a lookup
by idnumber, so an object already in Moodle is adopted, never duplicated.
"""

import collections
import dataclasses
import datetime
import re

from . import idnumbers
from .backoff import next_attempt
from .hashing import payload_hash
from .ordering import parents_first
from .store import Mapping

CATEGORY, COURSE, USER, GROUP, ENROLMENT = (
    "category",
    "course",
    "user",
    "group",
    "enrolment",
)
# The phases of a full push, in dependency order.
PHASES = ("departments", "programs", "subjects", "users", "batches", "enrolments")

CREATE, UPDATE, UNCHANGED, BLOCKED, WAITING, UNENROL = (
    "create",
    "update",
    "unchanged",
    "blocked",
    "waiting",
    "unenrol",
)

MAX_ATTEMPTS_KEPT = 10
_USERNAME_BAD = re.compile(r"[^a-z0-9_.@-]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclasses.dataclass
class PushSettings:
    """What an instance says about pushing.

    :ivar student_role_id: Moodle role id for students
    :ivar teacher_role_id: Moodle role id for faculty
    :ivar auth: Moodle auth plugin for new accounts (``manual`` has Moodle
        generate and mail a password; any other plugin gets no password)
    :ivar department_ids: the departments this instance serves (empty: all)
    """

    student_role_id: int = 5
    teacher_role_id: int = 3
    auth: str = "manual"
    department_ids: frozenset = frozenset()
    phases: tuple = PHASES


@dataclasses.dataclass
class Item:
    """One Moodle object the snapshot calls for."""

    kind: str
    key: str
    res_model: str
    res_id: int
    idnumber: str | None = None
    payload: dict | None = None
    blocked: str | None = None
    label: str = ""
    # The payload's hash, once planned (the payload does not change after).
    digest: str | None = None


@dataclasses.dataclass
class PhaseResult:
    """Counts of one phase, and the records that were not plain unchanged."""

    phase: str
    created: int = 0
    updated: int = 0
    adopted: int = 0
    unchanged: int = 0
    unenrolled: int = 0
    failed: int = 0
    blocked: int = 0
    waiting: int = 0
    records: list = dataclasses.field(default_factory=list)

    def note(self, item, action, reason=None):
        self.records.append(
            {
                "key": item.key,
                "kind": item.kind,
                "res_model": item.res_model,
                "res_id": item.res_id,
                "label": item.label,
                "action": action,
                "reason": reason,
            }
        )


@dataclasses.dataclass
class PushResult:
    phases: dict = dataclasses.field(default_factory=dict)
    calls: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def total(self, field):
        return sum(getattr(p, field) for p in self.phases.values())


def username_for(person):
    """Moodle username: the person's login, else the email, cleaned up."""
    base = (person.login or person.email or "").strip().lower()
    return _USERNAME_BAD.sub("", base)


class PushSync:
    """Plan and apply a push for one Moodle instance.

    :param client: a :class:`~openeducat_moodle.moodle.MoodleClient`
    :param store: a :class:`~openeducat_moodle.sync.store.Store`
    :param PushSettings settings: the instance's settings
    :param bool dry_run: plan only: no write call, nothing stored
    :param now: the current time (tests move it)
    """

    def __init__(self, client, store, settings, dry_run=False, now=None):
        self.client = client
        self.store = store
        self.settings = settings
        self.dry_run = dry_run
        utcnow = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        self.now = now or utcnow
        self.result = PushResult()
        self._maps = {}
        self._fresh_courses = set()
        self._moodle_categories = None
        self._moodle_courses = None
        self._planned_id = -1

    # ------------------------------------------------------------------
    # Entry point
    # ------------------------------------------------------------------

    def run(self, snapshot, phases=None, scope=None):
        """Push the snapshot.

        :param Snapshot snapshot: what OpenEduCat holds (all of it for a full
            push, or the records a job is about plus what they depend on)
        :param phases: the phases to run (default: the settings' phases)
        :param dict scope: for a partial push, ``{"enrolments": ids,
            "faculty": ids}``: only the enrolment mappings of these records are
            candidates for unenrolment; ``None`` means the snapshot is whole
        :return: the counts per phase
        :rtype: PushResult
        :raise MoodleTransientError: Moodle failed part way; what succeeded is
            stored, the rest will be retried
        :raise MoodleAccessError: the instance needs an admin's attention
        """
        self.snapshot = snapshot
        self.scope = scope
        calls_before = collections.Counter(self.client.call_counts)
        try:
            for phase in phases or self.settings.phases:
                getattr(self, f"_phase_{phase}")(PhaseResult(phase))
        finally:
            self.result.calls = self.client.call_counts - calls_before
        return self.result

    # ------------------------------------------------------------------
    # What is served
    # ------------------------------------------------------------------

    def _served_programs(self):
        served = self.settings.department_ids
        return {
            pid: program
            for pid, program in self.snapshot.programs.items()
            if program.active and (not served or program.department_id in served)
        }

    def _served_departments(self):
        """The served departments and their ancestors (for the hierarchy)."""
        departments = self.snapshot.departments
        served = self.settings.department_ids
        if not served:
            return dict(departments)
        wanted, todo = set(), [d for d in served if d in departments]
        while todo:
            dept_id = todo.pop()
            if dept_id in wanted:
                continue
            wanted.add(dept_id)
            parent = departments[dept_id].parent_id
            if parent in departments:
                todo.append(parent)
        return {d: departments[d] for d in wanted}

    def _program_courses(self):
        """``(program, subject)`` pairs of the served programs."""
        subjects = self.snapshot.subjects
        for program in self._served_programs().values():
            for subject_id in program.subject_ids:
                subject = subjects.get(subject_id)
                if subject and subject.active:
                    yield program, subject

    # ------------------------------------------------------------------
    # Phases
    # ------------------------------------------------------------------

    def _phase_departments(self, result):
        departments = self._served_departments()
        levels, problems = parents_first(
            {d.id: d.parent_id for d in departments.values()}
        )
        for dept_id, reason in sorted(problems.items()):
            dept = departments[dept_id]
            self._block(
                Item(
                    CATEGORY,
                    idnumbers.department(dept_id),
                    "op.department",
                    dept_id,
                    label=dept.name,
                ),
                reason,
                result,
            )
        for level in levels:
            items = []
            for dept_id in level:
                dept = departments[dept_id]
                parent = 0
                if dept.parent_id:
                    parent = self._moodle_id(
                        CATEGORY, idnumbers.department(dept.parent_id)
                    )
                key = idnumbers.department(dept_id)
                item = Item(
                    CATEGORY, key, "op.department", dept_id, key, label=dept.name
                )
                if parent is None:
                    item.blocked = "the parent department is not synced yet"
                else:
                    item.payload = {
                        "name": dept.name,
                        "idnumber": key,
                        "parent": parent,
                    }
                items.append(item)
            self._sync(items, result)
        self.result.phases[result.phase] = result

    def _phase_programs(self, result):
        items = []
        for program in self._served_programs().values():
            key = idnumbers.program(program.id)
            item = Item(CATEGORY, key, "op.course", program.id, key, label=program.name)
            parent = 0
            if program.department_id:
                parent = self._moodle_id(
                    CATEGORY, idnumbers.department(program.department_id)
                )
            if parent is None:
                item.blocked = "its department is not synced yet"
            else:
                item.payload = {"name": program.name, "idnumber": key, "parent": parent}
            items.append(item)
        self._sync(items, result)
        self.result.phases[result.phase] = result

    def _phase_subjects(self, result):
        items = []
        for program, subject in self._program_courses():
            key = idnumbers.subject_course(subject.id, program.id)
            item = Item(
                COURSE,
                key,
                "op.subject",
                subject.id,
                key,
                label=f"{subject.name} ({program.name})",
            )
            category = self._moodle_id(CATEGORY, idnumbers.program(program.id))
            if category is None:
                item.blocked = "its program's category is not synced yet"
            else:
                item.payload = {
                    "fullname": f"{subject.name} ({program.name})",
                    "shortname": f"{subject.code}_{program.code}",
                    "categoryid": category,
                    "idnumber": key,
                }
            items.append(item)
        self._sync(items, result)
        self.result.phases[result.phase] = result

    def _people(self):
        served = self.settings.department_ids
        students = self.snapshot.students
        faculty = self.snapshot.faculty
        if served:
            programs = self._served_programs()
            subjects = {s for p in programs.values() for s in p.subject_ids}
            wanted = {
                e.student_id
                for e in self.snapshot.enrolments.values()
                if e.course_id in programs
            }
            students = {k: v for k, v in students.items() if k in wanted}
            faculty = {
                k: v
                for k, v in faculty.items()
                if v.department_id in served or subjects.intersection(v.subject_ids)
            }
        yield from students.values()
        yield from faculty.values()

    def _phase_users(self, result):
        items = []
        mapped = self._map(USER)
        for person in self._people():
            key = (
                idnumbers.student(person.id)
                if person.kind == "student"
                else idnumbers.faculty(person.id)
            )
            item = Item(
                USER,
                key,
                f"op.{person.kind}",
                person.id,
                key,
                label=f"{person.first_name} {person.last_name}".strip(),
            )
            if not person.active and key not in mapped:
                continue  # an archived person never gets a new account
            reason = self._person_problem(person)
            if reason:
                item.blocked = reason
            else:
                item.payload = {
                    "username": username_for(person),
                    "firstname": person.first_name.strip(),
                    "lastname": person.last_name.strip(),
                    "email": person.email.strip(),
                    "idnumber": key,
                    "auth": self.settings.auth,
                    "suspended": 0 if person.active else 1,
                }
                for field in ("lang", "city", "country", "phone"):
                    value = getattr(person, field)
                    if value:
                        item.payload["phone1" if field == "phone" else field] = value
            items.append(item)
        self._sync(items, result)
        self.result.phases[result.phase] = result

    @staticmethod
    def _person_problem(person):
        if not (person.email or "").strip():
            return "no email address: Moodle requires one"
        if not _EMAIL.match(person.email.strip()):
            return f"email address {person.email!r} is not valid"
        if (
            not (person.first_name or "").strip()
            or not (person.last_name or "").strip()
        ):
            return "first name and last name are both required by Moodle"
        if not username_for(person):
            return "no usable login or email for a Moodle username"
        return None

    def _phase_batches(self, result):
        items = []
        programs = self._served_programs()
        subjects = self.snapshot.subjects
        for batch in self.snapshot.batches.values():
            program = programs.get(batch.course_id)
            if not batch.active or not program:
                continue
            for subject_id in program.subject_ids:
                if subject_id not in subjects or not subjects[subject_id].active:
                    continue
                course_key = idnumbers.subject_course(subject_id, program.id)
                key = idnumbers.pair(idnumbers.batch(batch.id), course_key)
                item = Item(
                    GROUP,
                    key,
                    "op.batch",
                    batch.id,
                    idnumbers.batch(batch.id),
                    label=f"{batch.name} in {course_key}",
                )
                courseid = self._moodle_id(COURSE, course_key)
                if courseid is None:
                    item.blocked = f"course {course_key} is not synced yet"
                else:
                    item.payload = {
                        "courseid": courseid,
                        "name": batch.name,
                        "idnumber": idnumbers.batch(batch.id),
                        "description": "",
                    }
                items.append(item)
        self._sync(items, result)
        self.result.phases[result.phase] = result

    def _enrolment_items(self):
        programs = self._served_programs()
        students = self.snapshot.students
        subjects = self.snapshot.subjects
        for enrolment in self.snapshot.enrolments.values():
            program = programs.get(enrolment.course_id)
            student = students.get(enrolment.student_id)
            if not (program and student and enrolment.active):
                continue
            chosen = [s for s in enrolment.subject_ids if s in program.subject_ids]
            for subject_id in chosen or program.subject_ids:
                if subject_id not in subjects or not subjects[subject_id].active:
                    continue
                course_key = idnumbers.subject_course(subject_id, program.id)
                group_key = None
                if enrolment.batch_id:
                    group_key = idnumbers.pair(
                        idnumbers.batch(enrolment.batch_id), course_key
                    )
                yield self._enrolment_item(
                    "op.student.course",
                    enrolment.id,
                    idnumbers.student(student.id),
                    course_key,
                    self.settings.student_role_id,
                    group_key,
                )
        for teacher in self.snapshot.faculty.values():
            if not teacher.active:
                continue
            for subject_id in teacher.subject_ids:
                for program in programs.values():
                    if subject_id not in program.subject_ids:
                        continue
                    if subject_id not in subjects or not subjects[subject_id].active:
                        continue
                    yield self._enrolment_item(
                        "op.faculty",
                        teacher.id,
                        idnumbers.faculty(teacher.id),
                        idnumbers.subject_course(subject_id, program.id),
                        self.settings.teacher_role_id,
                        None,
                    )

    def _enrolment_item(self, res_model, res_id, user_key, course_key, role, group):
        key = idnumbers.pair(user_key, course_key)
        item = Item(ENROLMENT, key, res_model, res_id, None, label=key)
        userid = self._moodle_id(USER, user_key)
        courseid = self._moodle_id(COURSE, course_key)
        if userid is None:
            item.blocked = f"user {user_key} is not synced"
        elif courseid is None:
            item.blocked = f"course {course_key} is not synced yet"
        else:
            item.payload = {"roleid": role, "userid": userid, "courseid": courseid}
            if group:
                groupid = self._moodle_id(GROUP, group)
                if groupid:
                    item.payload["groupid"] = groupid
        return item

    def _phase_enrolments(self, result):
        items = list(self._enrolment_items())
        self._sync(items, result)
        wanted = {item.key for item in items}
        stale = [
            m
            for key, m in self._map(ENROLMENT).items()
            if key not in wanted and self._in_scope(m)
        ]
        self._unenrol(stale, result)
        self.result.phases[result.phase] = result

    def _in_scope(self, mapping):
        if self.scope is None:
            return True
        if mapping.res_model == "op.student.course":
            return mapping.res_id in self.scope.get("enrolments", ())
        if mapping.res_model == "op.faculty":
            return mapping.res_id in self.scope.get("faculty", ())
        return False

    # ------------------------------------------------------------------
    # Plan
    # ------------------------------------------------------------------

    def _map(self, kind):
        if kind not in self._maps:
            self._maps[kind] = self.store.load(kind)
        return self._maps[kind]

    def _moodle_id(self, kind, key):
        """The Moodle id of a mapped object, or ``None`` when not synced."""
        mapping = self._map(kind).get(key)
        if mapping and mapping.moodle_id:
            return mapping.moodle_id
        return None

    def plan(self, item):
        """Decide what to do with one item, and why."""
        mapping = self._map(item.kind).get(item.key)
        if item.blocked:
            return BLOCKED, item.blocked
        digest = item.digest = payload_hash(item.payload)
        if mapping and mapping.state == "synced" and mapping.sync_hash == digest:
            return UNCHANGED, None
        if mapping and mapping.state in ("error", "failed"):
            same = mapping.extra.get("failed_hash") == digest
            due = mapping.next_retry is None or mapping.next_retry <= self.now
            if same and (mapping.state == "failed" or not due):
                return WAITING, mapping.last_error
        if mapping and (
            mapping.moodle_id or (item.kind == ENROLMENT and mapping.sync_hash)
        ):
            return UPDATE, None
        return CREATE, None

    # ------------------------------------------------------------------
    # Apply
    # ------------------------------------------------------------------

    def _sync(self, items, result):
        creates, updates = [], []
        for item in items:
            action, reason = self.plan(item)
            if action == UNCHANGED:
                result.unchanged += 1
                continue
            if action == BLOCKED:
                self._block(item, reason, result)
                continue
            if action == WAITING:
                result.waiting += 1
                result.note(item, WAITING, reason)
                continue
            (creates if action == CREATE else updates).append(item)
        if self.dry_run:
            for item in creates:
                result.created += 1
                result.note(item, CREATE)
                self._pretend_created(item)
            for item in updates:
                result.updated += 1
                result.note(item, UPDATE)
            return
        if creates:
            self._create(creates, result)
        if updates:
            self._update(updates, result)

    def _pretend_created(self, item):
        """Dry run: give a planned object a placeholder id so that what
        depends on it plans as a create, not as blocked."""
        self._planned_id -= 1
        mapping = self._map(item.kind).setdefault(
            item.key, Mapping(item.kind, item.key, item.res_model, item.res_id)
        )
        mapping.moodle_id = mapping.moodle_id or self._planned_id

    def _block(self, item, reason, result):
        result.blocked += 1
        result.note(item, BLOCKED, reason)
        if self.dry_run:
            return
        mapping = self._map(item.kind).get(item.key)
        if mapping and mapping.state == "blocked" and mapping.last_error == reason:
            return
        mapping = mapping or Mapping(
            item.kind, item.key, item.res_model, item.res_id, idnumber=item.idnumber
        )
        if mapping.state != "synced":
            mapping.state = "blocked"
        mapping.last_error = reason
        self._save([mapping])

    def _save(self, mappings):
        if not mappings:
            return
        self.store.save(mappings)
        kind_map = self._map(mappings[0].kind)
        for mapping in mappings:
            kind_map[mapping.key] = mapping

    def _succeeded(self, item, moodle_id=None, extra=None):
        mapping = self._map(item.kind).get(item.key) or Mapping(
            item.kind, item.key, item.res_model, item.res_id
        )
        mapping.res_model, mapping.res_id = item.res_model, item.res_id
        if moodle_id:
            mapping.moodle_id = moodle_id
        mapping.idnumber = item.idnumber
        mapping.sync_hash = item.digest or payload_hash(item.payload)
        mapping.state = "synced"
        mapping.retry_count = 0
        mapping.next_retry = None
        mapping.last_error = None
        mapping.last_sync = self.now
        mapping.extra.pop("failed_hash", None)
        if extra:
            mapping.extra.update(extra)
        return mapping

    def _failed(self, item, error):
        mapping = self._map(item.kind).get(item.key) or Mapping(
            item.kind, item.key, item.res_model, item.res_id, idnumber=item.idnumber
        )
        mapping.retry_count += 1
        mapping.state, mapping.next_retry = next_attempt(mapping.retry_count, self.now)
        mapping.last_error = str(error)
        mapping.extra["failed_hash"] = item.digest or payload_hash(item.payload)
        attempts = mapping.extra.get("attempts") or []
        attempts.append(
            {"at": self.now.isoformat(timespec="seconds"), "error": str(error)}
        )
        mapping.extra["attempts"] = attempts[-MAX_ATTEMPTS_KEPT:]
        return mapping

    def _finish(self, items, batch, result, counter, extras=None):
        """Store the outcome of a batch call; raise if it stopped part way."""
        saved = []
        for item, outcome in zip(items, batch.outcomes, strict=True):
            if outcome.ok:
                moodle_id = None
                if isinstance(outcome.value, dict):
                    moodle_id = outcome.value.get("id")
                extra = (extras or {}).get(item.key)
                if outcome.note:
                    extra = {**(extra or {}), "note": outcome.note}
                saved.append(self._succeeded(item, moodle_id, extra))
                if counter:
                    setattr(result, counter, getattr(result, counter) + 1)
            elif outcome.status == "failed":
                saved.append(self._failed(item, outcome.error))
                result.failed += 1
                result.note(item, "failed", str(outcome.error))
        self._save(saved)
        if batch.aborted is not None:
            raise batch.aborted

    # --- create ---------------------------------------------------------

    def _create(self, items, result):
        kind = items[0].kind
        if kind == ENROLMENT:
            self._enrol(items, result, "created")
            return
        adopted, items = self._adopt(kind, items)
        if adopted:
            result.adopted += len(adopted)
            # OpenEduCat wins: adopted objects get our payload.
            # They count once, as adopted; their failures count as failures.
            self._update(adopted, result, counter=None)
        if not items:
            return
        records = [self._create_record(item) for item in items]
        method = {
            CATEGORY: self.client.create_categories,
            COURSE: self.client.create_courses,
            USER: self.client.create_users,
            GROUP: self.client.create_groups,
        }[kind]
        batch = method(records)
        if kind == COURSE:
            self._fresh_courses.update(
                o.value["id"] for o in batch.outcomes if o.ok and o.value
            )
        self._finish(items, batch, result, "created")

    def _create_record(self, item):
        record = dict(item.payload)
        if item.kind == USER:
            record.pop("suspended", None)
            if record["auth"] == "manual":
                record["createpassword"] = 1
        return record

    def _find(self, kind, items):
        """Look the items up in Moodle: ``{key: Moodle object}`` for those
        found by our idnumber (or, for users, our email or username)."""
        if kind == CATEGORY:
            if self._moodle_categories is None:
                self._moodle_categories = {
                    c["idnumber"]: c
                    for c in self.client.get_categories()
                    if c.get("idnumber")
                }
            return {i.key: self._moodle_categories.get(i.idnumber) for i in items}
        if kind == COURSE:
            if self._moodle_courses is None:
                self._moodle_courses = {
                    c["idnumber"]: c
                    for c in self.client.get_courses_by_field()
                    if c.get("idnumber")
                }
            return {i.key: self._moodle_courses.get(i.idnumber) for i in items}
        if kind == USER:
            return self._find_users(items)
        if kind == GROUP:
            return self._find_groups(items)
        return {}

    def _adopt(self, kind, items):
        """Map the objects already in Moodle instead of creating them."""
        found = self._find(kind, items)
        adopted, rest = [], []
        for item in items:
            match = found.get(item.key)
            if match:
                mapping = self._map(kind).get(item.key) or Mapping(
                    kind, item.key, item.res_model, item.res_id, idnumber=item.idnumber
                )
                mapping.moodle_id = match["id"]
                self._map(kind)[item.key] = mapping
                adopted.append(item)
            else:
                rest.append(item)
        return adopted, rest

    def _find_users(self, items):
        found = {}
        by_idnumber = {
            u.get("idnumber"): u
            for u in self.client.get_users_by_field("idnumber", [i.key for i in items])
        }
        rest = []
        for item in items:
            if item.key in by_idnumber:
                found[item.key] = by_idnumber[item.key]
            else:
                rest.append(item)
        for field in ("email", "username"):
            if not rest:
                break
            values = sorted({i.payload[field].lower() for i in rest})
            users = {
                (u.get(field) or "").lower(): u
                for u in self.client.get_users_by_field(field, values)
            }
            still = []
            for item in rest:
                user = users.get(item.payload[field].lower())
                idnumber = (user or {}).get("idnumber") or ""
                if user and not idnumbers.parse(idnumber):
                    found[item.key] = user
                else:
                    # Unknown, or an account that belongs to another of our
                    # records: the create call will report the clash.
                    still.append(item)
            rest = still
        return found

    def _find_groups(self, items):
        found = {}
        by_course = collections.defaultdict(list)
        for item in items:
            if item.payload["courseid"] not in self._fresh_courses:
                by_course[item.payload["courseid"]].append(item)
        for courseid, course_items in by_course.items():
            groups = {
                g.get("idnumber"): g for g in self.client.get_course_groups(courseid)
            }
            for item in course_items:
                if item.idnumber in groups:
                    found[item.key] = groups[item.idnumber]
        return found

    # --- update ---------------------------------------------------------

    def _update(self, items, result, counter="updated"):
        kind = items[0].kind
        if kind == ENROLMENT:
            self._enrol(items, result, counter)
            return
        records = []
        for item in items:
            record = {"id": self._map(kind)[item.key].moodle_id, **item.payload}
            if kind == USER:
                record.pop("username", None)
            if kind == GROUP:
                record.pop("courseid", None)
            records.append(record)
        method = {
            CATEGORY: self.client.update_categories,
            COURSE: self.client.update_courses,
            USER: self.client.update_users,
            GROUP: self.client.update_groups,
        }[kind]
        self._finish(items, method(records), result, counter)

    # --- enrolments -----------------------------------------------------

    @staticmethod
    def _enrolment_core(item):
        return [
            item.payload["roleid"],
            item.payload["userid"],
            item.payload["courseid"],
        ]

    def _enrol(self, items, result, counter):
        """Enrol, then fix group memberships. An enrolment whose role, user
        and course Moodle already has (only its batch changed) costs no enrol
        call: only its membership moves."""
        send, moved = [], []
        for item in items:
            mapping = self._map(ENROLMENT).get(item.key)
            known = mapping and mapping.state == "synced" and mapping.moodle_id is None
            if known and mapping.extra.get("enrolled") == self._enrolment_core(item):
                moved.append(item)
            else:
                send.append(item)
        if moved:
            extras = self._memberships(moved)
            self._save([self._succeeded(i, None, extras.get(i.key)) for i in moved])
            if counter:
                setattr(result, counter, getattr(result, counter) + len(moved))
        if not send:
            return
        records = [
            {k: v for k, v in item.payload.items() if k != "groupid"} for item in send
        ]
        batch = self.client.enrol_users(records)
        enrolled = [i for i, o in zip(send, batch.outcomes, strict=True) if o.ok]
        extras = {}
        if batch.aborted is None:
            extras = self._memberships(enrolled)
        for item in enrolled:
            extras[item.key] = {
                **extras.get(item.key, {}),
                "enrolled": self._enrolment_core(item),
            }
        self._finish(send, batch, result, counter, extras)

    def _memberships(self, items):
        """Put enrolled students in their batch's group; move them when the
        batch changed. Returns ``{key: extra}`` for the mapping rows."""
        adds, removes, extras = [], [], {}
        for item in items:
            mapping = self._map(ENROLMENT).get(item.key)
            old = (mapping.extra.get("groupid") if mapping else None) or None
            new = item.payload.get("groupid")
            if old == new:
                continue
            if old:
                removes.append({"groupid": old, "userid": item.payload["userid"]})
            if new:
                adds.append({"groupid": new, "userid": item.payload["userid"]})
            extras[item.key] = {"groupid": new}
        if removes:
            self.client.delete_group_members(removes).raise_if_aborted()
        if adds:
            batch = self.client.add_group_members(adds)
            batch.raise_if_aborted()
            for outcome in batch.failed:
                # Enrolled, but not in the group: keep the old group so the
                # next run tries the membership again.
                for key, extra in list(extras.items()):
                    if extra["groupid"] == outcome.record["groupid"]:
                        extras.pop(key)
        return extras

    def _unenrol(self, mappings, result):
        if not mappings:
            return
        if self.dry_run:
            for mapping in mappings:
                result.unenrolled += 1
                result.records.append(
                    {
                        "key": mapping.key,
                        "kind": ENROLMENT,
                        "res_model": mapping.res_model,
                        "res_id": mapping.res_id,
                        "label": mapping.key,
                        "action": UNENROL,
                        "reason": None,
                    }
                )
            return
        records, done = [], []
        for mapping in mappings:
            user, course = mapping.key.split("@", 1)
            userid = self._moodle_id(USER, user)
            courseid = self._moodle_id(COURSE, course)
            if userid and courseid:
                records.append({"userid": userid, "courseid": courseid})
                done.append(mapping)
            else:
                self.store.delete([mapping])
        if records:
            batch = self.client.unenrol_users(records)
            gone = [m for m, o in zip(done, batch.outcomes, strict=True) if o.ok]
            self.store.delete(gone)
            for mapping in gone:
                self._map(ENROLMENT).pop(mapping.key, None)
            result.unenrolled += len(gone)
            for mapping, outcome in zip(done, batch.outcomes, strict=True):
                if outcome.status == "failed":
                    result.failed += 1
                    mapping.last_error = str(outcome.error)
                    mapping.state = "error"
                    self.store.save([mapping])
            batch.raise_if_aborted()
