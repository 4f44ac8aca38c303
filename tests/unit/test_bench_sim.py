"""The benchmark's simulator charges Moodle's pace per record when asked."""

import json

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
    monkeypatch.setattr(sim.time, "sleep", calls.append)
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
