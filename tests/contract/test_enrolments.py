"""Enrol, enrol twice, a second role, unenrol, and group membership."""

import pytest

from openeducat_moodle.moodle import MoodleRecordError


@pytest.fixture
def course_and_user(moodle):
    return moodle.new_course(), moodle.new_user()


def _member(moodle, courseid, userid, shortname="student", **extra):
    return {
        "roleid": moodle.role_id(shortname),
        "userid": userid,
        "courseid": courseid,
        **extra,
    }


def test_role_ids_match_their_shortnames(moodle, course_and_user):
    course, user = course_and_user

    moodle.enrol(course["id"], user["id"], "student")

    assert moodle.enrolled(course["id"]) == {user["id"]: {"student"}}
    assert moodle.role_id("student") != moodle.role_id("editingteacher")


def test_enrol_twice_keeps_one_enrolment(moodle, course_and_user):
    course, user = course_and_user
    enrolment = _member(moodle, course["id"], user["id"])

    first = moodle.client.enrol_users([enrolment])
    second = moodle.client.enrol_users([enrolment])

    assert first.outcomes[0].ok and second.outcomes[0].ok
    assert first.outcomes[0].value is None
    users = moodle.client.get_enrolled_users(course["id"])
    assert [u["id"] for u in users] == [user["id"]]
    assert moodle.enrolled(course["id"]) == {user["id"]: {"student"}}


def test_enrol_with_a_second_role_adds_it(moodle, course_and_user):
    course, user = course_and_user

    moodle.enrol(course["id"], user["id"], "student")
    moodle.enrol(course["id"], user["id"], "editingteacher")

    assert moodle.enrolled(course["id"]) == {user["id"]: {"student", "editingteacher"}}


def test_unenrol_removes_every_role(moodle, course_and_user):
    course, user = course_and_user
    moodle.enrol(course["id"], user["id"], "student")
    moodle.enrol(course["id"], user["id"], "editingteacher")

    # roleid is accepted and ignored: the whole enrolment goes
    result = moodle.client.unenrol_users(
        [
            {
                "userid": user["id"],
                "courseid": course["id"],
                "roleid": moodle.role_id("editingteacher"),
            }
        ]
    )

    assert result.outcomes[0].ok
    assert moodle.enrolled(course["id"]) == {}


def test_unenrol_a_user_who_is_not_enrolled_is_ok(moodle, course_and_user):
    course, user = course_and_user

    result = moodle.client.unenrol_users(
        [{"userid": user["id"], "courseid": course["id"]}]
    )

    assert result.outcomes[0].ok
    assert result.aborted is None


def test_enrol_batch_in_two_courses(moodle):
    first = moodle.new_course()
    second = moodle.new_course(categoryid=first["categoryid"])
    users = [moodle.new_user() for _ in range(3)]

    result = moodle.client.enrol_users(
        [_member(moodle, first["id"], u["id"]) for u in users]
        + [_member(moodle, second["id"], users[0]["id"], "editingteacher")]
    )

    assert [o.status for o in result.outcomes] == ["ok"] * 4
    assert moodle.enrolled(first["id"]) == {u["id"]: {"student"} for u in users}
    assert moodle.enrolled(second["id"]) == {users[0]["id"]: {"editingteacher"}}


def test_enrol_with_a_role_nobody_may_assign_is_wsusercannotassign(
    moodle, course_and_user
):
    course, user = course_and_user

    result = moodle.client.enrol_users(
        [{"roleid": 987654, "userid": user["id"], "courseid": course["id"]}]
    )

    outcome = result.outcomes[0]
    assert outcome.status == "failed"
    assert isinstance(outcome.error, MoodleRecordError)
    assert outcome.error.errorcode == "wsusercannotassign"
    assert moodle.enrolled(course["id"]) == {}


def test_enrol_batch_with_a_deleted_user(moodle):
    course = moodle.new_course()
    keep, gone = moodle.new_user(), moodle.new_user()
    moodle.client.delete_users([gone["id"]])
    moodle.cleanup.users.remove(gone["id"])

    result = moodle.client.enrol_users(
        [
            _member(moodle, course["id"], keep["id"]),
            _member(moodle, course["id"], gone["id"]),
        ]
    )

    assert [o.status for o in result.outcomes] == ["ok", "failed"]
    error = result.outcomes[1].error
    assert isinstance(error, MoodleRecordError)
    assert error.errorcode == "userdeleted"
    assert moodle.enrolled(course["id"]) == {keep["id"]: {"student"}}


def test_enrol_an_unknown_user_id_is_a_record_error(moodle):
    course = moodle.new_course()

    result = moodle.client.enrol_users(
        [
            {
                "roleid": moodle.role_id("student"),
                "userid": 2**31 - 7,
                "courseid": course["id"],
            }
        ]
    )

    error = result.outcomes[0].error
    assert isinstance(error, MoodleRecordError)
    assert error.exception == "dml_missing_record_exception"
    # 4.5 names the record; 5.1 answers "invalidrecordunknown" for every one
    assert error.errorcode in {"invaliduser", "invalidrecordunknown"}


def test_enrolled_users_list_groups_and_roles(moodle, course_and_user):
    course, user = course_and_user
    group = moodle.new_group(course["id"])
    moodle.enrol(course["id"], user["id"])
    moodle.client.add_group_members([{"groupid": group["id"], "userid": user["id"]}])

    users = moodle.client.get_enrolled_users(course["id"])

    assert len(users) == 1
    entry = users[0]
    assert entry["id"] == user["id"]
    assert entry["username"] == user["username"]
    assert [g["id"] for g in entry["groups"]] == [group["id"]]
    assert [(r["roleid"], r["shortname"]) for r in entry["roles"]] == [
        (moodle.role_id("student"), "student")
    ]
    assert [
        u["id"]
        for u in moodle.client.get_enrolled_users(course["id"], groupid=group["id"])
    ] == [user["id"]]


# -------------------------------------------------------------------- groups
def test_group_member_before_enrolment_is_invalidparameter(moodle, course_and_user):
    course, user = course_and_user
    group = moodle.new_group(course["id"])

    result = moodle.client.add_group_members(
        [{"groupid": group["id"], "userid": user["id"]}]
    )

    outcome = result.outcomes[0]
    assert outcome.status == "failed"
    assert isinstance(outcome.error, MoodleRecordError)
    assert outcome.error.errorcode == "invalidparameter"
    assert moodle.client.get_group_members([group["id"]]) == {group["id"]: set()}


def test_group_member_after_enrolment_is_listed(moodle, course_and_user):
    course, user = course_and_user
    group = moodle.new_group(course["id"])
    other = moodle.new_group(course["id"])
    moodle.enrol(course["id"], user["id"])

    first = moodle.client.add_group_members(
        [{"groupid": group["id"], "userid": user["id"]}]
    )
    again = moodle.client.add_group_members(
        [{"groupid": group["id"], "userid": user["id"]}]
    )

    assert first.outcomes[0].ok and again.outcomes[0].ok
    assert moodle.client.get_group_members([group["id"], other["id"]]) == {
        group["id"]: {user["id"]},
        other["id"]: set(),
    }


def test_group_members_batch_with_one_non_enrolled_user(moodle):
    course = moodle.new_course()
    group = moodle.new_group(course["id"])
    users = [moodle.new_user() for _ in range(3)]
    for user in (users[0], users[2]):
        moodle.enrol(course["id"], user["id"])

    result = moodle.client.add_group_members(
        [{"groupid": group["id"], "userid": u["id"]} for u in users]
    )

    assert [o.status for o in result.outcomes] == ["ok", "failed", "ok"]
    assert result.outcomes[1].error.errorcode == "invalidparameter"
    assert moodle.client.get_group_members([group["id"]]) == {
        group["id"]: {users[0]["id"], users[2]["id"]}
    }


def test_remove_group_member_and_a_non_member(moodle, course_and_user):
    course, user = course_and_user
    bystander = moodle.new_user()
    group = moodle.new_group(course["id"])
    moodle.enrol(course["id"], user["id"])
    moodle.enrol(course["id"], bystander["id"])
    moodle.client.add_group_members([{"groupid": group["id"], "userid": user["id"]}])

    result = moodle.client.delete_group_members(
        [
            {"groupid": group["id"], "userid": user["id"]},
            {"groupid": group["id"], "userid": bystander["id"]},
        ]
    )

    assert [o.status for o in result.outcomes] == ["ok", "ok"]
    assert moodle.client.get_group_members([group["id"]]) == {group["id"]: set()}


def test_unenrol_removes_group_membership(moodle, course_and_user):
    course, user = course_and_user
    group = moodle.new_group(course["id"])
    moodle.enrol(course["id"], user["id"])
    moodle.client.add_group_members([{"groupid": group["id"], "userid": user["id"]}])

    moodle.client.unenrol_users([{"userid": user["id"], "courseid": course["id"]}])

    assert moodle.client.get_group_members([group["id"]]) == {group["id"]: set()}


@pytest.mark.sim_only("the simulator's site cannot send mail on demand")
def test_welcome_message_failure_still_enrols(moodle):
    course = moodle.new_course()
    teacher, student = moodle.new_user(), moodle.new_user()
    moodle.enrol(course["id"], teacher["id"], "editingteacher")
    moodle.fm.set_welcome_message(course["id"], True)
    moodle.fm.welcome_message_fails = True

    result = moodle.client.enrol_users([_member(moodle, course["id"], student["id"])])

    assert result.outcomes[0].ok
    assert "welcome message" in result.outcomes[0].note
    assert moodle.enrolled(course["id"])[student["id"]] == {"student"}
