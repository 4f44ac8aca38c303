"""Push: OpenEduCat's structure, people and enrolments into Moodle.

:class:`PushSync` plans every Moodle object the snapshot calls for, compares
each payload's hash with the mapping table, and sends only what changed, in
batches, in dependency order: departments (parents first) → programs →
subjects → users → batches → enrolments. Each create is preceded by a lookup
by idnumber, so an object already in Moodle is adopted, never duplicated.

One record never holds back the rest: every payload is fitted into Moodle's
columns before any call (:mod:`.limits`: shortened where that keeps it unique,
blocked with a reason where it would not); a record Moodle refuses fails alone
and is retried on its own schedule (:mod:`.backoff`); a lookup Moodle refuses
fails only the records that needed it; a course found deleted in Moodle loses
its mapping (and those of its groups and enrolments), as the drift check would
do, so that the push creates it again. Unenrolments above a limit are held until
a Moodle Manager confirms them (:class:`PushSettings`).

People: one Moodle account per email address (letter case aside), as Moodle
requires: a student and a faculty member who are one person share one account
(:func:`.accounts.same_person`), anyone else with an email address already
used is blocked with the reason. An account found by our idnumber is ours; an
existing account found by email address or username is adopted only as the
instance's policy says (:mod:`.accounts`), and a username that is taken gets a
deterministic suffix.
"""

import collections
import dataclasses
import datetime
import html
import math
import re
import zoneinfo

from ..moodle.errors import MoodleAccessError, MoodleRecordError, MoodleTransientError
from . import accounts, idnumbers, limits
from .backoff import next_attempt
from .hashing import payload_hash
from .ordering import parents_first
from .rows import Person
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
# Result records beside those: a payload shortened to fit Moodle's columns,
# an unenrolment held until confirmed, a record whose send failed.
SHORTENED, HELD, FAILED = "shortened", "held", "failed"
# A person whose account is another's (a student who also teaches).
SHARED = "shared"

MAX_ATTEMPTS_KEPT = 10
# ``failed_hash`` of an enrolment mapping whose unenrolment failed (a payload
# hash is 64 hex digits: the two never meet).
UNENROL_DIGEST = "unenrol"
# Never hold this many unenrolments or fewer, whatever the percentage says: a
# student leaving a program withdraws from all of its subjects at once.
UNENROL_LIMIT_FLOOR = 10
# Moodle's refusals to change an account the connector meant to adopt: the
# account is not taken (a site administrator, a remote or guest account…).
_NOT_ADOPTABLE = frozenset(
    {
        "usernotupdatedadmin",
        "usernotupdatedremote",
        "usernotupdatedguest",
        "usernotupdateddeleted",
    }
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PERSON = Person(0, "", "", "", None)
# Moodle's FORMAT_HTML: the format of the course summaries the push writes.
FORMAT_HTML = 1
# The labels of a course summary's lines (Moodle shows them as written).
SUMMARY_LABELS = {
    "subject": "Subject",
    "program": "Program",
    "department": "Department",
}
# A course ends at the end of its last batch's last day: 23:59 (Moodle's
# course form shows minutes, so a course saved there keeps the same time).
_END_OF_DAY = datetime.timedelta(days=1, minutes=-1)
# What a phone number too long for Moodle's column can do without.
_PHONE_PUNCTUATION = re.compile(r"[\s().\-/]")


@dataclasses.dataclass
class PushSettings:
    """What an instance says about pushing.

    :ivar student_role_id: Moodle role id for students
    :ivar teacher_role_id: Moodle role id for faculty
    :ivar auth: Moodle auth plugin for new accounts (``manual`` has Moodle
        generate and mail a password; any other plugin gets no password)
    :ivar department_ids: the departments this instance serves (empty: all)
    :ivar unenrol_limit_percent: hold the unenrolments of a run when there
        are more than this percentage of the instance's enrolments (its
        enrolment mapping rows that were synced), rounded up; ``0`` drops
        this bound
    :ivar unenrol_limit_count: … or more than this many; ``0`` drops this
        bound (both ``0``: nothing is ever held)
    :ivar unenrol_confirmed: the keys (``oec_student_7@oec_subj_1_course_2``)
        of held unenrolments a Moodle Manager confirmed: these go, and do not
        count against the limit; a confirmation covers the keys it lists and
        no other, so confirming 300 never releases 3000
    :ivar adopt_accounts: when an existing Moodle account without one of our
        idnumbers is taken for a person whose email address (or username) it
        holds: ``never``, ``review`` (after a Moodle Manager's approval in the
        Initial Import wizard, the default) or ``auto`` (see :mod:`.accounts`)
    :ivar adopt_keep_auth: an adopted account keeps its authentication method
        (and so its password or single sign-on): ``auth`` is never sent for it

    The limit is ``max(UNENROL_LIMIT_FLOOR, min(count, ceil(percent × the
    instance's enrolments / 100)))``, and the unconfirmed unenrolments of a
    run are held, all of them, when they are more than that. The lower of the
    two bounds applies, so that both ends are protected: on a large instance
    (100 000 enrolments) 5 % would let 5 000 go unseen, so 200 applies; on a
    small one (1 000) 200 would be a fifth of it, so 5 % (50) applies. The
    floor keeps a tiny instance from holding one student's withdrawal.
    Held unenrolments make no call and keep their mapping rows; the run's
    :attr:`PushResult.held_unenrolments` says how many, why and which.
    """

    student_role_id: int = 5
    teacher_role_id: int = 3
    auth: str = "manual"
    department_ids: frozenset = frozenset()
    phases: tuple = PHASES
    unenrol_limit_percent: float = 5.0
    unenrol_limit_count: int = 200
    unenrol_confirmed: frozenset = frozenset()
    adopt_accounts: str = accounts.REVIEW
    adopt_keep_auth: bool = True


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
    # What was shortened to fit Moodle's columns (see :mod:`.limits`).
    notes: tuple = ()


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
    # Sent with a value shortened to fit Moodle's columns (also counted as
    # created, updated…).
    shortened: int = 0
    # Unenrolments held until a Moodle Manager confirms them.
    held: int = 0
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
    """What a push did.

    :ivar dict phases: ``{phase: PhaseResult}``
    :ivar collections.Counter calls: calls per web-service function
    :ivar dict held_unenrolments: ``None``, or when unenrolments were held:
        ``count``, ``limit``, ``enrolments`` (the instance's, the limit's
        base), ``reason`` (one sentence for a Moodle Manager) and ``keys``
        (sorted; confirm with :attr:`PushSettings.unenrol_confirmed`)
    :ivar list lost: Moodle objects found deleted outside the connector
        during the push, whose mappings were dropped so that they are created
        again: dicts ``kind``, ``key``, ``moodle_id``, ``reason``
    """

    phases: dict = dataclasses.field(default_factory=dict)
    calls: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    held_unenrolments: dict | None = None
    lost: list = dataclasses.field(default_factory=list)

    def total(self, field):
        return sum(getattr(p, field) for p in self.phases.values())


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
        # A part of a parallel push (:class:`.parallel.Part`): only its
        # records are sent and stored; None: every record.
        self.part = None
        self._maps = {}
        self._fresh_courses = set()
        self._moodle_categories = None
        # Courses with our idnumbers, read category by category (never the
        # whole site): {idnumber: course}, and the categories read (or made
        # by this run: empty).
        self._moodle_courses = None
        self._course_categories = set()
        self._planned_id = -1
        # Lookups Moodle refused: {key: (BLOCKED, reason) | (FAILED, error)}
        self._problems = {}
        # A look-up Moodle stopped answering part way: the error, and the
        # items it did not reach (not created: they may already exist).
        self._lookup_stopped = None
        self._not_looked_up = set()
        # Moodle course ids known to exist, known to be deleted.
        self._courses_seen = set()
        self._courses_lost = set()
        # {course key: reason} of the courses found deleted in Moodle.
        self._lost = {}
        # Users: the site allows extended characters in usernames (asked once
        # when needed); {key: "email" | "username"} of the accounts adopted by
        # that match in this run, {key: Moodle id before} of the adoptions
        # under way; {key: reason} of records Moodle refused that are blocked
        # instead of failed.
        self._extended = None
        self._adoptions = {}
        self._adopting = {}
        self._blocked_instead = {}
        # {key: note} of the usernames given a suffix because theirs is taken.
        self._renamed = {}
        # Existing accounts matched by email address or username, for a
        # Moodle Manager's review (dicts: key, res_model, res_id, label,
        # moodle_id, username, email, match, decision).
        self.candidates = []

    # ------------------------------------------------------------------
    # Entry point
    # ------------------------------------------------------------------

    def run(self, snapshot, phases=None, scope=None, part=None):
        """Push the snapshot.

        :param Snapshot snapshot: what OpenEduCat holds (all of it for a full
            push, or the records a job is about plus what they depend on)
        :param phases: the phases to run (default: the settings' phases)
        :param dict scope: for a partial push, ``{"enrolments": ids,
            "faculty": ids}``: only the enrolment mappings of these records are
            candidates for unenrolment; ``None`` means the snapshot is whole
        :param part: a :class:`.parallel.Part` of a parallel push: every
            record is planned as usual (the decisions about one person's
            account depend on the others), only the part's records are sent
            and stored, and only a part over every course unenrols
        :return: the counts per phase
        :rtype: PushResult
        :raise MoodleTransientError: Moodle failed part way; what succeeded is
            stored, the rest will be retried
        :raise MoodleAccessError: the instance needs an admin's attention
        """
        self.snapshot = snapshot
        self.scope = scope
        self.part = part
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
                    self._fit(item)
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
                self._fit(item)
            items.append(item)
        self._sync(items, result)
        self.result.phases[result.phase] = result

    def _phase_subjects(self, result):
        items = []
        dates = self._program_dates()
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
                department = self.snapshot.departments.get(
                    program.department_id or subject.department_id
                )
                item.payload = {
                    "fullname": f"{subject.name} ({program.name})",
                    "shortname": f"{subject.code}_{program.code}",
                    "categoryid": category,
                    "idnumber": key,
                    "summary": course_summary(subject, program, department),
                    "summaryformat": FORMAT_HTML,
                    **dates.get(program.id, {}),
                }
                self._fit(item)
            items.append(item)
        self._sync(items, result)
        self.result.phases[result.phase] = result

    def _program_dates(self):
        """``{program id: {"startdate": …, "enddate": …}}`` of the programs
        with active batches (:func:`course_dates`)."""
        batches = collections.defaultdict(list)
        for batch in self.snapshot.batches.values():
            if batch.active:
                batches[batch.course_id].append(batch)
        dates = {}
        for program_id, program_batches in batches.items():
            found = course_dates(program_batches, self.snapshot.tz)
            if found:
                dates[program_id] = found
        return dates

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
        items, people = [], {}
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
            item.blocked = self._person_problem(person)
            if not item.blocked:
                item.payload = self._user_payload(person, mapped.get(key))
                if item.payload["username"]:
                    self._fit(item)
                    if item.payload:
                        item.notes += self._phone_notes(person, item.payload)
                else:
                    item.payload = None
                    item.blocked = "no usable login or email for a Moodle username"
            items.append(item)
            people[key] = person
        aliases = self._one_account_per_email(items, people)
        own = [item for item in items if item.key not in aliases]
        self._unique_usernames(own, people)
        self._sync(self._of_part(own), result)
        self._link_aliases(
            self._of_part([item for item in items if item.key in aliases]),
            aliases,
            result,
        )
        self.result.phases[result.phase] = result

    def _user_payload(self, person, mapping):
        has_account = bool(mapping and mapping.moodle_id)
        payload = {
            "username": self._username(person, mapping if has_account else None),
            "firstname": person.first_name.strip(),
            "lastname": person.last_name.strip(),
            "email": person.email.strip(),
            "idnumber": idnumbers.student(person.id)
            if person.kind == "student"
            else idnumbers.faculty(person.id),
            "auth": self.settings.auth,
            "suspended": 0 if person.active else 1,
        }
        adopted = has_account and mapping.extra.get("adopted")
        if adopted and self.settings.adopt_keep_auth:
            # An adopted account keeps how it logs in (and its password).
            del payload["auth"]
        # Contact data is sent when OpenEduCat has it; a field OpenEduCat
        # leaves empty is not sent, and Moodle keeps what it holds.
        contact = {
            "lang": person.lang,
            "city": person.city,
            "country": (person.country or "").upper(),
            "phone1": moodle_phone(person.phone),
            "address": person.address,
        }
        for field, value in contact.items():
            value = (value or "").strip()
            if value:
                payload[field] = value
        return payload

    @staticmethod
    def _phone_notes(person, payload):
        """What became of a phone number too long for Moodle's column (it
        never blocks the account: the number is compacted, else left out)."""
        phone = (person.phone or "").strip()
        limit = limits.LIMITS[USER]["phone1"].limit
        if len(phone) <= limit:
            return ()
        if payload.get("phone1"):
            note = (
                f"phone1 written without spaces and punctuation (the number is "
                f"{len(phone)} characters; Moodle allows {limit})"
            )
        else:
            note = (
                f"phone1 left out: the number is {len(phone)} characters, too long "
                f"even without spaces and punctuation (Moodle allows {limit}): "
                f"{limits.IN_OPENEDUCAT}"
            )
        return (note,)

    def _username(self, person, mapping=None):
        """The person's Moodle username (:func:`.accounts.username`); an
        account the connector created or adopted keeps the one it has."""
        if mapping and mapping.extra.get("username"):
            return mapping.extra["username"]
        base = person.login or person.email or ""
        extended = accounts.needs_extended(base) and self._extended_usernames()
        return accounts.username(base, extended)

    def _extended_usernames(self):
        """Whether the site allows extended characters in usernames
        (``$CFG->extendedusernamechars``, not shown to web services): Moodle
        refuses a look-up by a username that its cleaning would change."""
        if self._extended is None:
            try:
                self.client.get_users_by_field("username", [accounts.EXTENDED_PROBE])
                self._extended = True
            except MoodleRecordError:
                self._extended = False
        return self._extended

    def _own_account(self, key):
        """The Moodle id of the account mapped to this very record (not one
        it shares), or ``None``."""
        mapping = self._map(USER).get(key)
        if mapping and mapping.moodle_id and not mapping.extra.get("account"):
            return mapping.moodle_id
        return None

    def _email_rank(self, item, person):
        """Who keeps an email address two of our people have: the one whose
        account already holds it unchanged, then one with an account, an
        active one, a student, the lowest id."""
        mapping = self._map(USER).get(item.key)
        own = bool(self._own_account(item.key))
        unchanged = (
            own
            and mapping.state == "synced"
            and mapping.sync_hash == payload_hash(item.payload)
        )
        student = person.kind == "student"
        return (not unchanged, not own, not person.active, not student, person.id)

    def _one_account_per_email(self, items, people):
        """Moodle allows one account per email address, letter case aside.

        Of our people with one email address, a student and a faculty member
        who are one person (:func:`.accounts.same_person`) share one account:
        the one of the first (see :meth:`_email_rank`), which keeps its
        idnumber; the other's enrolments use it. Anyone else is blocked with
        the reason, and sent once the address is changed.

        :return: ``{key of a person sharing an account: key of its owner}``
        """
        mapped = self._map(USER)
        groups = collections.defaultdict(list)
        for item in items:
            if item.payload:
                groups[item.payload["email"].lower()].append(item)
        aliases = {}
        for group in groups.values():
            if len(group) < 2:
                continue
            group.sort(key=lambda i: self._email_rank(i, people[i.key]))
            first = group[0]
            for item in group[1:]:
                person = people[item.key]
                if (
                    accounts.same_person(people[first.key], person)
                    and not self._own_account(item.key)
                    and first.key not in aliases.values()
                ):
                    aliases[item.key] = first.key
                    if person.active:
                        first.payload["suspended"] = 0
                    continue
                email = item.payload["email"]
                item.payload = None
                item.blocked = (
                    f"email address {email} is already used by {first.label} "
                    f"({first.key}): Moodle allows one account per email address; "
                    "change one of them in OpenEduCat"
                )
        # A push of some records only may not read the other person: the link
        # stored on the mapping holds until a full push sees both again.
        keys = {item.key for item in items}
        for item in items:
            mapping = mapped.get(item.key)
            owner = mapping.extra.get("account") if mapping else None
            if item.payload and owner and owner not in keys:
                aliases[item.key] = owner
        shared = set(aliases.values()) | {
            m.extra["account"] for m in mapped.values() if m.extra.get("account")
        }
        for item in items:
            if item.key in shared and item.payload and not people[item.key].active:
                # Someone else still logs in with this account.
                linked = [people.get(k) for k, o in aliases.items() if o == item.key]
                if not linked or any(p is None or p.active for p in linked):
                    item.payload["suspended"] = 0
        return aliases

    def _unique_usernames(self, items, people):
        """Two of our people with one username: those with an account keep
        theirs, then a student, the lowest id; the others get a suffix
        (:func:`.accounts.with_suffix`) before anything is sent."""
        taken = {}
        ranked = sorted(
            (item for item in items if item.payload),
            key=lambda i: (
                not self._own_account(i.key),
                i.res_model != "op.student",
                i.res_id,
            ),
        )
        for item in ranked:
            name = item.payload["username"]
            if name in taken and not self._own_account(item.key):
                why = f"also the username of {taken[name]}"
                self._rename(item, people[item.key], why)
                name = item.payload and item.payload["username"]
            if name:
                taken.setdefault(name, item.key)

    def _rename(self, item, person, why):
        """Give the item its suffixed username, or block it when that one
        would not fit Moodle's column."""
        old = item.payload["username"]
        new = accounts.with_suffix(old, person.kind, person.id)
        if len(new) > accounts.USERNAME_LIMIT:
            item.payload = None
            item.blocked = (
                f"username {old} is taken ({why}) and {new} is longer than Moodle "
                f"allows ({accounts.USERNAME_LIMIT}): shorten the login in OpenEduCat"
            )
            return
        item.payload = dict(item.payload, username=new)
        self._renamed[item.key] = f"username {old} is taken ({why}): created as {new}"

    def _link_aliases(self, items, aliases, result):
        """Map the people who share another's account (see
        :meth:`_one_account_per_email`): their row names the owner's key and
        holds no Moodle id of its own; their enrolments use the owner's."""
        saved = []
        for item in items:
            owner = aliases[item.key]
            if self._moodle_id(USER, owner) is None:
                self._block(
                    item,
                    f"shares the Moodle account of {owner}, which is not synced yet",
                    result,
                )
                continue
            mapping = self._map(USER).get(item.key)
            if (
                mapping
                and mapping.state == "synced"
                and (mapping.extra.get("account") == owner)
            ):
                result.unchanged += 1
                continue
            mapping = mapping or Mapping(USER, item.key, item.res_model, item.res_id)
            mapping.moodle_id = None
            mapping.idnumber = owner
            mapping.sync_hash = None
            mapping.state = "synced"
            mapping.retry_count, mapping.next_retry, mapping.last_error = 0, None, None
            mapping.last_sync = self.now
            mapping.extra["account"] = owner
            for key in ("failed_hash", "username", "adopted", "candidate"):
                mapping.extra.pop(key, None)
            result.adopted += 1
            saved.append(mapping)
            self._map(USER)[item.key] = mapping
        if not self.dry_run:
            self._save(saved)

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
                if self.part and not self.part.admits(GROUP, key):
                    continue
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
                    item.blocked = self._not_synced(course_key)
                else:
                    item.payload = {
                        "courseid": courseid,
                        "name": batch.name,
                        "idnumber": idnumbers.batch(batch.id),
                        "description": "",
                    }
                    self._fit(item)
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
            item.blocked = self._not_synced(course_key)
        else:
            item.payload = {"roleid": role, "userid": userid, "courseid": courseid}
            if group:
                groupid = self._moodle_id(GROUP, group)
                if groupid:
                    item.payload["groupid"] = groupid
        return item

    def _phase_enrolments(self, result):
        items = list(self._enrolment_items())
        self._sync(self._of_part(items), result)
        if self.part and not self.part.unenrols:
            self.result.phases[result.phase] = result
            return
        wanted = {item.key for item in items}
        stale = [
            m
            for key, m in self._map(ENROLMENT).items()
            if key not in wanted and self._in_scope(m)
        ]
        self._unenrol(stale, result)
        self.result.phases[result.phase] = result

    def _in_scope(self, mapping):
        """Whether this run may unenrol what ``mapping`` records.

        ``scope`` (``None``: everything) may name the records a partial push
        is about (``enrolments``, ``faculty``) and the programs a push limited
        to some departments covers (``programs``): an enrolment in another
        program is no concern of such a run.
        """
        if self.scope is None:
            return True
        programs = self.scope.get("programs")
        if programs is not None:
            parsed = idnumbers.parse(mapping.key.partition("@")[2])
            if not parsed or parsed[1][1] not in programs:
                return False
            if "enrolments" not in self.scope and "faculty" not in self.scope:
                return True
        if mapping.res_model == "op.student.course":
            return mapping.res_id in self.scope.get("enrolments", ())
        if mapping.res_model == "op.faculty":
            return mapping.res_id in self.scope.get("faculty", ())
        return False

    # ------------------------------------------------------------------
    # Plan
    # ------------------------------------------------------------------

    def _of_part(self, items):
        """The items of this run's part (all of them outside a parallel push)."""
        if self.part is None:
            return items
        return [item for item in items if self.part.admits(item.kind, item.key)]

    def _map(self, kind):
        if kind not in self._maps:
            self._maps[kind] = self.store.load(kind)
        return self._maps[kind]

    def _moodle_id(self, kind, key):
        """The Moodle id of a mapped object, or ``None`` when not synced (a
        person who shares another's account has that account's id)."""
        mapping = self._map(kind).get(key)
        if kind == USER and mapping and mapping.extra.get("account"):
            mapping = self._map(kind).get(mapping.extra["account"])
        if mapping and mapping.moodle_id:
            return mapping.moodle_id
        return None

    def _not_synced(self, course_key):
        """Why what lives in a course cannot be sent without it."""
        return self._lost.get(course_key) or f"course {course_key} is not synced yet"

    def _fit(self, item):
        """Fit the item's payload into Moodle's columns (:mod:`.limits`):
        shortened values are noted on the item, a value that cannot be
        shortened blocks it."""
        payload, notes, problem = limits.fit(item.kind, item.payload)
        if problem:
            item.payload, item.blocked = None, problem
        else:
            item.payload, item.notes = payload, tuple(notes)

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
            if item.notes:
                result.shortened += 1
                result.note(item, SHORTENED, "; ".join(item.notes))
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
        # Blocked even when the object is in Moodle (it keeps its Moodle id):
        # every record with a problem is found by its state.
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

    def _forget(self, mappings):
        """Drop mapping rows (their Moodle objects are gone, or were never
        there); the store is left alone in a dry run."""
        if not mappings:
            return
        if not self.dry_run:
            self.store.delete(mappings)
        for mapping in mappings:
            self._map(mapping.kind).pop(mapping.key, None)

    def _succeeded(self, item, moodle_id=None, extra=None):
        mapping = self._map(item.kind).get(item.key) or Mapping(
            item.kind, item.key, item.res_model, item.res_id
        )
        mapping.res_model, mapping.res_id = item.res_model, item.res_id
        if moodle_id:
            mapping.moodle_id = moodle_id
        mapping.idnumber = item.idnumber
        if item.kind == USER:
            # What was sent: an adoption or a free username may have changed
            # the planned payload, and the next run plans the same.
            mapping.sync_hash = payload_hash(item.payload)
            for key in ("account", "candidate"):
                mapping.extra.pop(key, None)
        else:
            mapping.sync_hash = item.digest or payload_hash(item.payload)
        mapping.state = "synced"
        mapping.retry_count = 0
        mapping.next_retry = None
        mapping.last_error = None
        mapping.last_sync = self.now
        mapping.extra.pop("failed_hash", None)
        # What was shortened to fit Moodle's columns, for the registrar.
        if item.notes:
            mapping.extra["shortened"] = list(item.notes)
        else:
            mapping.extra.pop("shortened", None)
        if extra:
            mapping.extra.update(extra)
        if item.kind == ENROLMENT and (mapping.extra.get("groupid") or None) != (
            item.payload.get("groupid") or None
        ):
            # Enrolled, but not (yet) in its batch's group: Moodle stopped
            # before the membership call, or refused it. Not taken for done:
            # the next run makes the membership (the enrolment is not resent).
            mapping.sync_hash = None
        return mapping

    def _failed(self, item, error):
        mapping = self._map(item.kind).get(item.key) or Mapping(
            item.kind, item.key, item.res_model, item.res_id, idnumber=item.idnumber
        )
        self._adoption_failed(item, mapping)
        return self._fail(mapping, error, item.digest or payload_hash(item.payload))

    def _fail(self, mapping, error, digest):
        """Count one more failure on a mapping and schedule its next attempt
        (5 min → 30 min → 4 h → 24 h → failed, :func:`.backoff.next_attempt`).

        :param digest: what failed: the payload's hash (or
            :data:`UNENROL_DIGEST`); the same one waits for its next attempt,
            a changed one is sent at once
        """
        mapping.retry_count += 1
        mapping.state, mapping.next_retry = next_attempt(mapping.retry_count, self.now)
        mapping.last_error = str(error)
        mapping.extra["failed_hash"] = digest
        attempts = mapping.extra.get("attempts") or []
        attempts.append(
            {"at": self.now.isoformat(timespec="seconds"), "error": str(error)}
        )
        mapping.extra["attempts"] = attempts[-MAX_ATTEMPTS_KEPT:]
        return mapping

    def _finish(self, items, batch, result, counter, extras=None):
        """Store the outcome of a batch call; raise if it stopped part way.

        A record that failed because its course is gone from Moodle is not a
        failure of its own (see :meth:`_lose_course`): a course is created
        again at once; what lives in it (a group, an enrolment) is blocked
        until the course is back.
        """
        lost = self._lost_with_course(
            {
                item.key: self._courseid_of(item, outcome)
                for item, outcome in zip(items, batch.outcomes, strict=True)
                if outcome.status == FAILED
            }
        )
        saved, blocked, again, refused = [], [], [], []
        for item, outcome in zip(items, batch.outcomes, strict=True):
            if outcome.status == FAILED and self._refusal_blocks(item, outcome):
                refused.append(item)
            elif outcome.ok:
                moodle_id = None
                if isinstance(outcome.value, dict):
                    moodle_id = outcome.value.get("id")
                extra = (extras or {}).get(item.key)
                if outcome.note:
                    extra = {**(extra or {}), "note": outcome.note}
                saved.append(self._succeeded(item, moodle_id, extra))
                if counter:
                    setattr(result, counter, getattr(result, counter) + 1)
            elif outcome.status == FAILED and item.key in lost:
                (again if item.kind == COURSE else blocked).append(item)
            elif outcome.status == FAILED:
                saved.append(self._failed(item, outcome.error))
                result.failed += 1
                result.note(item, FAILED, str(outcome.error))
        self._save(saved)
        for item in blocked:
            self._block(item, self._not_synced(_course_key(item.key)), result)
        for item in refused:
            self._block(item, self._blocked_instead.pop(item.key), result)
        if batch.aborted is not None:
            raise batch.aborted
        if again:
            self._create(again, result)

    # --- courses deleted in Moodle --------------------------------------

    def _courseid_of(self, item, outcome):
        """The Moodle course a failed record was about, if any."""
        if item.kind == COURSE:
            return outcome.record.get("id")
        if item.kind in (GROUP, ENROLMENT):
            return (item.payload or {}).get("courseid")
        return None

    def _lost_with_course(self, courses):
        """``{key: Moodle course id}`` of failed records → the keys whose
        course is gone from Moodle."""
        courses = {k: c for k, c in courses.items() if c and c > 0}
        if not courses:
            return set()
        gone = self._missing_courses(set(courses.values()))
        return {key for key, courseid in courses.items() if courseid in gone}

    def _missing_courses(self, courseids):
        """The ids among ``courseids`` of courses deleted in Moodle.

        Asks Moodle in one call about the courses not known yet in this run;
        each deleted one loses its mappings (:meth:`_lose_course`).
        """
        unknown = sorted(set(courseids) - self._courses_seen - self._courses_lost)
        if unknown:
            try:
                courses = self.client.get_courses_by_ids(unknown)
            except MoodleRecordError:
                return set()  # cannot tell: the records fail on their own
            found = {c.get("id") for c in courses}
            self._courses_seen.update(found)
            for courseid in unknown:
                if courseid not in found:
                    self._lose_course(courseid)
        return set(courseids) & self._courses_lost

    def _lose_course(self, courseid):
        """A course deleted in Moodle outside the connector: its mapping goes,
        with those of its groups and enrolments (Moodle deleted them with it),
        as after a drift check, so that the push creates it again (after a
        lookup by idnumber) and what it held follows."""
        self._courses_lost.add(courseid)
        if self._moodle_courses:
            self._moodle_courses = {
                k: c for k, c in self._moodle_courses.items() if c["id"] != courseid
            }
        for key, mapping in list(self._map(COURSE).items()):
            if mapping.moodle_id != courseid:
                continue
            self._lost[key] = (
                f"course {key} was deleted in Moodle (id {courseid}); the push "
                "creates it again, then this follows"
            )
            self.result.lost.append(
                {
                    "kind": COURSE,
                    "key": key,
                    "moodle_id": courseid,
                    "reason": "deleted in Moodle",
                }
            )
            inside = "@" + key
            gone = [mapping]
            for kind in (GROUP, ENROLMENT):
                gone += [m for k, m in self._map(kind).items() if k.endswith(inside)]
            self._forget(gone)

    # --- create ---------------------------------------------------------

    def _create(self, items, result):
        kind = items[0].kind
        if kind == ENROLMENT:
            self._enrol(items, result, "created")
            return
        adopted, items = self._adopt(kind, items)
        stopped, self._lookup_stopped = self._lookup_stopped, None
        if stopped is not None:
            items = [i for i in items if i.key not in self._not_looked_up]
        items = self._settle_refused(items, result)
        if adopted:
            result.adopted += len(adopted)
            # OpenEduCat wins: adopted objects get our payload.
            # They count once, as adopted; their failures count as failures.
            self._update(adopted, result, counter=None)
        if not items:
            if stopped is not None:
                raise stopped
            return
        records = [self._create_record(item) for item in items]
        method = {
            CATEGORY: self.client.create_categories,
            COURSE: self.client.create_courses,
            USER: self.client.create_users,
            GROUP: self.client.create_groups,
        }[kind]
        extras = None
        if kind == USER:
            batch = self._send_users(method, records)
            self._explain_refused_users(items, batch)
            extras = {}
            for item in items:
                extras[item.key] = {"username": item.payload["username"]}
                if item.key in self._renamed:
                    extras[item.key]["note"] = self._renamed[item.key]
        else:
            batch = method(records)
        if kind == COURSE:
            self._fresh_courses.update(
                o.value["id"] for o in batch.outcomes if o.ok and o.value
            )
        if kind == CATEGORY:
            # made by this run: no course to look for in them
            self._course_categories.update(
                o.value["id"] for o in batch.outcomes if o.ok and o.value
            )
        self._finish(items, batch, result, "created", extras)
        if stopped is not None:
            raise stopped

    def _create_record(self, item):
        record = dict(item.payload)
        if item.kind == USER:
            record.pop("suspended", None)
            if record.get("auth") == "manual":
                record["createpassword"] = 1
        return record

    def _send_users(self, method, records):
        """Create or update users. A record Moodle refuses that carries a
        language is sent once more without it: Moodle refuses a language whose
        pack it lacks (``invalidparameter``), and that never blocks an
        account; it then has the site's default language, and a note says
        why."""
        batch = method(records)
        again = [
            index
            for index, outcome in enumerate(batch.outcomes)
            if outcome.status == FAILED
            and outcome.record.get("lang")
            and getattr(outcome.error, "errorcode", None) == "invalidparameter"
        ]
        if not again or batch.aborted is not None:
            return batch
        retry = method(
            [
                {k: v for k, v in batch.outcomes[i].record.items() if k != "lang"}
                for i in again
            ]
        )
        for index, outcome in zip(again, retry.outcomes, strict=True):
            first = batch.outcomes[index]
            if outcome.ok:
                first.status, first.value = outcome.status, outcome.value
                first.error = None
                first.note = (
                    f"language {first.record['lang']} is not installed in Moodle: "
                    "the account has the site's default language"
                )
            elif outcome.status == FAILED:
                first.error = outcome.error
            else:
                first.status, first.error = outcome.status, None
        batch.aborted = retry.aborted
        return batch

    def _explain_refused_users(self, items, batch):
        """Why Moodle refused to create these users, when it is an account
        that already holds the email address in another letter case: on
        PostgreSQL the look-up by email compares case and misses it, while the
        create compares without case and refuses (``invalidparameter``).
        ``core_user_get_users`` finds it (optional: without it in the service
        the records fail as Moodle said). Such a record is blocked with the
        reason instead of failed, and the account is remembered on the mapping
        as a candidate for adoption."""
        for item, outcome in zip(items, batch.outcomes, strict=True):
            if outcome.status != FAILED or (
                getattr(outcome.error, "errorcode", None) != "invalidparameter"
            ):
                continue
            email = item.payload["email"]
            try:
                answer = self.client.call(
                    "core_user_get_users", criteria=[{"key": "email", "value": email}]
                )
            except (MoodleAccessError, MoodleRecordError):
                return  # cannot tell: the records fail as Moodle said
            found = [
                u
                for u in (answer or {}).get("users") or []
                if (u.get("email") or "").lower() == email.lower()
            ]
            if not found:
                continue
            account = found[0]
            mapping = self._map(USER).get(item.key) or Mapping(
                USER, item.key, item.res_model, item.res_id, idnumber=item.idnumber
            )
            if not idnumbers.parse(account.get("idnumber")):
                mapping.extra["candidate"] = account["id"]
            self._map(USER)[item.key] = mapping
            self._blocked_instead[item.key] = self._taken(item, account)

    def _settle_refused(self, items, result):
        """Settle the items whose lookup Moodle refused (a failure, with the
        per-record backoff) or could not make (blocked: their course is
        gone); return the others."""
        rest, failed = [], []
        for item in items:
            problem = self._problems.pop(item.key, None)
            if problem is None:
                rest.append(item)
            elif problem[0] == BLOCKED:
                self._block(item, problem[1], result)
            elif problem[0] == SHARED:
                self._link_aliases([item], {item.key: problem[1]}, result)
            else:
                failed.append(self._failed(item, problem[1]))
                result.failed += 1
                result.note(item, FAILED, str(problem[1]))
        self._save(failed)
        return rest

    def _find(self, kind, items):
        """Look the items up in Moodle: ``{key: Moodle object}`` for those
        found by our idnumber (or, for users, our email or username).

        A lookup Moodle refuses costs only the items that needed it: they are
        left in ``self._problems`` (``{key: (FAILED, error) | (BLOCKED,
        reason)}``) and the others go on.
        """
        try:
            if kind == CATEGORY and self._moodle_categories is None:
                self._moodle_categories = {
                    c["idnumber"]: c
                    for c in self.client.get_categories()
                    if c.get("idnumber")
                }
        except MoodleRecordError as err:
            for item in items:
                self._problems[item.key] = (FAILED, err)
            return {}
        if kind == CATEGORY:
            return {i.key: self._moodle_categories.get(i.idnumber) for i in items}
        if kind == COURSE:
            return self._find_courses(items)
        if kind == USER:
            return self._find_users(items)
        if kind == GROUP:
            return self._find_groups(items)
        return {}

    def _find_courses(self, items):
        """Courses with the items' idnumbers, looked for where ours live:
        one call per category the items go to (their program's category), so
        that what Moodle returns is bounded by our categories, never by the
        size of the site. Each category is read once per run.

        A course of ours moved to another category is not found there: its
        create is refused (the idnumber is taken) and fails once; the next
        attempt asks Moodle for it by idnumber (:meth:`_courses_to_ask_alone`).
        A category Moodle refuses to list (while one of its courses is being
        deleted) costs its items one call each.
        """
        if self._moodle_courses is None:
            self._moodle_courses = {}
        by_category = collections.defaultdict(list)
        alone = []
        for item in items:
            category = (item.payload or {}).get("categoryid")
            if category and category > 0:
                by_category[category].append(item)
            else:
                alone.append(item)
        for category, members in sorted(by_category.items()):
            if category in self._course_categories:
                continue
            try:
                courses = self.client.get_courses_in_category(category)
            except MoodleRecordError:
                alone += members
                continue
            self._course_categories.add(category)
            self._moodle_courses.update(
                {c["idnumber"]: c for c in courses if c.get("idnumber")}
            )
        found = {i.key: self._moodle_courses.get(i.idnumber) for i in items}
        ask = {i.key: i for i in alone if not found[i.key]}
        ask.update({i.key: i for i in self._courses_to_ask_alone(items, found)})
        found.update(self._find_courses_one_by_one(list(ask.values())))
        return found

    def _courses_to_ask_alone(self, items, found):
        """The items no category listing found that are asked for by
        idnumber, one call each: those whose create failed before (a course
        of ours moved to another category in Moodle)."""
        courses = self._map(COURSE)
        return [
            item
            for item in items
            if not found.get(item.key)
            and item.key in courses
            and courses[item.key].retry_count
        ]

    def _find_courses_one_by_one(self, items):
        """Courses by idnumber, one call each: a refusal costs its item only."""
        found = {}
        for item in items:
            try:
                found[item.key] = self.client.get_course_by_idnumber(item.idnumber)
            except MoodleRecordError as err:
                self._problems[item.key] = (FAILED, err)
        return found

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
                if kind == USER:
                    self._adopting[item.key] = mapping.moodle_id
                    self._prepare_adoption(item, mapping, match)
                mapping.moodle_id = match["id"]
                self._map(kind)[item.key] = mapping
                adopted.append(item)
            else:
                rest.append(item)
        return adopted, rest

    def _prepare_adoption(self, item, mapping, account):
        """An account adopted by email address or username keeps its username
        and (unless the instance says otherwise) its authentication method;
        the mapping remembers both, so that later pushes send the same."""
        how = self._adoptions.get(item.key)
        if not how:
            return  # found by our idnumber: ours already
        payload = dict(item.payload)
        payload["username"] = account.get("username") or payload["username"]
        if self.settings.adopt_keep_auth:
            payload.pop("auth", None)
        item.payload = payload
        mapping.extra["adopted"] = how
        mapping.extra["username"] = payload["username"]

    def _adoption_failed(self, item, mapping):
        """Moodle refused the update that adopts an account: it is not ours."""
        if item.key not in self._adopting:
            return
        mapping.moodle_id = self._adopting.pop(item.key)
        for key in ("adopted", "username"):
            mapping.extra.pop(key, None)

    def _refusal_blocks(self, item, outcome):
        """True when a record Moodle refused is blocked (with a reason in
        ``_blocked_instead``) rather than failed: an account Moodle will not
        let the connector change (a site administrator…), or an email address
        an account already holds."""
        code = getattr(outcome.error, "errorcode", None)
        if item.key in self._adopting and code in _NOT_ADOPTABLE:
            mapping = self._map(USER)[item.key]
            account = mapping.moodle_id
            self._adoption_failed(item, mapping)
            reason = (
                f"Moodle account {account} has this person's email address or "
                f"username, but Moodle does not let the connector change it "
                f"({outcome.error}): it is never adopted; change the email address "
                "in OpenEduCat or in Moodle"
            )
            # Remembered: no later push asks Moodle again.
            mapping.extra["refused"] = {
                **(mapping.extra.get("refused") or {}),
                str(account): reason,
            }
            self._blocked_instead[item.key] = reason
        return item.key in self._blocked_instead

    def _users_by(self, field, values):
        """``core_user_get_users_by_field``, split when Moodle refuses a value
        (it cleans each one, e.g. as an email address, and refuses the call
        when one changes) until the refused ones stand alone.

        :return: ``(users, {refused value: error})``
        """
        try:
            return self.client.get_users_by_field(field, values), {}
        except MoodleRecordError as err:
            if len(values) == 1:
                return [], {values[0]: err}
        middle = len(values) // 2
        users, refused = self._users_by(field, values[:middle])
        more, also = self._users_by(field, values[middle:])
        return users + more, {**refused, **also}

    def _find_users(self, items):
        """``{key: account}`` of the users to adopt instead of creating: those
        with our idnumber (ours), and existing accounts matched by email
        address or username as the instance's policy allows (:meth:`_choose`).
        The others are blocked with the reason (``self._problems``), or keep
        going to the create with a free username."""
        found = {}
        users, refused = self._users_by("idnumber", [i.key for i in items])
        by_idnumber = {u.get("idnumber"): u for u in users}
        rest = []
        for item in items:
            if item.key in by_idnumber:
                found[item.key] = by_idnumber[item.key]
            elif item.key in refused:
                self._problems[item.key] = (FAILED, refused[item.key])
            else:
                rest.append(item)
        if rest:
            found.update(self._decide(rest, self._account_matches(rest)))
        return found

    def _account_matches(self, items):
        """The existing accounts each item matches, and by what:
        ``{key: {Moodle id: (account, {"email", "username"})}}``.

        Emails are compared without letter case. Moodle on PostgreSQL compares
        case in a look-up by email, so each address is looked up as given, in
        lower and in upper case (Moodle stores what it was sent); accounts
        remembered on the mapping (found when Moodle refused a create, or
        approved by a Moodle Manager) are looked up by id.
        """
        emails = sorted({v for i in items for v in _email_forms(i.payload["email"])})
        by_email, refused = self._users_by("email", emails)
        names = sorted({i.payload["username"] for i in items})
        by_username, refused_names = self._users_by("username", names)
        remembered = {}
        for item in items:
            mapping = self._map(USER).get(item.key)
            extra = mapping.extra if mapping else {}
            ids = {extra.get("candidate"), (extra.get("adopt") or {}).get("moodle_id")}
            ids = {i for i in ids if isinstance(i, int)}
            if ids:
                remembered[item.key] = ids
        by_id = []
        if remembered:
            wanted = sorted(set().union(*remembered.values()))
            by_id = self._users_by("id", wanted)[0]
        index_email, index_name = (
            collections.defaultdict(dict),
            collections.defaultdict(dict),
        )
        for account in by_email + by_username + by_id:
            index_email[(account.get("email") or "").lower()][account["id"]] = account
            index_name[account.get("username")][account["id"]] = account
        matches = {}
        for item in items:
            email, name = item.payload["email"], item.payload["username"]
            problem = refused_names.get(name) or next(
                (refused[v] for v in _email_forms(email) if v in refused), None
            )
            if problem:
                self._problems[item.key] = (FAILED, problem)
                continue
            found = {}
            for account in index_email.get(email.lower(), {}).values():
                found.setdefault(account["id"], (account, set()))[1].add("email")
            for account in index_name.get(name, {}).values():
                found.setdefault(account["id"], (account, set()))[1].add("username")
            matches[item.key] = found
        return matches

    def _decide(self, items, matches):
        """Apply the adoption policy to each item's matches; return
        ``{key: account}`` of the accounts adopted."""
        policy = self.settings.adopt_accounts
        claims = collections.Counter(mid for m in matches.values() for mid in m)
        found, automatic, creates = {}, [], []
        for item in items:
            if item.key not in matches:
                continue  # Moodle refused the look-up: settled as a failure
            choice = self._choose(item, matches[item.key], policy, claims)
            if choice is None:
                creates.append(item)
            elif choice[0] == "adopt":
                found[item.key] = choice[1]
                self._adoptions[item.key] = choice[2]
            elif choice[0] == "auto":
                automatic.append((item, choice[1]))
            elif choice[0] == SHARED:
                self._problems[item.key] = choice
            else:
                self._problems[item.key] = (BLOCKED, choice[1])
        found.update(self._adopt_automatically(automatic))
        self._free_usernames(creates, matches)
        return found

    def _choose(self, item, match, policy, claims):
        """What to do with one person's matches: ``None`` (create an account),
        ``("adopt", account, how)``, ``("auto", account)`` (adopt if its
        rights allow) or ``("block", reason)``.

        A Moodle Manager's decisions (the Initial Import wizard) are on the
        mapping: ``extra["adopt"] = {"moodle_id": the approved account,
        "separate": [accounts that are someone else]}``; an approval holds
        only while the account still matches and carries none of our
        idnumbers.
        """
        others = {}
        for mid, (account, fields) in match.items():
            if not idnumbers.parse(account.get("idnumber")):
                others[mid] = (account, fields)
            elif "email" in fields and self._same_person_account(item, account):
                return (SHARED, account["idnumber"])
            elif "email" in fields:
                return ("block", self._taken(item, account))
        mapping = self._map(USER).get(item.key)
        extra = mapping.extra if mapping else {}
        for mid, reason in (extra.get("refused") or {}).items():
            if others.pop(int(mid), (None, ()))[1]:
                return ("block", reason)
        decision = extra.get("adopt") or {}
        if policy != accounts.NEVER:
            self._note_candidates(item, others, decision)
        chosen = decision.get("moodle_id")
        if chosen in others and policy != accounts.NEVER:
            fields = others[chosen][1]
            how = "email" if "email" in fields else "username"
            return ("adopt", others[chosen][0], how)
        separate = None
        for mid in decision.get("separate") or ():
            if mid in others:
                account, fields = others.pop(mid)
                separate = separate or ("email" in fields and account)
        if separate:
            return ("block", self._taken(item, separate, separate=True))
        by_email = [a for a, fields in others.values() if "email" in fields]
        if policy == accounts.NEVER or not others:
            return ("block", self._taken(item, by_email[0])) if by_email else None
        if policy == accounts.AUTO and len(others) == 1:
            mid, (account, fields) = next(iter(others.items()))
            if "email" in fields and claims[mid] == 1:
                return ("auto", account)
        return ("block", self._review_reason(item, others, policy, claims))

    def _same_person_account(self, item, account):
        """Our account of a student (or faculty member) that this faculty
        member (or student) is, by the account's email address and names (a
        push of some records only does not read the other person)."""
        parsed = idnumbers.parse(account.get("idnumber"))
        kind = item.res_model.split(".")[-1]
        if not parsed or parsed[0] not in ("student", "faculty") or parsed[0] == kind:
            return False
        first = dataclasses.replace(
            _PERSON,
            kind=kind,
            first_name=item.payload["firstname"],
            last_name=item.payload["lastname"],
            email=item.payload["email"],
        )
        other = dataclasses.replace(
            _PERSON,
            kind=parsed[0],
            first_name=account.get("firstname"),
            last_name=account.get("lastname"),
            email=account.get("email"),
        )
        return accounts.same_person(first, other)

    def _note_candidates(self, item, others, decision):
        for mid, (account, fields) in sorted(others.items()):
            self.candidates.append(
                {
                    "key": item.key,
                    "res_model": item.res_model,
                    "res_id": item.res_id,
                    "label": item.label,
                    "moodle_id": mid,
                    "username": account.get("username") or "",
                    "email": account.get("email") or "",
                    "match": ", ".join(sorted(fields)),
                    "decision": "adopt"
                    if decision.get("moodle_id") == mid
                    else "separate"
                    if mid in (decision.get("separate") or ())
                    else None,
                }
            )

    def _taken(self, item, account, separate=False):
        """Why a person cannot have an account: its email address is held by
        ``account``."""
        email = item.payload["email"]
        what = f"Moodle account {account['id']} ({account.get('username')})"
        if idnumbers.parse(account.get("idnumber")):
            return (
                f"email address {email} is already used by the Moodle account of "
                f"{account['idnumber']} (id {account['id']}): Moodle allows one "
                "account per email address; change one of them"
            )
        if separate:
            why = "a Moodle Manager said it is someone else"
        elif self.settings.adopt_accounts == accounts.NEVER:
            why = "adopting existing accounts is off on this instance"
        else:
            return self._review_reason(
                item, {account["id"]: (account, {"email"})}, None, {}
            )
        return (
            f"email address {email} is already used by {what}, which the connector "
            f"did not create, and {why}: Moodle allows one account per email "
            "address; change it in OpenEduCat or in Moodle"
        )

    @staticmethod
    def _review_reason(item, others, policy, claims, problem=None):
        names = ", ".join(
            f"Moodle account {mid} ({account.get('username')}, by "
            f"{' and '.join(sorted(fields))})"
            for mid, (account, fields) in sorted(others.items())
        )
        if problem:
            why = f"not adopted automatically: {problem}"
        elif policy == accounts.AUTO and len(others) > 1:
            why = "not adopted automatically: more than one account matches"
        elif policy == accounts.AUTO and any(claims.get(m, 0) > 1 for m in others):
            why = "not adopted automatically: it matches more than one person"
        elif policy == accounts.AUTO:
            why = "not adopted automatically: its email address is not this person's"
        else:
            why = "waiting for a Moodle Manager's review"
        return (
            f"{names} may be this person's: {why}; approve or refuse it in the "
            "Initial Import wizard"
        )

    def _adopt_automatically(self, automatic):
        """Adopt the accounts that can do nothing a student cannot
        (:func:`.accounts.check_accounts`); the others wait for a review."""
        if not automatic:
            return {}
        problems, _rights = accounts.check_accounts(
            self.client, [account["id"] for _, account in automatic]
        )
        found = {}
        for item, account in automatic:
            problem = problems.get(account["id"])
            if problem:
                reason = self._review_reason(
                    item,
                    {account["id"]: (account, {"email"})},
                    accounts.AUTO,
                    {},
                    problem,
                )
                self._problems[item.key] = (BLOCKED, reason)
            else:
                found[item.key] = account
                self._adoptions[item.key] = "email"
        return found

    def _free_usernames(self, items, matches):
        """A username an existing account has (and that account is not
        adopted) gets a suffix before the create; one more look-up checks the
        new names."""
        renamed = {}
        for item in items:
            if any("username" in f for _, f in matches[item.key].values()):
                kind = item.res_model.split(".")[-1]
                new = accounts.with_suffix(item.payload["username"], kind, item.res_id)
                renamed[item.key] = new
        if not renamed:
            return
        taken, refused = self._users_by("username", sorted(set(renamed.values())))
        taken = {u.get("username") for u in taken} | set(refused)
        for item in items:
            new = renamed.get(item.key)
            if not new:
                continue
            old = item.payload["username"]
            if new in taken or len(new) > accounts.USERNAME_LIMIT:
                reason = (
                    f"username {old} is taken in Moodle, and {new} is taken or too "
                    "long: change the login in OpenEduCat"
                )
                self._problems[item.key] = (BLOCKED, reason)
                continue
            item.payload = dict(item.payload, username=new)
            self._renamed[item.key] = (
                f"username {old} is taken in Moodle by another account: "
                f"created as {new}"
            )

    def _find_groups(self, items):
        found = {}
        by_course = collections.defaultdict(list)
        for item in items:
            if item.payload["courseid"] not in self._fresh_courses:
                by_course[item.payload["courseid"]].append(item)
        courses = list(by_course.items())
        for position, (courseid, course_items) in enumerate(courses):
            try:
                groups = self.client.get_course_groups(courseid)
            except MoodleRecordError as err:
                # Most often the course was deleted in Moodle.
                self._unreadable(courseid, course_items, err)
                continue
            except (MoodleTransientError, MoodleAccessError) as err:
                # Moodle stopped answering: what was looked up is created now
                # (one look-up per course would otherwise have to succeed in
                # a row for any group to be made); the rest waits, unsent.
                self._lookup_stopped = err
                self._not_looked_up.update(
                    item.key for _cid, rest in courses[position:] for item in rest
                )
                break
            self._courses_seen.add(courseid)
            groups = {g.get("idnumber"): g for g in groups}
            for item in course_items:
                if item.idnumber in groups:
                    found[item.key] = groups[item.idnumber]
        return found

    def _unreadable(self, courseid, items, error):
        """Moodle refused to read a course for these items: when the course is
        gone they wait for it to be created again, else they fail with the
        error (and are retried on their own schedule)."""
        gone = courseid in self._missing_courses({courseid})
        for item in items:
            if gone:
                reason = self._not_synced(_course_key(item.key))
                self._problems[item.key] = (BLOCKED, reason)
            else:
                self._problems[item.key] = (FAILED, error)

    # --- update ---------------------------------------------------------

    def _update(self, items, result, counter="updated"):
        kind = items[0].kind
        if kind == ENROLMENT:
            self._enrol(items, result, counter)
            return
        kind_map = self._map(kind)
        live = []
        for item in items:
            if item.key in kind_map:
                live.append(item)
            else:
                # Its course was found deleted in Moodle during this push.
                self._block(item, self._not_synced(_course_key(item.key)), result)
        if not live:
            return
        records = []
        for item in live:
            record = {"id": kind_map[item.key].moodle_id, **item.payload}
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
        if kind == USER:
            batch = self._send_users(method, records)
        else:
            batch = method(records)
        self._finish(live, batch, result, counter)

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
            self._count_refused_memberships(moved, extras, result)
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
            self._count_refused_memberships(enrolled, extras, result)
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
            by_member = {
                (item.payload.get("groupid"), item.payload["userid"]): item.key
                for item in items
            }
            for outcome in batch.failed:
                # Enrolled, but not in the group: this one only keeps its old
                # group (so the next run tries the membership again) and says
                # why on its mapping row.
                key = by_member.get(
                    (outcome.record["groupid"], outcome.record["userid"])
                )
                if key is not None:
                    extras[key] = {
                        "note": "enrolled, but Moodle refused the group "
                        f"membership: {outcome.error}",
                        "membership_refused": True,
                    }
        return extras

    def _count_refused_memberships(self, items, extras, result):
        """Refused memberships are failures of the run (their enrolment is
        kept; the membership is tried again by the next run)."""
        for item in items:
            extra = extras.get(item.key) or {}
            if extra.pop("membership_refused", False):
                result.failed += 1
                result.note(item, "failed", extra.get("note"))

    # --- unenrolments ---------------------------------------------------

    def _unenrol(self, mappings, result):
        """Unenrol what OpenEduCat no longer holds (Moodle's manual
        unenrolment removes every role), except what waits for its next
        attempt after a failure and what is held (:meth:`_hold`)."""
        if not mappings:
            return
        send, orphans = [], []
        for mapping in mappings:
            user, course = mapping.key.split("@", 1)
            userid = self._moodle_id(USER, user)
            courseid = self._moodle_id(COURSE, course)
            if not (userid and courseid):
                orphans.append(mapping)  # nothing in Moodle to remove
                continue
            waiting = self._unenrol_waiting(mapping)
            if waiting:
                result.waiting += 1
                result.records.append(_unenrol_record(mapping, WAITING, waiting))
                continue
            send.append((mapping, {"userid": userid, "courseid": courseid}))
        send = self._hold(send, result)
        if self.dry_run:
            for mapping in orphans + [m for m, _ in send]:
                result.unenrolled += 1
                result.records.append(_unenrol_record(mapping, UNENROL, None))
            return
        self._forget(orphans)
        if not send:
            return
        batch = self.client.unenrol_users([record for _, record in send])
        outcomes = list(zip(send, batch.outcomes, strict=True))
        gone = [mapping for (mapping, _), outcome in outcomes if outcome.ok]
        self._forget(gone)
        result.unenrolled += len(gone)
        failed = [(m, r, o) for (m, r), o in outcomes if o.status == FAILED]
        # An unenrolment from a course deleted in Moodle has nothing left to do.
        lost = self._lost_with_course({m.key: r["courseid"] for m, r, _ in failed})
        saved = []
        for mapping, _, outcome in failed:
            if mapping.key in lost:
                continue
            saved.append(self._fail(mapping, outcome.error, UNENROL_DIGEST))
            result.failed += 1
            result.records.append(_unenrol_record(mapping, FAILED, str(outcome.error)))
        self._save(saved)
        batch.raise_if_aborted()

    def _unenrol_waiting(self, mapping):
        """Why an unenrolment that failed before is not tried now (its next
        attempt is not due, or the schedule is spent), else ``None``."""
        if mapping.extra.get("failed_hash") != UNENROL_DIGEST:
            return None
        if mapping.state == "failed":
            return mapping.last_error or "failed"
        if mapping.state == "error":
            due = mapping.next_retry is None or mapping.next_retry <= self.now
            if not due:
                return mapping.last_error or "waiting for the next attempt"
        return None

    def _unenrol_limit(self, enrolments):
        """The most unenrolments a run makes unconfirmed (see
        :class:`PushSettings`), or ``None`` for no limit."""
        settings = self.settings
        bounds = []
        if settings.unenrol_limit_count:
            bounds.append(int(settings.unenrol_limit_count))
        if settings.unenrol_limit_percent:
            share = enrolments * float(settings.unenrol_limit_percent) / 100
            bounds.append(math.ceil(share - 1e-9))
        if not bounds:
            return None
        return max(UNENROL_LIMIT_FLOOR, min(bounds))

    def _hold(self, pending, result):
        """Hold the run's unconfirmed unenrolments when they are more than the
        limit: no call, the mapping rows stay, the result says how many, why
        and which. Return the ``(mapping, record)`` pairs that may go."""
        confirmed = self.settings.unenrol_confirmed or frozenset()
        unconfirmed = [m for m, _ in pending if m.key not in confirmed]
        # The instance's enrolments: its mapping rows Moodle has enrolled.
        enrolments = sum(1 for m in self._map(ENROLMENT).values() if m.sync_hash)
        limit = self._unenrol_limit(enrolments)
        if limit is None or len(unconfirmed) <= limit:
            return pending
        reason = (
            f"{len(unconfirmed)} unenrolments at once, more than the limit of "
            f"{limit} for this instance's {enrolments} enrolments: held until a "
            "Moodle Manager confirms them"
        )
        held = {m.key for m in unconfirmed}
        result.held += len(held)
        for mapping in unconfirmed:
            result.records.append(_unenrol_record(mapping, HELD, reason))
        self.result.held_unenrolments = {
            "count": len(held),
            "limit": limit,
            "enrolments": enrolments,
            "reason": reason,
            "keys": sorted(held),
        }
        return [(m, r) for m, r in pending if m.key not in held]


def course_summary(subject, program, department=None):
    """A course's summary, from what OpenEduCat holds (it has no description
    of subjects or programs): the subject, the program and the department,
    one line each, as HTML (:data:`FORMAT_HTML`), every value escaped.

    Moodle stores it as sent and returns it unchanged (checked on 4.5 and
    5.1), so the drift check compares it as it is.

    :param rows.Subject subject: the subject
    :param rows.Program program: the program
    :param rows.Department department: the department, if any
    :rtype: str
    """

    def named(row):
        code = (getattr(row, "code", "") or "").strip()
        return f"{row.name} ({code})" if code else row.name

    lines = [("subject", named(subject)), ("program", named(program))]
    if department:
        lines.append(("department", department.name))
    return "".join(
        f"<p><strong>{html.escape(SUMMARY_LABELS[label], quote=False)}:</strong> "
        f"{html.escape(value.strip(), quote=False)}</p>"
        for label, value in lines
    )


def course_dates(batches, tz="UTC"):
    """The dates of a program's courses, from its batches.

    The start is the earliest batch's first day at 00:00, the end the latest
    batch's last day at 23:59, in the institution's time zone ``tz`` (UTC when
    unknown). Batches without both dates are left out; without any, the
    courses get no dates (``{}``: Moodle keeps its own). Moodle refuses an end
    before the start; should the batches give one, the end is ``0`` (no end
    date), never a refused record.

    :param batches: the program's active :class:`~.rows.Batch` rows
    :param str tz: an IANA time zone name
    :return: ``{"startdate": unix time, "enddate": unix time}`` or ``{}``
    :rtype: dict
    """
    spans = [(b.start_date, b.end_date) for b in batches if b.start_date and b.end_date]
    if not spans:
        return {}
    try:
        zone = zoneinfo.ZoneInfo(tz or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = datetime.timezone.utc
    first = min(start for start, _ in spans)
    last = max(end for _, end in spans)
    start = datetime.datetime.combine(first, datetime.time(), zone)
    end = datetime.datetime.combine(last, datetime.time(), zone) + _END_OF_DAY
    startdate, enddate = int(start.timestamp()), int(end.timestamp())
    return {"startdate": startdate, "enddate": enddate if enddate > startdate else 0}


def moodle_phone(phone):
    """A phone number as Moodle's column (20 characters) holds it: as written
    when it fits, else without its spaces and punctuation; ``None`` when even
    that is too long (the number is left out, the account still goes)."""
    phone = (phone or "").strip()
    limit = limits.LIMITS[USER]["phone1"].limit
    if len(phone) > limit:
        phone = _PHONE_PUNCTUATION.sub("", phone)
    return phone if phone and len(phone) <= limit else None


def _email_forms(email):
    """An email address as given, in lower and in upper case (once each)."""
    return list(dict.fromkeys((email, email.lower(), email.upper())))


def _course_key(key):
    """The course key of a course, or of what lives in one
    (``oec_batch_3@oec_subj_15_course_7`` → ``oec_subj_15_course_7``)."""
    return key.split("@", 1)[-1]


def _unenrol_record(mapping, action, reason):
    return {
        "key": mapping.key,
        "kind": ENROLMENT,
        "res_model": mapping.res_model,
        "res_id": mapping.res_id,
        "label": mapping.key,
        "action": action,
        "reason": reason,
    }
