"""Tests of the Moodle simulator (tests/fake_moodle) through real form bodies."""

import hashlib
import re
import time
from urllib.parse import urlencode

import pytest
import requests
import responses

from tests.fake_moodle import FUNCTIONS, FakeMoodle
from tests.fake_moodle.params import parse_form, php_decode, to_plain

BASE = "https://moodle.test"
URL = f"{BASE}/webservice/rest/server.php"


def flatten(value, prefix):
    """Encode a Python value in PHP bracket notation."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        if isinstance(value, bool):
            value = int(value)
        return [(prefix, str(value))]
    pairs = []
    for key, sub in items:
        pairs += flatten(sub, f"{prefix}[{key}]")
    return pairs


def encode(function, token="simtoken", fmt="json", params=None, head=True):
    pairs = []
    for name, value in (params or {}).items():
        pairs += flatten(value, name)
    auth = [("wstoken", token), ("wsfunction", function)]
    if fmt:
        auth.append(("moodlewsrestformat", fmt))
    return urlencode(auth + pairs if head else pairs + auth)


@pytest.fixture
def fm():
    sim = FakeMoodle(token="simtoken")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        sim.install(rsps, base_url=BASE)
        yield sim


def post(function, **params):
    response = requests.post(
        URL,
        data=encode(function, params=params),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    )
    assert response.status_code == 200
    return response.json()


def raw_post(body):
    return requests.post(
        URL,
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    )


def error(result, code):
    assert isinstance(result, dict) and "exception" in result, result
    assert result["errorcode"] == code, result
    return result


@pytest.fixture
def course(fm):
    return post(
        "core_course_create_courses",
        courses=[{"fullname": "Algebra", "shortname": "ALG", "categoryid": 1}],
    )[0]["id"]


def make_user(name, **extra):
    data = {
        "username": name,
        "firstname": name.title(),
        "lastname": "Tester",
        "email": f"{name}@example.org",
        "password": "Secret-123",
    }
    data.update(extra)
    return post("core_user_create_users", users=[data])[0]["id"]


def enrol(courseid, userid, roleid=5):
    return post(
        "enrol_manual_enrol_users",
        enrolments=[{"roleid": roleid, "userid": userid, "courseid": courseid}],
    )


# --------------------------------------------------------------------- decoding
def test_bracket_notation_decodes_to_nested_structures():
    body = (
        "courses%5B0%5D%5Bfullname%5D=A+B&courses[0][customfields][0][value]=x"
        "&values[]=a&values[]=b&options[ids][0]=7&criteria[0][key]=email"
        "&plain=1&plain=2"
    )
    data = to_plain(php_decode(parse_form(body)))
    assert data == {
        "courses": [{"fullname": "A B", "customfields": [{"value": "x"}]}],
        "values": ["a", "b"],
        "options": {"ids": ["7"]},
        "criteria": [{"key": "email"}],
        "plain": "2",
    }


def test_calls_record_decoded_params(fm):
    post("core_user_get_users_by_field", field="username", values=["a", "b"])
    assert fm.calls == [
        ("core_user_get_users_by_field", {"field": "username", "values": ["a", "b"]})
    ]


# ----------------------------------------------------------- transport & access
def test_site_info_lists_service_functions_with_versions(fm):
    info = post("core_webservice_get_site_info")
    versions = {f["name"]: f["version"] for f in info["functions"]}
    assert info["userid"] == 2 and info["username"] == "admin"
    assert info["release"] == "4.5.6 (Build: 20250811)"
    assert info["version"] == "2024100706" and info["siteurl"] == BASE
    assert versions["core_course_create_courses"] == "2024100706"
    assert versions["mod_attendance_get_session"] == "2024020500"
    assert "mod_wsattendance_get_session" not in versions
    fm.enable_legacy_attendance(only=True)
    versions = {
        f["name"]: f["version"]
        for f in post("core_webservice_get_site_info")["functions"]
    }
    assert versions["mod_wsattendance_get_session"] == "2025010100"
    assert "mod_attendance_get_session" not in versions
    assert "mod_attendance_add_session" not in versions


def test_invalid_token_json_and_xml(fm):
    bad = raw_post(encode("core_webservice_get_site_info", token="nope")).json()
    assert bad == {
        "exception": "moodle_exception",
        "errorcode": "invalidtoken",
        "message": "Invalid token - token not found",
    }
    xml = raw_post(encode("core_webservice_get_site_info", token="x", fmt=None))
    assert xml.status_code == 200
    assert xml.text.startswith('<?xml version="1.0" encoding="UTF-8" ?>')
    assert "<ERRORCODE>invalidtoken</ERRORCODE>" in xml.text


def test_unknown_function_and_access_exception(fm):
    error(post("mod_wsattendance_add_attendance"), "invalidrecord")
    result = error(post("mod_wsattendance_get_session", sessionid=1), "accessexception")
    assert result["exception"] == "webservice_access_exception"
    assert result["message"] == "Access control exception"
    fm.remove_function("core_course_get_categories")
    error(post("core_course_get_categories"), "accessexception")
    fm.disable_attendance()
    error(post("mod_attendance_get_session", sessionid=1), "accessexception")
    fm.disable_attendance(uninstall=True)
    error(post("mod_attendance_get_session", sessionid=1), "invalidrecord")


def test_rest_disabled_gives_403_without_body(fm):
    fm.rest_enabled = False
    response = raw_post(encode("core_webservice_get_site_info"))
    assert response.status_code == 403 and response.content == b""


def test_other_path_is_404_html(fm):
    response = requests.post(f"{BASE}/login/token.php", data="x=1", timeout=5)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")


def test_parameter_validation_errors_and_debuginfo(fm):
    result = error(
        post("core_course_get_courses_by_field", bogus="x"), "invalidparameter"
    )
    assert result == {
        "exception": "core\\exception\\invalid_parameter_exception",
        "errorcode": "invalidparameter",
        "message": "Invalid parameter value detected",
    }
    error(post("core_group_get_course_groups"), "invalidparameter")  # missing
    error(post("core_group_get_course_groups", courseid=""), "invalidparameter")
    error(post("core_group_get_course_groups", courseid="abc"), "invalidparameter")
    error(
        post("core_course_get_categories", addsubcategories="true"), "invalidparameter"
    )
    fm.debug = True
    result = error(post("core_group_get_course_groups"), "invalidparameter")
    assert "courseid" in result["debuginfo"]


def test_null_body_for_functions_without_return(fm, course):
    userid = make_user("nullbody")
    response = raw_post(
        encode(
            "enrol_manual_enrol_users",
            params={
                "enrolments": [{"roleid": 5, "userid": userid, "courseid": course}]
            },
        )
    )
    assert response.text == "null"


# ------------------------------------------------------------------- categories
def test_categories_create_get_uniqueness_and_batches(fm):
    created = post(
        "core_course_create_categories",
        categories=[{"name": "Dept", "idnumber": "d1"}],
    )
    dept = created[0]["id"]
    assert created == [{"id": dept, "name": "Dept"}]
    sub = post(
        "core_course_create_categories",
        categories=[{"name": "Prog", "parent": dept, "idnumber": "p1"}],
    )[0]["id"]
    result = error(
        post(
            "core_course_create_categories",
            categories=[{"name": "X", "idnumber": "d1"}],
        ),
        "categoryidnumbertaken",
    )
    assert result["message"] == "ID number is already used for another category"
    error(
        post(
            "core_course_create_categories",
            categories=[
                {"name": "New", "idnumber": "n1"},
                {"name": "Bad", "parent": 999},
            ],
        ),
        "unknowcategory",
    )
    assert fm.find_category(idnumber="n1") is None  # all-or-nothing
    error(
        post(
            "core_course_create_categories",
            categories=[{"name": "Long", "idnumber": "x" * 101}],
        ),
        "idnumbertoolong",
    )
    crit = {"criteria": [{"key": "idnumber", "value": "d1"}]}
    assert [c["id"] for c in post("core_course_get_categories", **crit)] == [dept, sub]
    only = post("core_course_get_categories", addsubcategories=0, **crit)
    assert [c["id"] for c in only] == [dept]
    assert only[0]["parent"] == 0 and only[0]["path"] == f"/{dept}"
    unknown = {"criteria": [{"key": "idnumber", "value": "zz"}]}
    assert post("core_course_get_categories", **unknown) == []
    error(
        post("core_course_get_categories", criteria=[{"key": "bad", "value": "1"}]),
        "criteriaerror",
    )


def test_categories_update_and_delete(fm):
    dept = fm.add_category("Dept", idnumber="d1")
    prog = fm.add_category("Prog", parent=dept, idnumber="p1")
    fm.add_course("C", "C1", prog)
    assert (
        post(
            "core_course_update_categories", categories=[{"id": prog, "name": "Prog 2"}]
        )
        is None
    )
    assert fm.categories[prog]["name"] == "Prog 2"
    error(
        post(
            "core_course_update_categories", categories=[{"id": prog, "idnumber": "d1"}]
        ),
        "categoryidnumbertaken",
    )
    error(
        post(
            "core_course_update_categories", categories=[{"id": dept, "parent": prog}]
        ),
        "cannotmovecategory",
    )
    error(
        post("core_course_delete_categories", categories=[{"id": dept}]),
        "movecatcontentstoroot",
    )
    assert post("core_course_delete_categories", categories=[{"id": prog}]) is None
    assert fm.find_course(shortname="C1")["categoryid"] == dept
    post("core_course_delete_categories", categories=[{"id": dept, "recursive": 1}])
    assert dept not in fm.categories and fm.find_course(shortname="C1") is None


# ---------------------------------------------------------------------- courses
def test_courses_create_uniqueness_and_all_or_nothing(fm, course):
    assert fm.courses[course]["shortname"] == "ALG"
    result = error(
        post(
            "core_course_create_courses",
            courses=[
                {"fullname": "B", "shortname": "B1", "categoryid": 1},
                {"fullname": "A2", "shortname": "ALG", "categoryid": 1},
            ],
        ),
        "shortnametaken",
    )
    assert result["message"] == "Short name is already used for another course (ALG)"
    assert fm.find_course(shortname="B1") is None
    post(
        "core_course_create_courses",
        courses=[
            {"fullname": "I", "shortname": "I1", "categoryid": 1, "idnumber": "i"}
        ],
    )
    result = error(
        post(
            "core_course_create_courses",
            courses=[
                {"fullname": "I", "shortname": "I2", "categoryid": 1, "idnumber": "i"}
            ],
        ),
        "courseidnumbertaken",
    )
    assert result["message"] == "ID number is already used for another course (i)"
    error(
        post(
            "core_course_create_courses",
            courses=[{"fullname": "X", "shortname": "X", "categoryid": 99}],
        ),
        "errorcatcontextnotvalid",
    )
    error(
        post(
            "core_course_create_courses", courses=[{"fullname": "X", "categoryid": 1}]
        ),
        "invalidparameter",
    )


def test_new_course_has_manual_instance_and_course_total(fm, course):
    methods = [i for i in fm.enrol_instances.values() if i["courseid"] == course]
    assert {(i["enrol"], i["status"]) for i in methods} >= {("manual", 0)}
    totals = [
        i
        for i in fm.grade_items.values()
        if i["courseid"] == course and i["itemtype"] == "course"
    ]
    assert len(totals) == 1 and totals[0]["iteminstance"] != course


def test_courses_get_update_delete(fm, course):
    post(
        "core_course_update_courses",
        courses=[{"id": course, "idnumber": "alg-id", "fullname": "Algebra I"}],
    )
    found = post("core_course_get_courses_by_field", field="idnumber", value="alg-id")
    assert [c["fullname"] for c in found["courses"]] == ["Algebra I"]
    assert found["warnings"] == []
    assert found["courses"][0]["categoryid"] == 1
    empty = post("core_course_get_courses_by_field", field="idnumber", value="nope")
    assert empty == {"courses": [], "warnings": []}
    every = post("core_course_get_courses_by_field")["courses"]
    assert {c["id"] for c in every} == {1, course}
    by_cat = post("core_course_get_courses_by_field", field="category", value="1")
    assert [c["id"] for c in by_cat["courses"]] == [course]
    other = fm.add_course("Other", "OTH")
    result = post(
        "core_course_update_courses",
        courses=[
            {"id": other, "shortname": "ALG"},
            {"id": 999, "fullname": "x"},
            {"id": other, "fullname": "Renamed"},
        ],
    )
    codes = [(w["itemid"], w["warningcode"]) for w in result["warnings"]]
    assert codes == [(other, "shortnametaken"), (999, "invalidrecord")]
    assert result["warnings"][0]["message"] == (
        "Short name is already used for another course (ALG)"
    )
    assert fm.courses[other]["fullname"] == "Renamed"
    deleted = post("core_course_delete_courses", courseids=[other, 555])
    assert [w["warningcode"] for w in deleted["warnings"]] == ["unknowncourseidnumber"]
    assert other not in fm.courses


# ----------------------------------------------------------------------- groups
def test_groups_create_rules(fm, course):
    error(
        post("core_group_create_groups", groups=[{"courseid": course, "name": "G"}]),
        "invalidparameter",
    )
    created = post(
        "core_group_create_groups",
        groups=[
            {"courseid": course, "name": "G1", "description": "", "idnumber": "g1"}
        ],
    )
    assert created == [
        {
            "id": created[0]["id"],
            "courseid": course,
            "name": "G1",
            "description": "",
            "descriptionformat": 1,
            "enrolmentkey": "",
            "idnumber": "g1",
            "visibility": 0,
            "participation": True,
        }
    ]
    result = error(
        post(
            "core_group_create_groups",
            groups=[
                {"courseid": course, "name": "G2", "description": "", "idnumber": "g1"}
            ],
        ),
        "idnumbertaken",
    )
    assert result["message"] == "This ID number is already in use"
    error(
        post(
            "core_group_create_groups",
            groups=[{"courseid": course, "name": "G1", "description": ""}],
        ),
        "invalidparameter",
    )
    listed = post("core_group_get_course_groups", courseid=course)
    assert [g["idnumber"] for g in listed] == ["g1"]
    gid = created[0]["id"]
    assert post("core_group_update_groups", groups=[{"id": gid, "name": "G1b"}]) is None
    assert fm.groups[gid]["name"] == "G1b"
    assert post("core_group_delete_groups", groupids=[gid, 4242]) is None
    assert gid not in fm.groups


def test_group_members_require_enrolment(fm, course):
    gid = fm.add_group(course, "G")
    userid = make_user("member")
    members = [{"groupid": gid, "userid": userid}]
    error(post("core_group_add_group_members", members=members), "invalidparameter")
    enrol(course, userid)
    assert post("core_group_add_group_members", members=members) is None
    assert post("core_group_add_group_members", members=members) is None
    assert fm.group_members(gid) == {userid}
    got = post("core_group_get_group_members", groupids=[gid])
    assert got == [{"groupid": gid, "userids": [userid]}]
    assert post("core_group_delete_group_members", members=members) is None
    assert post("core_group_delete_group_members", members=members) is None
    assert fm.group_members(gid) == set()


# ------------------------------------------------------------------------ users
def test_users_create_rules(fm):
    user = {"firstname": "A", "lastname": "B", "password": "Secret-123"}
    error(
        post(
            "core_user_create_users",
            users=[{**user, "username": "Upper", "email": "u@x.org"}],
        ),
        "invalidparameter",
    )
    error(
        post(
            "core_user_create_users",
            users=[
                {**user, "username": "one", "email": "one@x.org"},
                {**user, "username": "one", "email": "two@x.org"},
            ],
        ),
        "invalidparameter",
    )
    assert fm.find_user(username="one") is None  # nothing created
    created = post(
        "core_user_create_users",
        users=[{**user, "username": "one", "email": "one@x.org", "idnumber": "same"}],
    )
    assert created == [{"id": created[0]["id"], "username": "one"}]
    dup_email = {**user, "username": "two", "email": "ONE@x.org"}
    error(post("core_user_create_users", users=[dup_email]), "invalidparameter")
    no_password = {
        "firstname": "A",
        "lastname": "B",
        "username": "np",
        "email": "np@x.org",
    }
    error(post("core_user_create_users", users=[no_password]), "invalidparameter")
    assert (
        post("core_user_create_users", users=[{**no_password, "createpassword": 1}])[0][
            "username"
        ]
        == "np"
    )
    oauth = {**no_password, "username": "oa", "email": "oa@x.org", "auth": "oauth2"}
    assert post("core_user_create_users", users=[oauth])[0]["username"] == "oa"
    weak = {**user, "username": "weak", "email": "weak@x.org", "password": "short"}
    result = error(
        post("core_user_create_users", users=[weak]),
        "<div>Passwords must be at least 8 characters long.</div>",
    )
    assert result["message"].startswith("error/<div>")
    bad_lang = {**user, "username": "lang", "email": "lang@x.org", "lang": "xx"}
    error(post("core_user_create_users", users=[bad_lang]), "invalidparameter")
    same_id = {**user, "username": "three", "email": "three@x.org", "idnumber": "same"}
    post("core_user_create_users", users=[same_id])  # idnumber is not unique
    fm.allow_accounts_same_email = True
    assert post("core_user_create_users", users=[dup_email])[0]["username"] == "two"


def test_users_update_get_delete(fm):
    first, second = make_user("first"), make_user("second")
    result = post(
        "core_user_update_users",
        users=[
            {"id": second, "email": "FIRST@example.org"},
            {"id": 9999, "firstname": "x"},
            {"id": first, "suspended": 1, "idnumber": "s-1"},
        ],
    )
    assert result == {
        "warnings": [
            {
                "item": "user",
                "itemid": second,
                "warningcode": "useremailduplicate",
                "message": "Duplicate address",
            },
            {
                "item": "user",
                "itemid": 9999,
                "warningcode": "invaliduserid",
                "message": "Invalid user ID",
            },
        ]
    }
    got = post("core_user_get_users_by_field", field="idnumber", values=["s-1"])
    assert [(u["id"], u["suspended"]) for u in got] == [(first, True)]
    got = post(
        "core_user_get_users_by_field", field="username", values=["first", "ghost"]
    )
    assert [u["username"] for u in got] == ["first"]
    assert set(got[0]) >= {"fullname", "email", "idnumber", "auth", "confirmed", "lang"}
    error(
        post("core_user_get_users_by_field", field="username", values=["First"]),
        "invalidparameter",
    )
    got = post(
        "core_user_get_users_by_field", field="email", values=["SECOND@example.org"]
    )
    assert [u["id"] for u in got] == [second]
    assert post("core_user_delete_users", userids=[second]) is None
    assert fm.users[second]["deleted"] == 1
    error(post("core_user_delete_users", userids=[2]), "useradminodelete")


# -------------------------------------------------------------------- enrolment
def test_enrol_errors(fm, course):
    userid = make_user("learner")
    result = error(enrol(course, 4242), "invaliduser")
    assert result == {
        "exception": "dml_missing_record_exception",
        "errorcode": "invaliduser",
        "message": "Invalid user",
    }
    result = error(enrol(course, userid, roleid=2), "wsusercannotassign")
    assert result["message"] == (
        "You don't have the permission to assign this role (2) to this user "
        f"({userid}) in this course ({course})."
    )
    other = fm.add_course("No manual", "NM")
    fm.disable_manual_enrol(other)
    error(enrol(other, userid), "wsnoinstance")
    error(
        post(
            "enrol_manual_enrol_users",
            enrolments=[
                {"roleid": 5, "userid": userid, "courseid": course},
                {"roleid": 6, "userid": userid, "courseid": course},
            ],
        ),
        "wsusercannotassign",
    )
    assert fm.enrolled_roles(course, userid) == set()  # all-or-nothing


def test_enrol_idempotent_roles_added_and_unenrol_removes_all(fm, course):
    userid = make_user("learner")
    assert enrol(course, userid) is None
    assert enrol(course, userid) is None
    assert len([e for e in fm.enrolments.values() if e["userid"] == userid]) == 1
    assert enrol(course, userid, roleid=4) is None
    assert fm.enrolled_roles(course, userid) == {4, 5}
    listed = post(
        "core_enrol_get_enrolled_users",
        courseid=course,
        options=[{"name": "userfields", "value": "id,username,roles"}],
    )
    assert listed == [
        {
            "id": userid,
            "username": "learner",
            "fullname": "Learner Tester",
            "roles": [
                {"roleid": 4, "name": "", "shortname": "teacher", "sortorder": 0},
                {"roleid": 5, "name": "", "shortname": "student", "sortorder": 0},
            ],
        }
    ]
    gid = fm.add_group(course, "G")
    fm.add_group_member(gid, userid)
    assert (
        post(
            "enrol_manual_unenrol_users",
            enrolments=[{"userid": userid, "courseid": course, "roleid": 4}],
        )
        is None
    )
    assert fm.enrolled_roles(course, userid) == set()
    assert fm.group_members(gid) == set()
    assert (
        post(
            "enrol_manual_unenrol_users",
            enrolments=[{"userid": userid, "courseid": course}],
        )
        is None
    )
    error(
        post(
            "enrol_manual_unenrol_users",
            enrolments=[{"userid": 999, "courseid": course}],
        ),
        "invaliduser",
    )


def test_enrolled_users_options(fm, course):
    active, suspended = make_user("active"), make_user("susp")
    enrol(course, active)
    post(
        "enrol_manual_enrol_users",
        enrolments=[
            {"roleid": 5, "userid": suspended, "courseid": course, "suspend": 1}
        ],
    )
    every = post("core_enrol_get_enrolled_users", courseid=course)
    assert [u["id"] for u in every] == [active, suspended]
    assert set(every[0]) >= {"username", "email", "roles", "groups"}
    only = post(
        "core_enrol_get_enrolled_users",
        courseid=course,
        options=[{"name": "onlyactive", "value": "1"}],
    )
    assert [u["id"] for u in only] == [active]


def test_welcome_message_quirk_keeps_enrolment(fm, course):
    teacher, student = make_user("teach"), make_user("stud")
    fm.welcome_message_fails = True
    assert enrol(course, teacher, roleid=3) is not None  # the teacher is a contact
    result = error(enrol(course, student), "Message was not sent.")
    assert result["message"] == "error/Message was not sent."
    assert fm.enrolled_roles(course, student) == {5}
    fm.set_welcome_message(course, False)
    assert enrol(course, student) is None


# ----------------------------------------------------------------------- grades
def test_grade_report_rows(fm, course):
    s1, s2, teacher = make_user("s1"), make_user("s2"), make_user("t1")
    for userid in (s1, s2):
        enrol(course, userid)
    enrol(course, teacher, roleid=3)
    assign = fm.add_assignment(course, "Essay", idnumber="as1")
    quiz = fm.add_quiz(course, "Quiz", grade=10.0)
    gcat = fm.add_grade_category(course, "Homework")
    manual = fm.add_manual_item(course, "Manual", grademax=50.0, category=gcat)
    fm.grade_assignment(assign, s1, 72.5)
    fm.set_manual_grade(manual, s1, 42.5)
    report = post("gradereport_user_get_grade_items", courseid=course)
    assert report["warnings"] == []
    assert [u["userid"] for u in report["usergrades"]] == [s1, s2]
    rows = report["usergrades"][0]["gradeitems"]
    assert [r["itemtype"] for r in rows] == [
        "mod",
        "mod",
        "manual",
        "category",
        "course",
    ]
    essay, quizrow, manualrow, catrow, total = rows
    assert essay["itemmodule"] == "assign" and essay["iteminstance"] == assign
    assert essay["graderaw"] == 72.5 and essay["gradeformatted"] == "72.50"
    assert essay["percentageformatted"] == "72.50 %" and "cmid" in essay
    assert quizrow["graderaw"] is None and quizrow["gradeformatted"] == "-"
    assert quizrow["percentageformatted"] == "-" and quizrow["iteminstance"] == quiz
    assert "cmid" not in manualrow and manualrow["itemmodule"] is None
    assert catrow["graderaw"] == 42.5 and catrow["iteminstance"] == gcat
    assert "cmid" not in catrow and "cmid" not in total
    assert total["graderaw"] == 115 and total["iteminstance"] != course
    assert total["iteminstance"] == fm._top_grade_category(course)
    assert essay["feedbackformat"] == 2 and total["feedbackformat"] == 2
    assert quizrow["feedbackformat"] == 0  # no grade record: a new grade_grade
    ungraded = report["usergrades"][1]["gradeitems"]
    assert ungraded[-1]["graderaw"] is None and ungraded[-1]["grademax"] == 160
    assert ungraded[-1]["feedbackformat"] == 0 and ungraded[-1]["feedback"] == ""
    single = post("gradereport_user_get_grade_items", courseid=course, userid=teacher)
    assert [u["userid"] for u in single["usergrades"]] == [teacher]


def test_assign_functions(fm, course):
    student = make_user("s1")
    enrol(course, student)
    assign = fm.add_assignment(course, "Essay")
    fm.grade_assignment(assign, student, 72.5)
    result = post("mod_assign_get_assignments", courseids=[course])
    assert result["courses"] == []
    assert result["warnings"][0]["warningcode"] == "2"
    result = post(
        "mod_assign_get_assignments", courseids=[course], includenotenrolledcourses=1
    )
    assert [a["id"] for a in result["courses"][0]["assignments"]] == [assign]
    grades = post("mod_assign_get_grades", assignmentids=[assign, 9999])
    assert grades["assignments"][0]["grades"][0]["grade"] == "72.50000"
    assert grades["assignments"][0]["grades"][0]["userid"] == student
    assert grades["warnings"] == [
        {
            "item": "assignment",
            "itemid": 9999,
            "warningcode": "3",
            "message": "No grades found",
        }
    ]


def test_quiz_best_grade(fm, course):
    student = make_user("s1")
    quiz = fm.add_quiz(course, "Quiz", grade=10.0, gradetopass=5.0)
    plain = fm.add_quiz(course, "Plain")
    assert post("mod_quiz_get_user_best_grade", quizid=quiz, userid=student) == {
        "hasgrade": False,
        "warnings": [],
    }
    fm.add_quiz_attempt(quiz, student, 6.0)
    fm.add_quiz_attempt(quiz, student, 8.5)
    fm.add_quiz_attempt(quiz, student, 7.0)
    assert post("mod_quiz_get_user_best_grade", quizid=quiz, userid=student) == {
        "hasgrade": True,
        "grade": 8.5,
        "gradetopass": 5.0,
        "warnings": [],
    }
    fm.add_quiz_attempt(plain, student, 3)
    assert "gradetopass" not in post(
        "mod_quiz_get_user_best_grade", quizid=plain, userid=student
    )
    cmid = fm.quizzes[quiz]["cmid"]
    result = error(post("mod_quiz_get_user_best_grade", quizid=cmid), "invalidrecord")
    assert result["message"] == "Can't find data record in database table quiz."
    listed = post("mod_quiz_get_quizzes_by_courses", courseids=[course])
    assert [q["coursemodule"] for q in listed["quizzes"]] == [
        cmid,
        fm.quizzes[plain]["cmid"],
    ]


def test_completion_status(fm, course):
    student, teacher = make_user("s1"), make_user("t1")
    enrol(course, student)
    enrol(course, teacher, roleid=3)
    args = {"courseid": course}
    error(
        post("core_completion_get_course_completion_status", userid=teacher, **args),
        "usernotenroled",
    )
    result = error(
        post("core_completion_get_course_completion_status", userid=student, **args),
        "nocriteriaset",
    )
    assert result["message"] == "No completion criteria set for this course"
    error(
        post("core_completion_get_course_completion_status", userid=999, **args),
        "invaliduser",
    )
    fm.set_completion_criteria(course, (1,))
    status = post(
        "core_completion_get_course_completion_status", userid=student, **args
    )
    assert status["completionstatus"]["completed"] is False
    first = status["completionstatus"]["completions"][0]
    assert first["timecompleted"] is None and first["status"] == "No"
    fm.complete_course(course, student, when=1700000000)
    status = post(
        "core_completion_get_course_completion_status", userid=student, **args
    )
    assert status["completionstatus"]["completed"] is True
    assert status["completionstatus"]["completions"][0]["timecompleted"] == 1700000000


# ------------------------------------------------------------------- attendance
def test_attendance_flow(fm, course):
    student, teacher = make_user("s1"), make_user("t1")
    enrol(course, student)
    enrol(course, teacher, roleid=3)
    att = post("mod_attendance_add_attendance", courseid=course, name="Att")
    att_id = att["attendanceid"]
    error(
        post(
            "mod_attendance_add_session", attendanceid=att_id, sessiontime=1, groupid=1
        ),
        "invalidparameter",
    )
    session = post(
        "mod_attendance_add_session", attendanceid=att_id, sessiontime=1795306583
    )["sessionid"]
    info = post("mod_attendance_get_session", sessionid=session)
    ids = {s["acronym"]: s["id"] for s in info["statuses"]}
    assert ids == {"P": 5, "A": 6, "L": 7, "E": 8}
    assert [s["acronym"] for s in info["statuses"]] == ["P", "L", "E", "A"]
    assert info["lasttaken"] is None and info["preventsharediptime"] is None
    assert info["courseid"] == course and info["attendance_log"] == []
    assert [u["id"] for u in info["users"]] == [student]
    take = {
        "sessionid": session,
        "studentid": student,
        "takenbyid": 2,
        "statusset": "5,7,8,6",
    }
    assert post("mod_attendance_update_user_status", statusid=ids["P"], **take) is None
    assert post("mod_attendance_update_user_status", statusid=ids["L"], **take) is None
    error(
        post("mod_attendance_update_user_status", statusid=5, remarks="late", **take),
        "invalidparameter",
    )
    info = post("mod_attendance_get_session", sessionid=session)
    assert info["attendance_log"] == [
        {"studentid": student, "statusid": "7", "remarks": None, "id": "1"}
    ]
    assert info["lasttaken"] and info["lasttakenby"] == 2
    assert [
        s["id"] for s in post("mod_attendance_get_sessions", attendanceid=att_id)
    ] == [session]
    second = post("mod_attendance_add_attendance", courseid=course, name="Att2")
    other = fm.add_attendance_session(second["attendanceid"], 1795306583)
    statuses = post("mod_attendance_get_session", sessionid=other)["statuses"]
    assert {s["acronym"]: s["id"] for s in statuses} == {
        "P": 9,
        "A": 10,
        "L": 11,
        "E": 12,
    }
    result = error(post("mod_attendance_get_session", sessionid=999), "invalidrecord")
    assert result["message"] == (
        "Can't find data record in database table attendance_sessions."
    )
    report = post("gradereport_user_get_grade_items", courseid=course, userid=student)
    modules = [r["itemmodule"] for r in report["usergrades"][0]["gradeitems"]]
    assert modules.count("attendance") == 2
    assert post("mod_attendance_remove_session", sessionid=session) is True
    assert post("mod_attendance_remove_attendance", attendanceid=att_id) is True


def test_legacy_attendance_names(fm, course):
    att_id = fm.add_attendance(course, "Att")
    session = fm.add_attendance_session(att_id, 1795306583)
    error(post("mod_wsattendance_get_session", sessionid=session), "accessexception")
    fm.enable_legacy_attendance()
    assert post("mod_wsattendance_get_session", sessionid=session)["id"] == session
    fm.set_attendance_status_by_acronym(session, 2, "A")
    log = post("mod_wsattendance_get_sessions", attendanceid=att_id)[0][
        "attendance_log"
    ]
    assert log[0]["statusid"] == "6"


# -------------------------------------------------------------- max_input_vars
def _users(prefix, count):
    return [
        {
            "username": f"{prefix}{i}",
            "firstname": "F",
            "lastname": "L",
            "email": f"{prefix}{i}@x.org",
            "createpassword": 1,
        }
        for i in range(count)
    ]


def test_max_input_vars_cut_on_record_boundary_loses_records(fm):
    fm.max_input_vars = 3 + 5 * 2  # header + two complete users
    result = post("core_user_create_users", users=_users("b", 4))
    assert [u["username"] for u in result] == ["b0", "b1"]
    assert fm.find_user(username="b2") is None


def test_max_input_vars_cut_inside_record_is_invalidparameter(fm):
    fm.max_input_vars = 3 + 5 * 2 + 2
    error(post("core_user_create_users", users=_users("m", 4)), "invalidparameter")
    assert fm.find_user(username="m0") is None


def test_max_input_vars_drops_trailing_token(fm):
    fm.max_input_vars = 20
    body = encode(
        "core_user_create_users", params={"users": _users("t", 4)}, head=False
    )
    response = raw_post(body)
    assert "<ERRORCODE>invalidtoken</ERRORCODE>" in response.text
    assert fm.find_user(username="t0") is None


# ----------------------------------------------------------------------- faults
@pytest.mark.parametrize(
    ("kind", "status"), [("http500", 500), ("http502", 502), ("http503", 503)]
)
def test_http_error_faults(fm, kind, status):
    fm.inject(kind)
    assert raw_post(encode("core_webservice_get_site_info")).status_code == status
    assert raw_post(encode("core_webservice_get_site_info")).status_code == 200


def test_rate_limit_html_badjson_faults(fm):
    fm.inject("http429")
    response = raw_post(encode("core_webservice_get_site_info"))
    assert response.status_code == 429 and response.headers["Retry-After"] == "2"
    fm.inject("html")
    response = raw_post(encode("core_webservice_get_site_info"))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    fm.inject("badjson")
    response = raw_post(encode("core_webservice_get_site_info"))
    assert response.text == '{"truncated": '
    with pytest.raises(ValueError):
        response.json()


def test_timeout_and_drop_faults_in_responses_mode(fm):
    fm.inject("timeout", function="core_course_get_categories")
    fm.inject("drop", times=2)
    with pytest.raises(requests.exceptions.ConnectionError):
        raw_post(encode("core_webservice_get_site_info"))
    with pytest.raises(requests.exceptions.ReadTimeout):
        raw_post(encode("core_course_get_categories"))
    with pytest.raises(requests.exceptions.ConnectionError):
        raw_post(encode("core_course_get_categories"))
    assert raw_post(encode("core_course_get_categories")).status_code == 200
    assert fm.faults == []


def test_latency_is_applied(fm):
    fm.latency = 0.05
    start = time.monotonic()
    post("core_webservice_get_site_info")
    assert time.monotonic() - start >= 0.05


# ----------------------------------------------------------------------- counts
def test_call_counting(fm, course):
    fm.reset_calls()
    post("core_course_get_courses_by_field", field="id", value=str(course))
    post("core_course_update_courses", courses=[{"id": course, "fullname": "New"}])
    post("core_course_update_courses", courses=[{"id": course, "fullname": "New 2"}])
    assert fm.call_counts["core_course_update_courses"] == 2
    assert fm.write_call_count() == 2
    assert fm.calls[0] == (
        "core_course_get_courses_by_field",
        {"field": "id", "value": str(course)},
    )
    fm.reset_calls()
    assert fm.calls == [] and fm.write_call_count() == 0
    assert FUNCTIONS["core_user_get_users_by_field"] == "read"
    assert FUNCTIONS["mod_attendance_update_user_status"] == "write"


# ------------------------------------------------------------------ HTTP server
@pytest.fixture
def served():
    sim = FakeMoodle(token="simtoken")
    server, base_url = sim.serve()
    yield sim, f"{base_url}/webservice/rest/server.php"
    server.shutdown()
    server.server_close()


def test_real_http_server_round_trip(served):
    sim, url = served
    with requests.Session() as session:
        body = encode(
            "core_course_create_courses",
            params={"courses": [{"fullname": "A", "shortname": "A", "categoryid": 1}]},
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        created = session.post(url, data=body, headers=headers, timeout=5).json()
        assert created == [{"id": 2, "shortname": "A"}]
        again = session.post(url, data=body, headers=headers, timeout=5).json()
        assert again["errorcode"] == "shortnametaken"
        assert sim.call_counts["core_course_create_courses"] == 2
        assert (
            session.post(url[: -len("server.php")] + "x.php", timeout=5).status_code
            == 404
        )
        sim.inject("http503")
        assert (
            session.post(url, data=body, headers=headers, timeout=5).status_code == 503
        )


def test_real_http_server_faults(served):
    sim, url = served
    body = encode("core_webservice_get_site_info")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    sim.inject("drop")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(url, data=body, headers=headers, timeout=5)
    sim.timeout_sleep = 0.5
    sim.inject("timeout")
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(url, data=body, headers=headers, timeout=0.1)
    sim.inject("http429")
    response = requests.post(url, data=body, headers=headers, timeout=5)
    assert response.status_code == 429 and response.headers["Retry-After"] == "2"


# ------------------------------------------------ as real Moodle 4.5.6 answers
def test_wrong_base_url_is_404_html(fm):
    for url in (
        f"{BASE}/anything/webservice/rest/server.php",
        f"{BASE}/moodle/webservice/rest/server.php?x=1",
    ):
        response = requests.post(url, data=encode("core_webservice_get_site_info"))
        assert response.status_code == 404, url
        assert response.headers["Content-Type"].startswith("text/html")
    body = encode("core_webservice_get_site_info")
    assert fm.handle(body, "/x/webservice/rest/server.php")[0] == 404
    assert fm.handle(body)[0] == 200  # the endpoint under the base URL
    assert fm.calls == [("core_webservice_get_site_info", {})]


def test_base_url_with_a_folder_answers_only_under_it():
    sim = FakeMoodle()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        sim.install(rsps, base_url="https://school.test/moodle/")
        body = encode("core_webservice_get_site_info")
        ok = requests.post(f"https://school.test/moodle{URL[len(BASE) :]}", data=body)
        assert ok.status_code == 200
        assert ok.json()["siteurl"] == "https://school.test/moodle"
        root = requests.post(
            "https://school.test/webservice/rest/server.php", data=body
        )
        assert root.status_code == 404
        assert sim.handle(body)[0] == 200


def test_served_site_answers_only_its_endpoint(served):
    sim, url = served
    base = url[: -len("/webservice/rest/server.php")]
    body = encode("core_webservice_get_site_info")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    wrong = f"{base}/other/webservice/rest/server.php"
    response = requests.post(wrong, data=body, headers=headers, timeout=5)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/html")
    assert requests.post(url, data=body, headers=headers, timeout=5).ok


def test_unsupported_lookup_field_is_a_coding_error(fm):
    result = post("core_user_get_users_by_field", field="city", values=["x"])
    assert result == {
        "exception": "core\\exception\\coding_exception",
        "errorcode": "codingerror",
        "message": "Coding error detected, it must be fixed by a programmer: "
        "invalid field parameter",
    }
    # still a validation error when the field is not even alphabetic
    error(
        post("core_user_get_users_by_field", field="ci-ty", values=["x"]),
        "invalidparameter",
    )


def test_enrol_a_deleted_user_is_userdeleted(fm, course):
    keep, gone = make_user("keep"), make_user("gone")
    post("core_user_delete_users", userids=[gone])
    result = post(
        "enrol_manual_enrol_users",
        enrolments=[
            {"roleid": 5, "userid": keep, "courseid": course},
            {"roleid": 5, "userid": gone, "courseid": course},
        ],
    )
    assert result == {
        "exception": "core\\exception\\moodle_exception",
        "errorcode": "userdeleted",
        "message": "error/userdeleted",
    }
    assert fm.enrolled_roles(course, keep) == set()  # one transaction
    # an id that never existed stays a missing record
    error(enrol(course, 987654), "invaliduser")
    # so is a deleted user in the other functions that read the user row
    gid = fm.add_group(course, "G")
    result = post(
        "core_group_add_group_members", members=[{"groupid": gid, "userid": gone}]
    )
    assert result == {
        "exception": "dml_missing_record_exception",
        "errorcode": "invaliduser",
        "message": "Invalid user",
    }


def test_deleted_user_is_renamed_and_found_by_id_only(fm):
    fm.clock = lambda: 1760000000
    userid = make_user("leaver", idnumber="L-1", email="Leaver@Example.org")
    twin = make_user("twin")
    # a username the deletion would take is already in use: the number goes up
    fm.add_user("leaver@example.org.1760000000", email="x@example.org")
    assert post("core_user_delete_users", userids=[userid, twin]) is None
    for field, value in (
        ("username", "leaver"),
        ("idnumber", "L-1"),
        ("email", "Leaver@Example.org"),
    ):
        assert post("core_user_get_users_by_field", field=field, values=[value]) == []
    (row,) = post("core_user_get_users_by_field", field="id", values=[str(userid)])
    assert row["username"] == "leaver@example.org.1760000001"
    assert row["email"] == hashlib.md5(b"leaver").hexdigest()
    assert "idnumber" not in row and "deleted" not in row
    assert row["firstname"] == "Leaver"
    (other,) = post("core_user_get_users_by_field", field="id", values=[str(twin)])
    assert other["username"] == "twin@example.org.1760000000"
    assert re.fullmatch(r"[0-9a-f]{32}", other["email"])
    # the account is gone for everything else
    assert fm.find_user(username="leaver") is None
    error(post("core_user_delete_users", userids=[userid]), "invaliduser")
    result = post("core_user_update_users", users=[{"id": userid, "city": "X"}])
    assert result == {
        "warnings": [
            {
                "item": "user",
                "itemid": userid,
                "warningcode": "usernotupdateddeleted",
                "message": "error/usernotupdateddeleted",
            }
        ]
    }
    # the old username and email are free again
    assert make_user("leaver", email="Leaver@Example.org") != userid


def test_empty_optional_profile_fields_are_left_out(fm, course):
    bare = make_user("bare")
    full = make_user(
        "full",
        idnumber="F-1",
        city="Pune",
        country="IN",
        institution="OEC",
        description="Hi",
        phone1="123",
    )
    found = {
        u["id"]: u
        for u in post("core_user_get_users_by_field", field="id", values=[bare, full])
    }
    for key in (
        "idnumber",
        "city",
        "country",
        "institution",
        "description",
        "descriptionformat",
        "phone1",
        "customfields",
    ):
        assert key not in found[bare], key
    assert found[bare]["department"] == ""  # isset() in Moodle: kept empty
    assert found[bare]["mailformat"] == 1 and found[bare]["trackforums"] == 0
    assert found[bare]["theme"] == "" and found[bare]["timezone"] == "99"
    assert {k: found[full][k] for k in ("city", "country", "institution")} == {
        "city": "Pune",
        "country": "IN",
        "institution": "OEC",
    }
    assert found[full]["idnumber"] == "F-1" and found[full]["phone1"] == "123"
    assert (found[full]["description"], found[full]["descriptionformat"]) == ("Hi", 1)
    # a description set to "" is a value, not NULL: Moodle returns it
    post("core_user_update_users", users=[{"id": bare, "description": ""}])
    (again,) = post("core_user_get_users_by_field", field="id", values=[bare])
    assert again["description"] == "" and again["descriptionformat"] == 1
    enrol(course, full)
    enrol(course, bare)
    listed = {
        u["id"]: u for u in post("core_enrol_get_enrolled_users", courseid=course)
    }
    for key in ("city", "country", "idnumber", "mailformat", "trackforums", "auth"):
        assert key not in listed[bare], key
    assert listed[full]["city"] == "Pune" and listed[full]["idnumber"] == "F-1"
    assert listed[bare]["description"] == ""


def test_courses_by_field_carry_legacyfiles_and_requested(fm, course):
    (found,) = post("core_course_get_courses_by_field", field="id", value=course)[
        "courses"
    ]
    assert found["legacyfiles"] == 0 and found["requested"] == 0
    assert "customfields" not in found
    other = fm.add_course(
        "Custom", "CUS", customfields=[{"shortname": "code", "value": "C1"}]
    )
    (custom,) = post("core_course_get_courses_by_field", field="id", value=other)[
        "courses"
    ]
    assert custom["customfields"] == [
        {
            "name": "code",
            "shortname": "code",
            "type": "text",
            "valueraw": "C1",
            "value": "C1",
        }
    ]


def test_course_total_without_grade_has_feedbackformat_0(fm, course):
    student = make_user("student")
    enrol(course, student)
    report = post("gradereport_user_get_grade_items", courseid=course)
    (total,) = report["usergrades"][0]["gradeitems"]
    assert total["itemtype"] == "course" and total["graderaw"] is None
    assert total["feedback"] == "" and total["feedbackformat"] == 0


# ------------------------------------------------------------------ Moodle 5.1
@pytest.fixture
def fm51():
    sim = FakeMoodle(token="simtoken", flavour="5.1")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        sim.install(rsps, base_url=BASE)
        yield sim


UNKNOWN_RECORD = {
    "exception": "dml_missing_record_exception",
    "errorcode": "invalidrecordunknown",
    "message": "Can't find data record in database.",
}


def test_moodle51_reports_its_release_and_version(fm51):
    info = post("core_webservice_get_site_info")
    assert info["release"] == "5.1.3+ (Build: 20260227)"
    assert info["version"] == "2025100603.04"
    versions = {f["name"]: f["version"] for f in info["functions"]}
    assert versions["core_course_create_courses"] == "2025100603.04"
    assert versions["mod_attendance_get_session"] == "2024020500"
    assert fm51.moodle51 and not FakeMoodle().moodle51
    custom = FakeMoodle(flavour="5.1", release="5.1.4 (Build: 1)", version="1")
    assert (custom.release, custom.version) == ("5.1.4 (Build: 1)", "1")
    with pytest.raises(ValueError):
        FakeMoodle(flavour="4.4")


def test_moodle51_missing_records_are_invalidrecordunknown(fm51):
    course = fm51.add_course("Algebra", "ALG")
    assert post("local_nothing_here") == UNKNOWN_RECORD
    assert enrol(course, 987654) == UNKNOWN_RECORD
    assert post("mod_attendance_get_session", sessionid=999) == UNKNOWN_RECORD
    result = post("core_course_update_courses", courses=[{"id": 999, "fullname": "x"}])
    assert result["warnings"] == [
        {
            "item": "course",
            "itemid": 999,
            "warningcode": "invalidrecordunknown",
            "message": "Can't find data record in database.",
        }
    ]
    # other errors are worded as in 4.5
    error(post("core_course_get_courses_by_field", bogus="x"), "invalidparameter")
    error(enrol(course, 2, roleid=2), "wsusercannotassign")
    # with debugging on, 5.1 names the table again
    fm51.debug = True
    error(post("local_nothing_here"), "invalidrecord")
    error(enrol(course, 987654), "invaliduser")


def test_moodle51_xml_error_format(fm51):
    xml = raw_post(encode("local_nothing_here", fmt=None))
    assert "<ERRORCODE>invalidrecordunknown</ERRORCODE>" in xml.text
    assert "<MESSAGE>Can&#x27;t find data record in database.</MESSAGE>" in xml.text


# -------------------------------------------------------------- course contents
def test_course_contents_lists_sections_and_tracked_modules(fm, course):
    assign = fm.add_assignment(course, "Essay")
    quiz = fm.add_quiz(course, "Quiz 1")
    att = post("mod_attendance_add_attendance", courseid=course, name="Roll call")[
        "attendanceid"
    ]
    att_cm = fm.attendances[att]["cmid"]
    fm.set_module(att_cm, section=2, visible=0)  # moved and hidden by a teacher

    sections = post("core_course_get_contents", courseid=course)

    assert [(s["section"], s["name"]) for s in sections] == [
        (0, "General"),
        (1, "New section"),
        (2, "New section"),
        (3, "New section"),
        (4, "New section"),
    ]
    assert len({s["id"] for s in sections}) == 5
    assert [
        (m["modname"], m["instance"], m["name"]) for m in sections[0]["modules"]
    ] == [
        ("assign", assign, "Essay"),
        ("quiz", quiz, "Quiz 1"),
    ]
    (module,) = sections[2]["modules"]
    assert module["id"] == att_cm and module["instance"] == att
    assert (module["modname"], module["name"]) == ("attendance", "Roll call")
    assert (module["visible"], module["uservisible"]) == (0, True)
    assert {"contextid", "modplural", "url", "visibleoncoursepage"} <= set(module)
    assert "candisplay" not in module  # 5.x only
    assert sections[0]["modules"][0]["id"] == fm.assignments[assign]["cmid"]

    # options, as Moodle applies them
    def contents(**options):
        return post(
            "core_course_get_contents",
            courseid=course,
            options=[{"name": k, "value": v} for k, v in options.items()],
        )

    only = contents(modname="attendance")
    assert [m["instance"] for s in only for m in s["modules"]] == [att]
    assert len(only) == 5  # sections stay, emptied
    assert [
        m["instance"]
        for s in contents(modname="quiz", modid=quiz)
        for m in s["modules"]
    ] == [quiz]
    assert not [m for s in contents(modname="quiz", modid=999) for m in s["modules"]]
    assert [m["id"] for s in contents(cmid=att_cm) for m in s["modules"]] == [att_cm]
    assert [s["section"] for s in contents(sectionnumber=2)] == [2]
    assert [s["section"] for s in contents(sectionid=sections[1]["id"])] == [1]
    assert not [m for s in contents(excludemodules=1) for m in s["modules"]]
    assert contents(excludecontents=1) == sections
    error(contents(bogus=1), "errorinvalidparam")
    error(contents(modname="Not a plugin"), "errorinvalidparam")
    error(
        post(
            "core_course_get_contents",
            courseid=course,
            options=[{"name": "mod-name", "value": "x"}],
        ),
        "invalidparameter",
    )
    result = error(post("core_course_get_contents", courseid=999), "invalidrecord")
    assert result["message"] == "Can't find data record in database table course."
    assert FUNCTIONS["core_course_get_contents"] == "read"

    # a removed activity leaves the course page, a deleted course everything
    post("mod_attendance_remove_attendance", attendanceid=att)
    assert not [m for s in contents(modname="attendance") for m in s["modules"]]
    fm.delete_course_outside_connector(course)
    assert not [s for s in fm.course_sections.values() if s["courseid"] == course]
    assert not [m for m in fm.course_modules.values() if m["courseid"] == course]


def test_course_contents_on_51_show_the_hidden_question_bank(fm51):
    fm51.course_qbank = True
    course = fm51.add_course("Algebra", "ALG")
    att = fm51.add_attendance(course, "Roll call")
    sections = post("core_course_get_contents", courseid=course)
    bank, roll = sections[0]["modules"]
    assert (bank["modname"], bank["visible"], bank["candisplay"]) == ("qbank", 0, False)
    assert bank["name"] == "Algebra course question bank"
    assert (roll["instance"], roll["candisplay"]) == (att, True)
    assert sections[0]["component"] is None  # 5.x delegated sections
    # without the option, no question bank; one can be added by hand
    fm51.course_qbank = False
    other = fm51.add_course("Geometry", "GEO")
    assert not post("core_course_get_contents", courseid=other)[0]["modules"]
    cmid = fm51.add_qbank(other, "Shared bank")
    (module,) = post("core_course_get_contents", courseid=other)[0]["modules"]
    assert (module["id"], module["name"], module["visible"]) == (cmid, "Shared bank", 0)


def test_question_banks_are_51_only(fm, course):
    fm.course_qbank = True
    other = fm.add_course("Geometry", "GEO")
    assert not post("core_course_get_contents", courseid=other)[0]["modules"]
    with pytest.raises(ValueError):
        fm.add_qbank(course)


# ------------------------------------------- production-safety fault modes
class _Clock:
    """A clock a test moves by hand (``fm.clock``)."""

    def __init__(self, now=1_700_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def test_outage_refuses_every_request_until_the_clock_passes_it(fm):
    clock = fm.clock = _Clock()
    fm.outage(30)
    assert fm.refusing()
    for function in ("core_webservice_get_site_info", "core_course_get_categories"):
        with pytest.raises(requests.exceptions.ConnectionError) as caught:
            raw_post(encode(function))
        assert "refused" in str(caught.value)
    # a refused request never reached Moodle: counted apart, not as a call
    assert fm.calls == [] and fm.fault_counts["refused"] == 2
    clock.now += 29
    with pytest.raises(requests.exceptions.ConnectionError):
        raw_post(encode("core_webservice_get_site_info"))
    clock.now += 1
    assert not fm.refusing()
    assert raw_post(encode("core_webservice_get_site_info")).status_code == 200
    fm.refuse_until(clock.now + 5)
    with pytest.raises(requests.exceptions.ConnectionError):
        raw_post(encode("core_webservice_get_site_info"))
    fm.refuse_until(None)
    assert raw_post(encode("core_webservice_get_site_info")).status_code == 200


def test_refused_fault_is_not_delivered(fm):
    fm.inject("refused", function="core_course_create_courses")
    body = encode(
        "core_course_create_courses",
        params={"courses": [{"fullname": "A", "shortname": "A", "categoryid": 1}]},
    )
    with pytest.raises(requests.exceptions.ConnectionError):
        raw_post(body)
    assert fm.find_course(shortname="A") is None and fm.calls == []
    assert raw_post(body).json()[0]["shortname"] == "A"


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("lost_reply", requests.exceptions.ConnectionError),
        ("slow_reply", requests.exceptions.ReadTimeout),
    ],
)
def test_lost_reply_is_processed_and_the_answer_lost(fm, kind, error):
    fm.inject(kind, function="core_course_create_courses")
    body = encode(
        "core_course_create_courses",
        params={"courses": [{"fullname": "A", "shortname": "A", "categoryid": 1}]},
    )
    post("core_webservice_get_site_info")  # other functions are not affected
    with pytest.raises(error):
        raw_post(body)
    # Moodle did the work: the course is there, and sending again clashes
    assert fm.find_course(shortname="A")["fullname"] == "A"
    assert fm.call_counts["core_course_create_courses"] == 1
    assert fm.fault_counts[kind] == 1
    error_body = raw_post(body).json()
    assert error_body["errorcode"] == "shortnametaken"


def test_real_http_server_outage_and_lost_reply(served):
    sim, url = served
    clock = sim.clock = _Clock()
    body = encode("core_webservice_get_site_info")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    with requests.Session() as session:
        assert session.post(url, data=body, headers=headers, timeout=5).ok
        sim.outage(60)
        # the open keep-alive connection and a new one are both refused
        for client in (session, requests):
            with pytest.raises(requests.exceptions.ConnectionError):
                client.post(url, data=body, headers=headers, timeout=5)
        assert sim.calls == [("core_webservice_get_site_info", {})]
        clock.now += 60
        assert session.post(url, data=body, headers=headers, timeout=5).ok
    create = encode(
        "core_course_create_courses",
        params={"courses": [{"fullname": "A", "shortname": "A", "categoryid": 1}]},
    )
    sim.inject("lost_reply")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(url, data=create, headers=headers, timeout=5)
    assert sim.find_course(shortname="A") is not None
    sim.timeout_sleep = 0.3
    sim.inject("slow_reply")
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(
            url,
            data=encode(
                "core_course_create_courses",
                params={
                    "courses": [{"fullname": "B", "shortname": "B", "categoryid": 1}]
                },
            ),
            headers=headers,
            timeout=0.1,
        )
    assert sim.find_course(shortname="B") is not None


def _dml_error(result):
    assert result == {
        "exception": "dml_write_exception",
        "errorcode": "dmlwriteexception",
        "message": "Error writing to database",
    }


def test_reject_records_fails_the_whole_batch_like_one_transaction(fm):
    fm.reject_records("core_course_create_courses", lambda c: c["shortname"] == "BAD")
    courses = [
        {"fullname": name, "shortname": name, "categoryid": 1}
        for name in ("OK1", "BAD", "OK2")
    ]
    _dml_error(post("core_course_create_courses", courses=courses))
    assert fm.find_course(shortname="OK1") is None  # rolled back with the rest
    assert fm.fault_counts["rejected"] == 1
    good = [c for c in courses if c["shortname"] != "BAD"]
    assert [c["shortname"] for c in post("core_course_create_courses", courses=good)]
    assert fm.find_course(shortname="OK2") is not None
    fm.debug = True
    result = post("core_course_create_courses", courses=courses[1:2])
    assert result["debuginfo"] == "Simulated database error"


def test_reject_records_any_write_function_and_times(fm, course):
    user = make_user("alice")
    rule = fm.reject_records(predicate=lambda r: r.get("userid") == user, times=1)
    _dml_error(enrol(course, user))
    assert fm.enrolled_roles(course, user) == set()
    assert rule not in fm.rejections  # spent
    assert enrol(course, user) is None
    fm.reject_records(errorcode="dmlreadexception")
    post("core_course_get_categories")  # reads are not concerned
    result = post(
        "core_course_create_categories", categories=[{"name": "X", "parent": 0}]
    )
    assert result == {
        "exception": "dml_read_exception",
        "errorcode": "dmlreadexception",
        "message": "Error reading from database",
    }


def test_reject_records_in_per_record_updates_warns_for_that_record(fm, course):
    other = post(
        "core_course_create_courses",
        courses=[{"fullname": "Geo", "shortname": "GEO", "categoryid": 1}],
    )[0]["id"]
    fm.reject_records("core_course_update_courses", lambda c: c["id"] == course)
    result = post(
        "core_course_update_courses",
        courses=[{"id": course, "fullname": "X"}, {"id": other, "fullname": "Y"}],
    )
    assert result["warnings"] == [
        {
            "item": "course",
            "itemid": course,
            "warningcode": "dmlwriteexception",
            "message": "Error writing to database",
        }
    ]
    assert fm.courses[course]["fullname"] == "Algebra"
    assert fm.courses[other]["fullname"] == "Y"


def _long(n):
    return ("x" * n)[:n]


@pytest.mark.parametrize(
    ("field", "limit"), [("shortname", 255), ("fullname", 254), ("idnumber", 100)]
)
def test_course_columns_too_long_is_dmlwriteexception(fm, field, limit):
    def course(value, name):
        data = {"fullname": name, "shortname": name, "categoryid": 1, field: value}
        return data

    fits = post("core_course_create_courses", courses=[course(_long(limit), "fits")])
    assert fits[0]["id"]
    too = [course("ok", "ok"), course(_long(limit + 1), "long")]
    _dml_error(post("core_course_create_courses", courses=too))
    assert sorted(fm.courses) == [1, fits[0]["id"]]  # nothing of the batch
    # an update fails that course only, as a warning
    result = post(
        "core_course_update_courses",
        courses=[{"id": fits[0]["id"], field: _long(limit + 1)}],
    )
    assert result["warnings"][0]["warningcode"] == "dmlwriteexception"
    assert result["warnings"][0]["message"] == "Error writing to database"


def test_column_limits_can_be_switched_off(fm):
    fm.column_limits = False
    data = {"fullname": "A", "shortname": _long(300), "categoryid": 1}
    assert post("core_course_create_courses", courses=[data])[0]["id"]


def test_category_name_too_long_is_checked_before_the_database(fm):
    result = post(
        "core_course_create_categories",
        categories=[{"name": _long(256), "parent": 0}],
    )
    assert result["errorcode"] == "categorytoolong"
    assert result["message"] == "Category name too long"
    assert post(
        "core_course_create_categories", categories=[{"name": _long(255), "parent": 0}]
    )[0]["id"]
    result = post(
        "core_course_create_categories",
        categories=[{"name": "C", "parent": 0, "idnumber": _long(101)}],
    )
    assert result["errorcode"] == "idnumbertoolong"


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("username", 100),
        ("firstname", 100),
        ("lastname", 100),
        ("idnumber", 255),
        ("city", 120),
        ("phone1", 20),
        ("phone2", 20),
        ("institution", 255),
        ("department", 255),
        ("address", 255),
    ],
)
def test_user_columns_too_long(fm, field, limit):
    def user(name, value):
        data = {
            "username": name,
            "firstname": "F",
            "lastname": "L",
            "email": f"{name}@x.org",
            "createpassword": 1,
            field: value,
        }
        return data

    ok = post("core_user_create_users", users=[user("fits", _long(limit))])
    assert ok[0]["id"]
    batch = [user("first", "a"), user("second", _long(limit + 1))]
    if field == "username":
        batch[0]["username"] = "first"
    _dml_error(post("core_user_create_users", users=batch))
    assert fm.find_user(username="first") is None
    # core_user_update_users: a transaction per user, a warning for this one
    other = make_user("other")
    result = post(
        "core_user_update_users",
        users=[
            {"id": ok[0]["id"], field: _long(limit + 1)},
            {"id": other, "city": "Z"},
        ],
    )
    assert result["warnings"] == [
        {
            "item": "user",
            "itemid": ok[0]["id"],
            "warningcode": "dmlwriteexception",
            "message": "Error writing to database",
        }
    ]
    assert fm.users[other]["city"] == "Z"


def test_user_email_too_long_and_country_cleaned(fm):
    email = _long(95) + "@x.org"
    result = post(
        "core_user_create_users",
        users=[
            {
                "username": "u",
                "firstname": "F",
                "lastname": "L",
                "email": email,
                "createpassword": 1,
            }
        ],
    )
    _dml_error(result)
    # a country that is not an ISO code becomes the site default (none)
    userid = make_user("v", country="France")
    assert fm.users[userid]["country"] == ""
    assert fm.users[make_user("w", country="FR")]["country"] == "FR"


@pytest.mark.parametrize(("field", "limit"), [("name", 254), ("idnumber", 100)])
def test_group_columns_too_long(fm, course, field, limit):
    def group(name, value):
        return {"courseid": course, "name": name, "description": "", field: value}

    ok = post("core_group_create_groups", groups=[group("fits", _long(limit))])
    _dml_error(
        post(
            "core_group_create_groups",
            groups=[group("a", "a1"), group("b", _long(limit + 1))],
        )
    )
    assert not [g for g in fm.groups.values() if g["name"] == "a"]
    data = {"id": ok[0]["id"], "name": ok[0]["name"], "description": ""}
    data[field] = _long(limit + 1)
    _dml_error(post("core_group_update_groups", groups=[data]))


def test_inject_after_lets_the_first_calls_through(fm):
    fm.inject("http503", function="core_course_get_categories", after=2)
    for _ in range(2):
        post("core_webservice_get_site_info")  # other functions do not count
        assert raw_post(encode("core_course_get_categories")).status_code == 200
    assert raw_post(encode("core_course_get_categories")).status_code == 503
    assert raw_post(encode("core_course_get_categories")).status_code == 200
    assert fm.fault_counts == {"http503": 1}


def test_database_failure_faults(fm, course):
    fm.inject("dmlwriteexception", function="core_course_create_courses")
    courses = [{"fullname": "G", "shortname": "G", "categoryid": 1}]
    _dml_error(post("core_course_create_courses", courses=courses))
    assert fm.find_course(shortname="G") is None
    assert post("core_course_create_courses", courses=courses)[0]["shortname"] == "G"
    fm.inject("dmlreadexception")
    result = post("core_course_get_categories")
    assert result["exception"] == "dml_read_exception"
    assert result["message"] == "Error reading from database"
    # one transaction per record: a warning for each, nothing updated
    fm.inject("dmlwriteexception")
    result = post(
        "core_course_update_courses", courses=[{"id": course, "fullname": "X"}]
    )
    assert result == {
        "warnings": [
            {
                "item": "course",
                "itemid": course,
                "warningcode": "dmlwriteexception",
                "message": "Error writing to database",
            }
        ]
    }
    assert fm.courses[course]["fullname"] == "Algebra"


def test_moodle_51_takes_longer_course_full_names(fm51):
    def create(fullname, shortname):
        return post(
            "core_course_create_courses",
            courses=[{"fullname": fullname, "shortname": shortname, "categoryid": 1}],
        )

    assert create(_long(1333), "A")[0]["id"]
    _dml_error(create(_long(1334), "B"))
