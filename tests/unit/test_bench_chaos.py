"""The chaos run's machinery (bench/chaos.py): transactions, faults, verdict."""

import collections
import datetime

import pytest

from bench import chaos, generate
from openeducat_moodle.sync.store import Mapping

TINY = generate.Preset("tiny", (1, 1), 2, 2, 1, 12, 2, 2, 2)


def _row(key, **extra):
    return Mapping("user", key, "op.student", 1, moodle_id=7, extra=dict(extra))


def test_journaled_store_rolls_a_job_back_and_keeps_a_commit():
    store = chaos.JournaledStore()
    store.save([_row("a", n=1), _row("b", n=1)])
    store.begin()
    loaded = store.load("user")
    loaded["a"].extra["n"] = 2
    store.save([loaded["a"], _row("c")])
    store.delete([loaded["b"]])
    assert set(store.load("user")) == {"a", "c"}
    store.rollback()  # the worker died: the table is as before the job
    assert {k: m.extra for k, m in store.load("user").items()} == {
        "a": {"n": 1},
        "b": {"n": 1},
    }
    store.begin()
    store.save([_row("c")])
    store.commit()
    store.rollback()  # nothing left to undo
    assert set(store.load("user")) == {"a", "b", "c"}


def test_savepoint_undoes_its_block_and_writes_apart_survive():
    store = chaos.JournaledStore()
    store.begin()
    with store.savepoint():  # nothing written: the transaction stays open
        pass
    with pytest.raises(RuntimeError), store.savepoint():
        store.save([_row("a")])
        store.save_apart([_row("kept")])
        raise RuntimeError("the course failed")
    assert set(store.load("user")) == {"kept"}
    store.save([_row("b")])
    store.rollback()  # the worker died: the write apart stays
    assert set(store.load("user")) == {"kept"}


def test_rows_are_copied_in_and_out_whole():
    store = chaos.JournaledStore()
    row = _row("a", attempts=[1])
    store.save([row])
    row.extra["attempts"].append(2)  # the caller's object, not the table's
    loaded = store.load("user")["a"]
    loaded.extra["attempts"].append(3)
    assert store.load("user")["a"].extra == {"attempts": [1]}


def test_virtual_clock_moves_the_sync_core_and_the_simulator_alike():
    clock = chaos.VirtualClock()
    start = clock()
    clock.advance(datetime.timedelta(minutes=5))
    clock.move_to(clock.now() + datetime.timedelta(seconds=30))
    assert clock() - start == 330
    assert clock.now() == chaos.EPOCH + datetime.timedelta(seconds=330)
    clock.move_to(chaos.EPOCH)  # never backwards
    assert clock.elapsed == 330


def test_faults_are_drawn_from_the_seed():
    def draws(seed):
        fm = chaos.ChaosMoodle(token="t")
        fm.chaos(0.5, seed)
        return [fm._take_fault("core_course_get_categories") for _ in range(200)]

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)
    kinds = collections.Counter(draws(3))
    assert kinds[None] > 60 and len(kinds) > 8
    fm = chaos.ChaosMoodle(token="t")
    fm.chaos(1.0, 1, {"dberror": 1})
    assert fm._take_fault("core_user_create_users") == "dmlwriteexception"
    assert fm._take_fault("core_user_get_users_by_field") == "dmlreadexception"


def test_compare_counts_lost_twice_extra_and_changed():
    def state(**kinds):
        out = {}
        for kind, objects in kinds.items():
            out[kind] = collections.defaultdict(list)
            for key, value in objects:
                out[kind][key].append(value)
        return out

    reference = state(users=[("u1", "A"), ("u2", "B"), ("u3", "C")])
    got = state(users=[("u1", "A"), ("u1", "A"), ("u3", "X"), ("u4", "D")])
    (diff,) = chaos.compare(reference, got)
    assert (diff.lost, diff.twice, diff.extra, diff.changed) == (1, 1, 1, 1)
    assert not diff.ok
    assert "twice: u1" in diff.examples and "lost: u2" in diff.examples
    (same,) = chaos.compare(reference, reference)
    assert same.ok and same.reference == same.chaos == 3


def test_moodle_state_shows_a_duplicate_course():
    fm = chaos.ChaosMoodle(token="t")
    cat = fm.add_category("Science", idnumber="oec_dept_1")
    fm.add_course("Mechanics", "MEC", cat, idnumber="oec_subj_1_course_1")
    before = chaos.moodle_state(fm)
    fm.add_course("Mechanics", "MEC2", cat, idnumber="oec_subj_1_course_1")
    (diff,) = [d for d in chaos.compare(before, chaos.moodle_state(fm)) if not d.ok]
    assert (diff.kind, diff.twice) == ("courses", 1)


@pytest.fixture(scope="module")
def tiny_runs():
    log = []
    runs = [
        chaos.Run(TINY, rate, 11, max_runs=2000, log=log.append).execute()
        for rate in (0.3, 0.0)
    ]
    return runs


def test_a_chaos_run_injects_faults_kills_workers_and_converges(tiny_runs):
    faulty, clean = tiny_runs
    faults = faulty.fm.fault_counts
    assert sum(faults.values()) > 20 and faults["kill"] and faults["lost_reply"]
    assert sum(j.killed for j in faulty.jobs) and sum(j.failed for j in faulty.jobs)
    assert all(j.converged for j in faulty.jobs + clean.jobs)
    assert all(j.runs == 1 for j in clean.jobs)
    assert faulty.calls > clean.calls and clean.fm.fault_counts == {}
    assert clean.final_plan == {}


def test_a_chaos_run_creates_nothing_twice(tiny_runs):
    faulty, clean = tiny_runs
    differences = chaos.compare(
        {**chaos.moodle_state(clean.fm), **chaos.oec_state(clean.store, clean.fm)},
        {**chaos.moodle_state(faulty.fm), **chaos.oec_state(faulty.store, faulty.fm)},
    )
    kinds = {d.kind for d in differences}
    assert {"courses", "users", "enrolments", "grades", "completion"} <= kinds
    assert not [d for d in differences if d.twice or d.extra]
