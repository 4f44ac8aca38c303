"""The benchmark's simulator charges Moodle's pace per record when asked."""

import json
import threading
import time

import pytest

from bench import sim
from openeducat_moodle.moodle.params import encode


def _user(n):
    return {
        "username": f"u{n}",
        "firstname": "Ann",
        "lastname": "Lee",
        "email": f"u{n}@uni.test",
        "auth": "manual",
        "createpassword": 1,
        "idnumber": f"oec_student_{n}",
    }


@pytest.fixture
def slept(monkeypatch):
    calls = []
    monkeypatch.setattr(sim.MoodleTime, "charge", lambda self, s: calls.append(s))
    return calls


def _post(fm, function, **params):
    body, _fields = encode("t", function, params)
    status, _headers, answer = fm.handle(body.encode("ascii"))
    return status, json.loads(answer)


def test_moodle45_pace_is_charged_per_record(slept):
    fm = sim.IndexedFakeMoodle(token="t")
    fm.speed = sim.SPEEDS["moodle45"]
    status, users = _post(fm, "core_user_create_users", users=[_user(1), _user(2)])
    assert status == 200 and len(users) == 2
    assert slept == [pytest.approx(2 / 85)]
    _post(fm, "core_webservice_get_site_info")
    assert len(slept) == 1  # functions without a pace cost nothing extra


def test_instant_by_default(slept):
    fm = sim.IndexedFakeMoodle(token="t")
    _post(fm, "core_user_create_users", users=[_user(3)])
    assert slept == []


def test_time_and_memory_targets_are_marked_machine_dependent():
    from bench import report
    from bench.measure import Phase

    initial = Phase(
        "initial full push",
        wall=10.0,
        moodle_time=2.0,  # 80 % outside: the time target fails
        calls={"core_user_create_users": 2},
        minimum={"core_user_create_users": 2},
        peak_rss_kib=2 * 1024 * 1024,  # 2 GiB: the memory target fails
    )
    rows = report.checks([initial], {"mode": "odoo"})
    (calls,) = [r for r in rows if "write calls" in r.target]
    assert calls.met and not calls.machine
    machine = [r for r in rows if r.machine]
    assert {r.met for r in machine} == {False}
    assert len(machine) == 2


def test_moodle_serves_k_clients_at_most_its_measured_speedup_faster():
    assert sim.speedup(1) == 1.0
    assert sim.speedup(4) == pytest.approx(1.4)
    assert sim.speedup(16) == pytest.approx(1.4)
    curve = [sim.speedup(k) for k in range(1, 9)]
    assert curve == sorted(curve)
    # Each of k clients is served at speedup(k) / k of one client's pace.
    assert all(sim.speedup(k) / k <= 1.0 for k in range(1, 9))


def _charged(clock, works):
    """Charge ``works`` at once from one thread each; their elapsed times."""
    elapsed = [None] * len(works)
    start = threading.Barrier(len(works))

    def client(index, seconds):
        start.wait()
        began = time.monotonic()
        clock.charge(seconds)
        elapsed[index] = time.monotonic() - began

    threads = [
        threading.Thread(target=client, args=(i, w)) for i, w in enumerate(works)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return elapsed


def test_four_clients_at_once_cost_four_times_the_work_over_1_4():
    clock = sim.MoodleTime()
    elapsed = _charged(clock, [0.3] * 4)
    honest = 4 * 0.3 / 1.4
    # Never served faster than Moodle is (the machine's load may slow it).
    assert min(elapsed) >= honest * 0.97
    assert max(elapsed) <= honest + 1.0
    assert clock.busy[4] >= honest * 0.9


def test_a_client_left_alone_goes_at_full_pace_again():
    clock = sim.MoodleTime()
    short, long = _charged(clock, [0.1, 0.4])
    rate = sim.speedup(2) / 2
    # Together until the short one is done, then the long one alone.
    assert short >= 0.1 / rate * 0.97
    assert long >= (0.1 / rate + 0.3) * 0.97
