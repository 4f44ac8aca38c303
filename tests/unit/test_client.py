"""The client against canned HTTP answers: encoding, error kinds, batching."""

import json
import logging
import urllib.parse

import pytest
import requests
import responses

from openeducat_moodle.moodle import (
    MoodleAccessError,
    MoodleClient,
    MoodleError,
    MoodleRecordError,
    MoodleTransientError,
)
from openeducat_moodle.moodle.params import count_fields, encode

BASE = "https://moodle.test"
URL = BASE + "/webservice/rest/server.php"
TOKEN = "unit-test-token-not-real"


@pytest.fixture
def rsps():
    with responses.RequestsMock() as mock:
        yield mock


@pytest.fixture
def client():
    return MoodleClient(BASE, TOKEN, batch_size=3)


def form(call):
    return sent(call.request)


def sent(request):
    """The fields of a request as Moodle decodes them (the body is bytes)."""
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    return urllib.parse.parse_qsl(request.body.decode("ascii"))


def test_encode_brackets_booleans_and_omits_none():
    body, fields = encode(
        "tok",
        "core_course_create_courses",
        {
            "courses": [
                {
                    "fullname": "Algebra I",
                    "visible": True,
                    "idnumber": None,
                    "customfields": [{"shortname": "code", "value": "ALG"}],
                }
            ],
            "addsubcategories": False,
            "empty": [],
        },
    )
    assert urllib.parse.parse_qsl(body)[3:] == [
        ("courses[0][fullname]", "Algebra I"),
        ("courses[0][visible]", "1"),
        ("courses[0][customfields][0][shortname]", "code"),
        ("courses[0][customfields][0][value]", "ALG"),
        ("addsubcategories", "0"),
    ]
    assert fields == 8
    assert count_fields({"a": [{"b": 1, "c": [1, 2]}], "d": None}) == 3


@pytest.mark.parametrize(
    "value",
    [
        "Zoë Ørsted-Łukasiewicz",
        "a&b=c+d e%20f",
        "line\nbreak",
        "[brackets]#hash?",
        "日本語のコース",
        "plain_text-1.2~",
        "",
    ],
)
def test_encoding_round_trips_any_text(value):
    body, fields = encode("tok", "core_x", {"items": [{"na me": value, "n": 2.0}]})
    assert fields == 5
    body.encode("ascii")  # what goes on the wire is plain ASCII
    assert urllib.parse.parse_qsl(body, keep_blank_values=True) == [
        ("wstoken", "tok"),
        ("wsfunction", "core_x"),
        ("moodlewsrestformat", "json"),
        ("items[0][na me]", value),
        ("items[0][n]", "2"),
    ]


def test_auth_fields_come_first():
    body, _fields = encode("tok", "core_x", {"values": ["a"]})
    names = [name for name, _ in urllib.parse.parse_qsl(body)]
    assert names[:3] == ["wstoken", "wsfunction", "moodlewsrestformat"]
    assert dict(urllib.parse.parse_qsl(body))["moodlewsrestformat"] == "json"


def test_call_posts_form_with_timeouts_and_tls(rsps, client):
    rsps.post(URL, json={"sitename": "S", "functions": []})
    client.call("core_webservice_get_site_info")
    body = form(rsps.calls[0])
    assert body[:3] == [
        ("wstoken", TOKEN),
        ("wsfunction", "core_webservice_get_site_info"),
        ("moodlewsrestformat", "json"),
    ]
    assert (
        rsps.calls[0]
        .request.headers["Content-Type"]
        .startswith("application/x-www-form-urlencoded")
    )
    assert client.call_counts["core_webservice_get_site_info"] == 1


def test_timeouts_and_verify_are_passed(monkeypatch):
    seen = {}

    class Session(requests.Session):
        def post(self, url, **kw):
            seen.update(kw)
            raise requests.ConnectTimeout("boom")

    client = MoodleClient(
        BASE, TOKEN, connect_timeout=3, read_timeout=7, verify=False, session=Session()
    )
    with pytest.raises(MoodleTransientError) as info:
        client.call("core_webservice_get_site_info")
    assert seen["timeout"] == (3, 7)
    assert seen["verify"] is False
    assert seen["allow_redirects"] is False
    assert info.value.errorcode == "timeout"


@pytest.mark.parametrize(
    ("env", "proxy", "verify"),
    [
        (
            {"HTTPS_PROXY": "http://proxy.example:3128"},
            "http://proxy.example:3128",
            True,
        ),
        (
            {"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": "moodle.example"},
            None,
            True,
        ),
        (
            {"REQUESTS_CA_BUNDLE": "/etc/ssl/campus-ca.pem"},
            None,
            "/etc/ssl/campus-ca.pem",
        ),
    ],
)
def test_environment_proxy_and_ca_bundle_are_honoured(monkeypatch, env, proxy, verify):
    for name in (
        "HTTPS_PROXY",
        "https_proxy",
        "NO_PROXY",
        "no_proxy",
        "CURL_CA_BUNDLE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    client = MoodleClient("https://moodle.example", TOKEN)
    seen = {}

    def send(request, **kw):
        seen.update(kw)
        raise requests.ConnectTimeout("stop")

    monkeypatch.setattr(client.session, "send", send)
    with pytest.raises(MoodleTransientError):
        client.call("core_webservice_get_site_info")
    assert seen["proxies"].get("https") == proxy
    assert seen["verify"] == verify


def test_null_body_is_success(rsps, client):
    rsps.post(URL, body="null")
    assert client.call("enrol_manual_enrol_users", enrolments=[]) is None


@pytest.mark.parametrize(
    ("kwargs", "errorcode"),
    [
        ({"status": 503}, "http503"),
        ({"status": 500}, "http500"),
        (
            {"status": 200, "body": "<html><body>Maintenance</body></html>"},
            "htmlresponse",
        ),
        ({"status": 200, "body": '{"truncated": '}, "badjson"),
        ({"body": requests.ConnectionError("refused")}, "connectionerror"),
        ({"body": requests.ReadTimeout("slow")}, "timeout"),
    ],
)
def test_transient_failures(rsps, client, kwargs, errorcode):
    rsps.post(URL, **kwargs)
    with pytest.raises(MoodleTransientError) as info:
        client.call("core_course_get_categories")
    assert info.value.errorcode == errorcode
    assert info.value.wsfunction == "core_course_get_categories"


def test_429_honours_retry_after(rsps, client):
    rsps.post(URL, status=429, headers={"Retry-After": "17"})
    with pytest.raises(MoodleTransientError) as info:
        client.call("core_course_get_categories")
    assert info.value.retry_after == 17


@pytest.mark.parametrize(
    ("kwargs", "errorcode"),
    [
        (
            {
                "json": {
                    "exception": "moodle_exception",
                    "errorcode": "invalidtoken",
                    "message": "Invalid token - token not found",
                }
            },
            "invalidtoken",
        ),
        (
            {
                "json": {
                    "exception": "webservice_access_exception",
                    "errorcode": "accessexception",
                    "message": "Access control exception",
                }
            },
            "accessexception",
        ),
        (
            {
                "json": {
                    "exception": "dml_missing_record_exception",
                    "errorcode": "invalidrecord",
                    "message": "Can't find data record in database table "
                    "external_functions.",
                }
            },
            "functionmissing",
        ),
        ({"status": 403, "body": ""}, "restprotocoldisabled"),
        ({"status": 404, "body": "Not found"}, "endpointnotfound"),
        (
            {"status": 303, "headers": {"Location": "https://www.moodle.test/x"}},
            "redirected",
        ),
        (
            {
                "body": '<?xml version="1.0"?><EXCEPTION class="moodle_exception">'
                "<ERRORCODE>invalidtoken</ERRORCODE><MESSAGE>Invalid token</MESSAGE>"
                "</EXCEPTION>"
            },
            "invalidtoken",
        ),
    ],
)
def test_access_failures_say_what_to_fix(rsps, client, kwargs, errorcode):
    rsps.post(URL, **kwargs)
    with pytest.raises(MoodleAccessError) as info:
        client.call("core_course_get_categories")
    assert info.value.errorcode == errorcode
    assert info.value.hint
    assert info.value.hint in str(info.value)


def test_record_error_carries_code_message_and_debuginfo(rsps, client):
    rsps.post(
        URL,
        json={
            "exception": "core\\exception\\invalid_parameter_exception",
            "errorcode": "invalidparameter",
            "message": "Invalid parameter value detected",
            "debuginfo": "Username already exists: ann",
        },
    )
    with pytest.raises(MoodleRecordError) as info:
        client.call("core_user_create_users", users=[{"username": "ann"}])
    err = info.value
    assert err.errorcode == "invalidparameter"
    assert err.debuginfo == "Username already exists: ann"
    assert err.to_dict()["kind"] == "record"


def test_warnings_are_surfaced(rsps, client, caplog):
    rsps.post(
        URL,
        json={
            "warnings": [
                {"item": "user", "itemid": 5, "warningcode": "useremailduplicate"}
            ]
        },
    )
    with caplog.at_level(logging.WARNING):
        result = client.update_users([{"id": 5, "email": "x@y.z"}, {"id": 6}])
    assert [o.status for o in result.outcomes] == ["failed", "ok"]
    assert result.outcomes[0].error.errorcode == "useremailduplicate"
    assert "useremailduplicate" in caplog.text


def test_token_never_leaks(rsps, caplog):
    client = MoodleClient(BASE, TOKEN)
    assert TOKEN not in repr(client)
    rsps.post(
        URL,
        json={
            "exception": "moodle_exception",
            "errorcode": "invalidtoken",
            "message": f"Invalid token {TOKEN}",
            "debuginfo": f"token={TOKEN}",
        },
    )
    rsps.post(URL, body=requests.ConnectionError(f"failed for {TOKEN}"))
    with caplog.at_level(logging.DEBUG):
        for _ in range(2):
            with pytest.raises(Exception) as info:
                client.call("core_webservice_get_site_info")
            text = str(info.value) + repr(info.value) + json.dumps(info.value.to_dict())
            assert TOKEN not in text
            assert info.value.__cause__ is None
    assert TOKEN not in caplog.text


def _created(request):
    pairs = sent(request)
    names = [v for k, v in pairs if k.endswith("[username]")]
    return names


def test_batch_chunks_by_size_and_checks_result_count(rsps, client):
    def answer(request):
        names = _created(request)
        return (
            200,
            {},
            json.dumps([{"id": 100 + i, "username": n} for i, n in enumerate(names)]),
        )

    rsps.add_callback(responses.POST, URL, callback=answer)
    users = [{"username": f"u{i}", "email": f"u{i}@x.org"} for i in range(7)]
    result = client.create_users(users)
    assert [len(_created(c.request)) for c in rsps.calls] == [3, 3, 1]
    assert [o.status for o in result.outcomes] == ["ok"] * 7
    assert result.outcomes[6].value["username"] == "u6"


def test_batch_chunks_by_field_count():
    client = MoodleClient(BASE, TOKEN, batch_size=100, max_fields=3 + 25)
    records = [{f"f{i}": i for i in range(10)} for _ in range(6)]
    assert list(client.chunks(records)) == [[0, 1], [2, 3], [4, 5]]


def test_batch_isolates_bad_records_and_sends_the_rest(rsps):
    client = MoodleClient(BASE, TOKEN, batch_size=8)
    sent_ok = []

    def answer(request):
        names = _created(request)
        if any(n.startswith("bad") for n in names):
            return (
                200,
                {},
                json.dumps(
                    {"exception": "x", "errorcode": "invalidparameter", "message": "no"}
                ),
            )
        sent_ok.extend(names)
        return 200, {}, json.dumps([{"id": 1, "username": n} for n in names])

    rsps.add_callback(responses.POST, URL, callback=answer)
    names = ["a", "b", "bad1", "c", "d", "e", "bad2", "f"]
    result = client.create_users([{"username": n} for n in names])
    assert [o.status for o in result.outcomes] == [
        "failed" if n.startswith("bad") else "ok" for n in names
    ]
    assert sorted(sent_ok) == ["a", "b", "c", "d", "e", "f"]  # each once
    assert result.outcomes[2].error.errorcode == "invalidparameter"


def test_batch_short_answer_is_reported_not_dropped(rsps, client):
    def answer(request):
        names = _created(request)[:-1]  # PHP cut the last record
        return 200, {}, json.dumps([{"id": 9, "username": n} for n in names])

    rsps.add_callback(responses.POST, URL, callback=answer)
    result = client.create_users([{"username": n} for n in ("a", "b", "c")])
    assert [o.status for o in result.outcomes] == ["ok", "ok", "failed"]
    assert result.outcomes[2].error.errorcode == "noresult"


def test_batch_stops_on_transient_and_keeps_successes(rsps, client):
    rsps.post(URL, json=[{"id": i, "username": f"u{i}"} for i in range(3)])
    rsps.post(URL, status=502)
    result = client.create_users([{"username": f"u{i}"} for i in range(7)])
    assert [o.status for o in result.outcomes] == ["ok"] * 3 + ["pending"] * 4
    assert isinstance(result.aborted, MoodleTransientError)
    assert len(rsps.calls) == 2
    with pytest.raises(MoodleTransientError):
        result.raise_if_aborted()


def test_enrol_welcome_message_failure_counts_as_enrolled(rsps, client):
    rsps.post(
        URL,
        json={
            "exception": "moodle_exception",
            "errorcode": "Message was not sent.",
            "message": "error/Message was not sent.",
        },
    )
    result = client.enrol_users([{"roleid": 5, "userid": 3, "courseid": 2}])
    assert result.outcomes[0].ok
    assert "welcome" in result.outcomes[0].note
    assert len(rsps.calls) == 1


def test_completion_without_criteria_is_none(rsps, client):
    rsps.post(
        URL,
        json={
            "exception": "moodle_exception",
            "errorcode": "nocriteriaset",
            "message": "No completion criteria set for this course",
        },
    )
    assert client.get_course_completion_status(2, 3) is None


def test_users_lookup_is_split_below_max_fields(rsps):
    client = MoodleClient(BASE, TOKEN, max_fields=104)
    rsps.post(URL, json=[])
    client.get_users_by_field("idnumber", [f"oec_student_{i}" for i in range(250)])
    counts = [sum(1 for k, _ in form(c) if k.startswith("values[")) for c in rsps.calls]
    assert counts == [100, 100, 50]
    assert all(len(form(c)) <= 104 for c in rsps.calls)


def test_moodle51_version_and_missing_function(rsps, client):
    rsps.post(
        URL,
        json={
            "release": "5.1.3+ (Build: 20260227)",
            "version": "2025100603.04",
            "functions": [{"name": "core_webservice_get_site_info", "version": "x"}],
        },
    )
    caps = client.capabilities()
    assert caps.site.version == 2025100603
    missing = {
        "exception": "dml_missing_record_exception",
        "errorcode": "invalidrecordunknown",
        "message": "Can't find data record in database.",
    }
    rsps.post(URL, json=missing)
    rsps.post(URL, json=missing)
    # A function the site does not list: the function itself is missing.
    with pytest.raises(MoodleAccessError) as info:
        client.call("mod_attendance_get_session", sessionid=1)
    assert info.value.errorcode == "functionmissing"
    # A listed function: a record is missing.
    with pytest.raises(MoodleRecordError):
        client.call("core_webservice_get_site_info")


def test_moodle51_missing_function_is_found_without_a_prior_site_info():
    from tests.fake_moodle import FakeMoodle

    fm = FakeMoodle(token="simtoken", flavour="5.1")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fm.install(mock, base_url=BASE)
        client = MoodleClient(BASE, "simtoken")
        with pytest.raises(MoodleAccessError) as info:
            client.call("local_nothere_function")
        assert info.value.errorcode == "functionmissing"
        # A record that is missing stays a record error.
        with pytest.raises(MoodleRecordError):
            client.call("mod_quiz_get_user_best_grade", quizid=999, userid=2)
        assert fm.call_counts["core_webservice_get_site_info"] == 1


def _module(cmid, instance, modname, name, visible=1, **extra):
    return {
        "id": cmid,
        "instance": instance,
        "modname": modname,
        "name": name,
        "visible": visible,
        "uservisible": True,
        "contextid": 900 + cmid,
        **extra,
    }


def test_course_modules_from_every_section_without_question_banks(rsps, client):
    rsps.post(
        URL,
        json=[
            {
                "id": 11,
                "name": "General",
                "section": 0,
                "modules": [
                    # Moodle 5.1: a course's question bank is a hidden module
                    _module(101, 1, "qbank", "ALG question bank", 0, candisplay=False),
                    _module(102, 4, "assign", "Essay"),
                ],
            },
            {"id": 12, "name": "Week 1", "section": 1, "modules": []},
            {
                "id": 13,
                "name": "Week 2",
                "section": 2,
                "modules": [_module(105, 7, "attendance", "Roll call", 0)],
            },
        ],
    )
    assert client.get_course_modules(42) == [
        {"id": 102, "instance": 4, "modname": "assign", "name": "Essay", "visible": 1},
        {
            "id": 105,
            "instance": 7,
            "modname": "attendance",
            "name": "Roll call",
            "visible": 0,
        },
    ]
    fields = dict(form(rsps.calls[0]))
    assert fields["wsfunction"] == "core_course_get_contents"
    assert fields["courseid"] == "42"
    assert "options[1][name]" not in fields


def test_course_modules_of_one_type(rsps, client):
    rsps.post(
        URL,
        json=[
            {
                "id": 11,
                "section": 0,
                "modules": [
                    _module(101, 3, "qbank", "bank", 0),
                    _module(102, 4, "attendance", "Roll call"),
                    # Moodle filters by modname; anything else is dropped here too
                    _module(103, 5, "quiz", "Quiz"),
                ],
            }
        ],
    )
    modules = client.get_course_modules(42, modname="attendance")
    assert [(m["id"], m["instance"]) for m in modules] == [(102, 4)]
    fields = form(rsps.calls[0])
    assert ("options[1][name]", "modname") in fields
    assert ("options[1][value]", "attendance") in fields


def test_course_modules_against_the_simulator_51_with_a_question_bank():
    from tests.fake_moodle import FakeMoodle

    fm = FakeMoodle(token="simtoken", flavour="5.1")
    fm.course_qbank = True
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fm.install(mock, base_url=BASE)
        course = fm.add_course("Algebra", "ALG")
        att = fm.add_attendance(course, "Roll call")
        quiz = fm.add_quiz(course, "Quiz 1")
        fm.set_module(fm.attendances[att]["cmid"], section=3)
        client = MoodleClient(BASE, "simtoken")
        assert [
            (m["modname"], m["instance"], m["name"])
            for m in client.get_course_modules(course)
        ] == [("quiz", quiz, "Quiz 1"), ("attendance", att, "Roll call")]
        assert [m["instance"] for m in client.get_course_modules(course, "quiz")] == [
            quiz
        ]
        with pytest.raises(MoodleRecordError):
            client.get_course_modules(9999)


# --- database errors (issue 13, item 2) --------------------------------------


def _db_error(debuginfo=None, errorcode="dmlwriteexception"):
    messages = {
        "dmlwriteexception": "Error writing to database",
        "dmlreadexception": "Error reading from database",
        "dbconnectionfailed": "<p>Error: Database connection failed</p>",
        "dbsessionfailure": "Database session failure",
    }
    body = {
        "exception": "dml_write_exception"
        if errorcode == "dmlwriteexception"
        else "moodle_exception",
        "errorcode": errorcode,
        "message": messages[errorcode],
    }
    if debuginfo:
        body["debuginfo"] = debuginfo
    return body


DATABASE_ERRORS = [
    # A write Moodle's database refused: the record's error.
    ("dmlwriteexception", None, MoodleRecordError),  # no developer debugging
    (
        "dmlwriteexception",
        "Data too long for column 'shortname' at row 1\nINSERT INTO mdl_course",
        MoodleRecordError,
    ),
    (
        "dmlwriteexception",
        "ERROR:  value too long for type character varying(255)\nINSERT INTO",
        MoodleRecordError,
    ),
    (
        "dmlwriteexception",
        "Incorrect string value: '\\xF0\\x9F\\xA4\\x96' for column 'fullname'",
        MoodleRecordError,
    ),
    # Only the database's own words count, not the record's values.
    (
        "dmlwriteexception",
        (
            "Data too long for column 'fullname' at row 1\nINSERT INTO mdl_course\n"
            "[array ('fullname' => 'Deadlock found when trying to get lock')]"
        ),
        MoodleRecordError,
    ),
    # A lock conflict: the same write goes through later.
    (
        "dmlwriteexception",
        (
            "Deadlock found when trying to get lock; try restarting transaction\n"
            "INSERT INTO mdl_user_enrolments"
        ),
        MoodleTransientError,
    ),
    (
        "dmlwriteexception",
        "Lock wait timeout exceeded; try restarting transaction",
        MoodleTransientError,
    ),
    (
        "dmlwriteexception",
        "ERROR:  deadlock detected\nDETAIL: Process 7 waits",
        MoodleTransientError,
    ),
    (
        "dmlwriteexception",
        "ERROR:  could not serialize access due to concurrent update",
        MoodleTransientError,
    ),
    # The database is unreachable or cannot read.
    ("dmlreadexception", "MySQL server has gone away", MoodleTransientError),
    ("dbconnectionfailed", None, MoodleTransientError),
    ("dbsessionfailure", None, MoodleTransientError),
]


def test_database_errors_are_the_records_unless_the_database_is_at_fault(rsps):
    client = MoodleClient(BASE, TOKEN)
    for errorcode, debuginfo, kind in DATABASE_ERRORS:
        rsps.post(URL, json=_db_error(debuginfo, errorcode))
        with pytest.raises(MoodleError) as info:
            client.call("core_course_create_courses", courses=[{"shortname": "x"}])
        assert type(info.value) is kind, (errorcode, debuginfo)
        assert info.value.errorcode == errorcode


def test_a_database_write_error_in_a_batch_is_bisected_a_deadlock_is_not(rsps):
    """Moodle runs the batch in one transaction: the write error of one record
    rolls back the whole call. The others go through; the bad one fails alone,
    and the batch is not aborted (no instance backoff). A deadlock blames no
    record: the batch stops, to be tried again."""
    client = MoodleClient(BASE, TOKEN, batch_size=8)
    written = []

    def answer(request):
        names = _created(request)
        if any(n.startswith("deadlock") for n in names):
            body = _db_error("Deadlock found when trying to get lock; try restarting")
            return 200, {}, json.dumps(body)
        if any(len(n) > 100 for n in names):
            body = _db_error("Data too long for column 'username' at row 1")
            return 200, {}, json.dumps(body)
        written.extend(names)
        return 200, {}, json.dumps([{"id": 1, "username": n} for n in names])

    rsps.add_callback(responses.POST, URL, callback=answer)
    names = ["a", "b", "c", "x" * 101, "d", "e", "f", "g"]
    result = client.create_users([{"username": n} for n in names])
    assert result.aborted is None
    assert [o.status for o in result.outcomes] == ["ok"] * 3 + ["failed"] + ["ok"] * 4
    assert result.outcomes[3].error.errorcode == "dmlwriteexception"
    assert "Data too long" in str(result.outcomes[3].error)
    assert sorted(written) == ["a", "b", "c", "d", "e", "f", "g"]  # each once

    calls = len(rsps.calls)
    result = client.create_users([{"username": n} for n in ["h", "deadlock", "i"]])
    assert [o.status for o in result.outcomes] == ["pending"] * 3
    assert isinstance(result.aborted, MoodleTransientError)
    assert len(rsps.calls) == calls + 1  # not split record by record


def test_a_database_write_error_of_a_single_record_is_that_records(rsps, client):
    rsps.post(URL, json=_db_error())
    result = client.create_courses([{"shortname": "x", "fullname": "X"}])
    assert result.aborted is None
    assert [o.status for o in result.outcomes] == ["failed"]
    assert result.outcomes[0].error.errorcode == "dmlwriteexception"
    assert len(rsps.calls) == 1


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 418, 400])
def test_proxy_answers_that_mean_later_are_transient(rsps, client, status):
    """408 (proxy timeout), 425, 429, 5xx, and any 4xx that is not about access
    back the instance off: they must not pause it until a person acts."""
    rsps.post(URL, status=status, body="<html>proxy</html>")
    with pytest.raises(MoodleTransientError) as caught:
        client.call("core_webservice_get_site_info")
    assert caught.value.errorcode == f"http{status}"


@pytest.mark.parametrize("status", [401, 403, 405, 407])
def test_only_real_refusals_are_access_errors(rsps, client, status):
    rsps.post(URL, status=status, body="denied")
    with pytest.raises(MoodleAccessError):
        client.call("core_webservice_get_site_info")


def test_413_splits_a_batch_until_it_fits(rsps, client):
    """A proxy refuses bodies over a size: the batch is halved until each part
    fits; a single record too large fails alone, the others go through."""
    limit = 600

    def answer(request):
        body = request.body
        if len(body) > limit:
            return 413, {}, "<html>Request Entity Too Large</html>"
        users = [v for k, v in sent(request) if k.endswith("[username]")]
        return (
            200,
            {},
            json.dumps([{"id": i, "username": u} for i, u in enumerate(users)]),
        )

    rsps.add_callback(responses.POST, URL, callback=answer)
    users = [
        {
            "username": f"u{i}",
            "firstname": "F",
            "lastname": "L",
            "email": f"u{i}@x.org",
            "auth": "manual",
            "createpassword": 1,
        }
        for i in range(3)
    ]
    users[1]["lastname"] = "L" * 700  # too large even alone
    result = MoodleClient(BASE, TOKEN, batch_size=10).create_users(users)
    assert result.aborted is None
    assert [o.status for o in result.outcomes] == ["ok", "failed", "ok"]
    assert result.outcomes[1].error.errorcode == "http413"


@pytest.mark.parametrize(
    "errorcode, message",
    [
        ("upgraderunning", "Site is being upgraded, please retry later."),
        ("sitemaintenance", "The site is undergoing maintenance"),
    ],
)
def test_an_upgrade_or_maintenance_is_no_records_fault(
    rsps, client, errorcode, message
):
    """Seen on a real Moodle 5.1 during a plugin install: every record of a
    push failed one by one (and burnt its retries) instead of the instance
    backing off."""
    rsps.post(
        URL,
        json={
            "exception": "moodle_exception",
            "errorcode": errorcode,
            "message": message,
        },
    )
    result = client.create_users([{"username": f"u{i}"} for i in range(5)])
    assert isinstance(result.aborted, MoodleTransientError)
    assert result.calls == 1  # no bisection
    assert all(o.status == "pending" for o in result.outcomes)
