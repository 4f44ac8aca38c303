"""A full push in parts that can run at once.

After the structure (departments, programs, subject courses: the dependencies
of everything else, pushed by one job), what is left of a first push is
mostly independent work: accounts, and the groups and enrolments of each
course. :func:`split` cuts it into parts that never write the same mapping
rows:

* stage 1, **users**: the people, cut into disjoint sets of mapping keys. The
  people whose accounts the push decides together (one email address, one
  username, an account shared by a student and a faculty member who are one
  person, see :meth:`.push.PushSync._one_account_per_email`) always go to the
  same part, so each part decides exactly as one push of everything would;
* stage 2, **courses**: the subject courses, cut into disjoint sets; a part
  makes the groups of its courses, then enrols and puts members into groups
  there (a group, an enrolment and a membership live in one course). It needs
  the accounts of stage 1;
* stage 3, **the last pass**: one run of the same phases over everything,
  after every part: what the parts could not do (a person added meanwhile, a
  record that was blocked) and the unenrolments, whose mass-unenrolment limit
  is a limit on the whole run.

Each part carries its keys; :class:`.push.PushSync` run with a part plans
everything as usual and acts on the part's records only. The weights balance
the parts by what they have to create in Moodle (its per-record work is the
push's cost); records already in step weigh little.
"""

import collections
import dataclasses

from . import accounts, idnumbers
from .push import ENROLMENT, GROUP, USER

# The phases the parts take over, and those the first job keeps.
STRUCTURE_PHASES = ("departments", "programs", "subjects")
USER_PHASES = ("users",)
COURSE_PHASES = ("batches", "enrolments")
LAST = "last"
# What a record already in step weighs against one to create.
_IN_STEP_WEIGHT = 0.02


@dataclasses.dataclass
class Part:
    """One job of a parallel push.

    :ivar key: ``users-1``, ``courses-2``… or :data:`LAST`
    :ivar stage: 1 (users), 2 (groups and enrolments by course), 3 (the last
        pass); a stage starts when the one before is done
    :ivar phases: the push phases it runs
    :ivar users: the user mapping keys it pushes (``None``: all)
    :ivar courses: the course keys whose groups and enrolments it pushes
        (``None``: all)
    :ivar to_create: records it has to create (for the run log)
    """

    key: str
    stage: int
    phases: tuple
    users: frozenset | None = None
    courses: frozenset | None = None
    to_create: int = 0

    @property
    def unenrols(self):
        """Only a pass over every course unenrols (the limit is per run)."""
        return self.courses is None

    def as_dict(self):
        return {
            "key": self.key,
            "stage": self.stage,
            "phases": list(self.phases),
            "users": None if self.users is None else sorted(self.users),
            "courses": None if self.courses is None else sorted(self.courses),
            "to_create": self.to_create,
        }

    @classmethod
    def from_dict(cls, data):
        return cls(
            key=data["key"],
            stage=data["stage"],
            phases=tuple(data["phases"]),
            users=None if data.get("users") is None else frozenset(data["users"]),
            courses=None if data.get("courses") is None else frozenset(data["courses"]),
            to_create=data.get("to_create") or 0,
        )

    def admits(self, kind, key):
        """Whether this part pushes the mapping row ``(kind, key)``."""
        if kind == USER:
            return self.users is None or key in self.users
        if kind in (GROUP, ENROLMENT):
            return self.courses is None or key.split("@", 1)[-1] in self.courses
        return True


def last_pass(phases):
    """The part that runs after all the others, over everything."""
    return Part(LAST, 3, tuple(phases))


# ----------------------------------------------------------------------
# What is left to create
# ----------------------------------------------------------------------


def _user_key(person):
    if person.kind == "student":
        return idnumbers.student(person.id)
    return idnumbers.faculty(person.id)


def _weight(mapping):
    """A record without a mapping row is new: Moodle has to create it. One
    with a row was planned before: in step (skipped by hash), blocked (by a
    problem in OpenEduCat) or failed (retried on its own schedule)."""
    return 1.0 if mapping is None else _IN_STEP_WEIGHT


def _user_weights(engine):
    """``{user key: (person, weight)}`` of the people the users phase plans."""
    mapped = engine._map(USER)
    found = {}
    for person in engine._people():
        key = _user_key(person)
        if not person.active and key not in mapped:
            continue  # never gets an account (see PushSync._phase_users)
        found[key] = (person, _weight(mapped.get(key)))
    return found


def _course_weights(engine, phases):
    """``{course key: weight}``: the groups and enrolments to create there."""
    weights = collections.defaultdict(float)
    for program, subject in engine._program_courses():
        weights[idnumbers.subject_course(subject.id, program.id)] += 0.0
    if "batches" in phases:
        groups = engine._map(GROUP)
        for key in _group_keys(engine):
            course = key.split("@", 1)[1]
            weights[course] += _weight(groups.get(key))
    if "enrolments" in phases:
        enrolments = engine._map(ENROLMENT)
        for item in engine._enrolment_items():
            course = item.key.split("@", 1)[1]
            weights[course] += _weight(enrolments.get(item.key))
    return weights


def _group_keys(engine):
    """The group keys the batches phase plans (one per batch and course)."""
    programs = engine._served_programs()
    subjects = engine.snapshot.subjects
    for batch in engine.snapshot.batches.values():
        program = programs.get(batch.course_id)
        if not batch.active or not program:
            continue
        for subject_id in program.subject_ids:
            if subject_id in subjects and subjects[subject_id].active:
                course = idnumbers.subject_course(subject_id, program.id)
                yield idnumbers.pair(idnumbers.batch(batch.id), course)


def to_create(engine, phases, enough=None):
    """How many Moodle objects the rest of a push has to create: accounts,
    groups and enrolments without a mapping row (never planned before: a
    first push, a new intake). Rows that are blocked or wait for a retry do
    not count: a push that only meets those stays one job.

    :param engine: a :class:`.push.PushSync` whose snapshot is set (its
        structure phases ran)
    :param phases: the phases left (of ``users``, ``batches``, ``enrolments``)
    :param int enough: stop counting once this many are found
    :return: the count (at least ``enough`` when it stopped early)
    """
    count = 0
    if "users" in phases:
        count += sum(1 for _p, w in _user_weights(engine).values() if w == 1.0)
        if enough is not None and count >= enough:
            return count
    if "batches" in phases:
        groups = engine._map(GROUP)
        count += sum(1 for key in _group_keys(engine) if key not in groups)
        if enough is not None and count >= enough:
            return count
    if "enrolments" in phases:
        enrolments = engine._map(ENROLMENT)
        for item in engine._enrolment_items():
            if item.key not in enrolments:
                count += 1
                if enough is not None and count >= enough:
                    return count
    return count


# ----------------------------------------------------------------------
# The parts
# ----------------------------------------------------------------------


class _Components:
    """Union-find over keys."""

    def __init__(self):
        self.parent = {}

    def find(self, key):
        self.parent.setdefault(key, key)
        root = key
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[key] != root:
            self.parent[key], key = root, self.parent[key]
        return root

    def union(self, first, second):
        a, b = self.find(first), self.find(second)
        if a != b:
            # the smaller key leads: the same components whatever the order
            self.parent[max(a, b)] = min(a, b)


def user_groups(engine):
    """The people the users phase decides together, as lists of keys.

    Linked: one email address (letter case aside), one username (its ASCII
    form, which is never finer than Moodle's), one partner, and an account a
    mapping row says another shares.
    """
    people = _user_weights(engine)
    mapped = engine._map(USER)
    links = _Components()
    first_with = {}

    def link(key, token):
        if token in first_with:
            links.union(key, first_with[token])
        else:
            first_with[token] = key

    for key, (person, _weight) in people.items():
        links.find(key)
        email = (person.email or "").strip().lower()
        if email:
            link(key, ("email", email))
        for base in (person.login, person.email):
            name = accounts.username(base or "")
            if name:
                link(key, ("username", name))
        mapping = mapped.get(key)
        if mapping:
            if mapping.extra.get("username"):
                link(key, ("username", accounts.username(mapping.extra["username"])))
            owner = mapping.extra.get("account")
            if owner:
                links.union(key, owner)
        if person.partner_id:
            link(key, ("partner", person.partner_id))
    groups = collections.defaultdict(list)
    for key in people:
        groups[links.find(key)].append(key)
    return [
        (sorted(keys), sum(people[k][1] for k in keys if k in people))
        for keys in groups.values()
    ]


def _balance(weighted, count):
    """Spread ``(keys, weight)`` pairs over ``count`` bins, heaviest first to
    the lightest bin (ties: the lower bin, then the lower key): deterministic.

    :return: ``[(keys, weight)]`` of the bins that got something
    """
    bins = [([], 0.0) for _ in range(count)]
    for keys, weight in sorted(weighted, key=lambda kw: (-kw[1], kw[0])):
        index = min(range(count), key=lambda i: (bins[i][1], i))
        bins[index][0].extend(keys)
        bins[index] = (bins[index][0], bins[index][1] + weight)
    return [(frozenset(keys), weight) for keys, weight in bins if keys]


def split(engine, phases, count):
    """Cut the rest of a push into parts (see the module's docstring).

    :param engine: a :class:`.push.PushSync` whose snapshot is set
    :param phases: the phases left, in the push's order
    :param int count: the most parts per stage (the channel's capacity)
    :return: the parts, stage by stage, the last pass at the end
    :rtype: list[Part]
    """
    parts = []
    if "users" in phases:
        bins = _balance(user_groups(engine), count)
        for number, (keys, weight) in enumerate(bins, 1):
            parts.append(Part(f"users-{number}", 1, USER_PHASES, keys, frozenset()))
            parts[-1].to_create = round(weight)
    course_phases = tuple(p for p in COURSE_PHASES if p in phases)
    if course_phases:
        weights = _course_weights(engine, course_phases)
        bins = _balance([([key], w) for key, w in weights.items()], count)
        for number, (keys, weight) in enumerate(bins, 1):
            parts.append(Part(f"courses-{number}", 2, course_phases, frozenset(), keys))
            parts[-1].to_create = round(weight)
    parts.append(last_pass(tuple(p for p in phases if p not in STRUCTURE_PHASES)))
    return parts
