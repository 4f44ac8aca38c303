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
