"""A full push in parts (sync/parallel.py): disjoint parts that, run one
after another or in any order within a stage, give Moodle what one push gives."""

import collections
import dataclasses

import pytest
import responses

from openeducat_moodle.moodle import MoodleClient
from openeducat_moodle.sync import parallel
from openeducat_moodle.sync.push import PushSettings, PushSync
from openeducat_moodle.sync.rows import Person
from openeducat_moodle.sync.store import Mapping, MemoryStore
from tests.fake_moodle import FakeMoodle

from .test_push import NOW, institution, moodle_state

BASE = "https://moodle.test"
OTHER = "https://moodle2.test"


def crowded():
    """The unit institution, with people whose accounts are decided together:
    a student who also teaches (one account), two students with one email
    address (one is blocked), two people with one login (one is renamed)."""
    snap = institution()
    students = dict(snap.students)
    students[34] = Person(34, "student", "Eve", "Qi", "eve@uni.test")
    students[35] = Person(35, "student", "Fay", "Ro", "fay@uni.test")
    students[36] = Person(36, "student", "Fay", "Ro", "FAY@uni.test")
    students[37] = Person(37, "student", "Gus", "Sa", "gus@uni.test", login="gs")
    students[38] = Person(38, "student", "Gil", "Sa", "gil@uni.test", login="gs")
    enrolments = dict(snap.enrolments)
    for number, student in enumerate(range(34, 39)):
        enrolments[60 + number] = dataclasses.replace(
            snap.enrolments[50], id=60 + number, student_id=student
        )
    return dataclasses.replace(snap, students=students, enrolments=enrolments)


@pytest.fixture(autouse=True)
def fakes():
    one, two = FakeMoodle(token="simtoken"), FakeMoodle(token="simtoken")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        one.install(rsps, base_url=BASE)
        two.install(rsps, base_url=OTHER)
        yield one, two


def engine(store, base=BASE):
    client = MoodleClient(base, "simtoken", batch_size=2)
    return PushSync(client, store, PushSettings(), now=NOW)


def planned(snapshot, store=None, base=BASE):
    """An engine after the structure phases (the first job of a parallel push)."""
    core = engine(store or MemoryStore(), base)
    core.run(snapshot, phases=parallel.STRUCTURE_PHASES)
    return core


REST = ("users", "batches", "enrolments")


def run_parts(snapshot, store, parts, base=OTHER, reverse=False):
    """Each part in an engine of its own, as each job has; stage by stage."""
    results = {}
    for stage in (1, 2, 3):
        members = [p for p in parts if p.stage == stage]
        for part in reversed(members) if reverse else members:
            results[part.key] = engine(store, base).run(
                snapshot, phases=part.phases, part=part
            )
    return results


def rows(store):
    return {
        (m.kind, m.key): (m.state, m.moodle_id is not None, m.extra.get("account"))
        for m in store.rows.values()
    }


def test_parts_are_disjoint_and_keep_shared_decisions_together():
    core = planned(crowded())
    parts = parallel.split(core, REST, 3)
    users = [p for p in parts if p.stage == 1]
    courses = [p for p in parts if p.stage == 2]
    assert [p.key for p in parts] == [
        "users-1",
        "users-2",
        "users-3",
        "courses-1",
        "courses-2",
        "courses-3",
        "last",
    ]
    every = set(parallel._user_weights(core))
    assert set().union(*(p.users for p in users)) == every
    assert sum(len(p.users) for p in users) == len(every)  # disjoint
    together = [
        {"oec_faculty_40", "oec_student_34"},  # one person, one account
        {"oec_student_35", "oec_student_36"},  # one email address
        {"oec_student_37", "oec_student_38"},  # one login
    ]
    for keys in together:
        assert any(keys <= p.users for p in users), keys
    program_courses = {
        f"oec_subj_{s.id}_course_{p.id}" for p, s in core._program_courses()
    }
    assert set().union(*(p.courses for p in courses)) == program_courses
    assert sum(len(p.courses) for p in courses) == len(program_courses)
    last = parts[-1]
    assert (last.stage, last.users, last.courses, last.phases) == (
        3,
        None,
        None,
        REST,
    )
    assert last.unenrols and not any(p.unenrols for p in users + courses)
    for part in parts:
        assert parallel.Part.from_dict(part.as_dict()) == part


def test_parts_are_balanced_by_what_they_create():
    core = planned(crowded())
    users = [p for p in parallel.split(core, REST, 2) if p.stage == 1]
    sizes = sorted(len(p.users) for p in users)
    assert sizes[1] - sizes[0] <= 2
    assert sum(p.to_create for p in users) == parallel.to_create(core, ("users",))


@pytest.mark.parametrize("reverse", [False, True])
def test_parts_give_moodle_what_one_push_gives(fakes, reverse):
    one, two = fakes
    single = MemoryStore()
    engine(single).run(crowded())
    store = MemoryStore()
    core = planned(crowded(), store, OTHER)
    parts = parallel.split(core, REST, 3)
    results = run_parts(crowded(), store, parts, reverse=reverse)
    assert moodle_state(two) == moodle_state(one)
    assert rows(store) == rows(single)
    # Nothing twice in Moodle.
    idnumbers = [u["idnumber"] for u in two.users.values() if u.get("idnumber")]
    assert len(idnumbers) == len(set(idnumbers))
    groups = [(g["courseid"], g["idnumber"]) for g in two.groups.values()]
    assert len(groups) == len(set(groups))
    # The parts did the work; the last pass found it done.
    last = results["last"]
    assert last.total("created") + last.total("updated") == 0
    assert not any(
        name.startswith(("core_user_create", "enrol_", "core_group_"))
        for name in last.calls
    )


def test_a_part_writes_its_own_rows_only(fakes):
    _one, two = fakes
    store = MemoryStore()
    core = planned(crowded(), store, OTHER)
    parts = {p.key: p for p in parallel.split(core, REST, 2)}
    before = set(store.rows)
    engine(store, OTHER).run(crowded(), phases=("users",), part=parts["users-1"])
    written = set(store.rows) - before
    assert written and {key for _kind, key in written} <= parts["users-1"].users
    made = {u["idnumber"] for u in two.users.values() if u.get("idnumber")}
    assert made <= parts["users-1"].users
    part = parts["courses-2"]
    before = set(store.rows)
    engine(store, OTHER).run(crowded(), phases=part.phases, part=part)
    written = set(store.rows) - before
    assert written
    assert {kind for kind, _key in written} <= {"group", "enrolment"}
    assert {key.split("@")[1] for _kind, key in written} <= part.courses


def test_only_the_last_pass_unenrols(fakes):
    _one, two = fakes
    store = MemoryStore()
    engine(store, OTHER).run(institution())
    snap = institution()
    # Bob leaves his program: three enrolments to remove.
    enrolments = {k: e for k, e in snap.enrolments.items() if e.student_id != 31}
    snap = dataclasses.replace(snap, enrolments=enrolments)
    core = planned(snap, store, OTHER)
    parts = parallel.split(core, REST, 2)
    results = run_parts(snap, store, parts)
    unenrolled = {k: r.total("unenrolled") for k, r in results.items()}
    assert unenrolled == {**{p.key: 0 for p in parts[:-1]}, "last": 3}
    bob = two.find_user(idnumber="oec_student_31")
    assert not any(e["userid"] == bob["id"] for e in two.enrolments.values())


def test_what_is_left_to_create():
    snap = institution()
    store = MemoryStore()
    core = planned(snap, store)
    # 4 accounts (one person has no email address: planned, counted), 5
    # groups, 11 enrolments (Cat's are counted though blocked).
    assert parallel.to_create(core, ("users",)) == 5
    assert parallel.to_create(core, ("batches",)) == 5
    assert parallel.to_create(core, REST) == 5 + 5 + 13
    assert parallel.to_create(core, REST, enough=3) == 5
    # Once pushed, nothing is left.
    for key in parallel._user_weights(core):
        store.save([Mapping("user", key, "op.student", 1, moodle_id=9)])
    core = planned(snap, store)
    assert parallel.to_create(core, ("users",)) == 0


def test_components_are_the_same_whatever_the_order():
    core = planned(crowded())
    groups = parallel.user_groups(core)
    reordered = dataclasses.replace(
        crowded(), students=dict(reversed(list(crowded().students.items())))
    )
    again = parallel.user_groups(planned(reordered))
    assert sorted(map(tuple, (k for k, _w in groups))) == sorted(
        map(tuple, (k for k, _w in again))
    )
    sizes = collections.Counter(len(keys) for keys, _w in groups)
    assert sizes[2] == 3
