"""Create, look up by idnumber, duplicates and batches with a bad record."""

import pytest

from openeducat_moodle.moodle import MoodleRecordError


def _failed_with(outcome, errorcode):
    assert outcome.status == "failed", f"expected a failure, got {outcome.status}"
    assert isinstance(outcome.error, MoodleRecordError), repr(outcome.error)
    assert outcome.error.errorcode == errorcode, outcome.error.to_dict()


# ---------------------------------------------------------------- categories
def test_category_created_and_found_by_idnumber(moodle):
    cat = moodle.new_category(description="contract test")

    found = moodle.client.get_categories(idnumber=cat["idnumber"])

    assert [c["id"] for c in found] == [cat["id"]]
    assert found[0]["name"] == cat["name"]
    assert found[0]["parent"] == 0
    assert moodle.client.get_categories(idnumber=moodle.name("none")) == []


def test_subcategory_found_under_its_parent(moodle):
    parent = moodle.new_category()
    child = moodle.new_category(parent=parent["id"])

    alone = moodle.client.get_categories(idnumber=parent["idnumber"])
    family = moodle.client.get_categories(
        addsubcategories=True, idnumber=parent["idnumber"]
    )

    assert [c["id"] for c in alone] == [parent["id"]]
    assert {c["id"] for c in family} == {parent["id"], child["id"]}
    assert {c["id"]: c["parent"] for c in family}[child["id"]] == parent["id"]


def test_duplicate_category_idnumber_is_categoryidnumbertaken(moodle):
    cat = moodle.new_category()

    result = moodle.track(
        "categories",
        moodle.client.create_categories(
            [moodle.category_record(idnumber=cat["idnumber"])]
        ),
    )

    _failed_with(result.outcomes[0], "categoryidnumbertaken")
    assert len(moodle.client.get_categories(idnumber=cat["idnumber"])) == 1


# ------------------------------------------------------------------- courses
def test_course_created_and_found_by_idnumber_and_shortname(moodle):
    course = moodle.new_course(summary="contract test", enablecompletion=1)

    by_idnumber = moodle.client.get_course_by_idnumber(course["idnumber"])
    by_shortname = moodle.client.get_courses_by_field("shortname", course["shortname"])

    assert by_idnumber["id"] == course["id"]
    assert by_idnumber["shortname"] == course["shortname"]
    assert by_idnumber["fullname"] == course["fullname"]
    assert by_idnumber["categoryid"] == course["categoryid"]
    assert [c["id"] for c in by_shortname] == [course["id"]]
    assert moodle.client.get_course_by_idnumber(moodle.name("none")) is None


def test_duplicate_course_shortname_is_shortnametaken(moodle):
    course = moodle.new_course()

    result = moodle.track(
        "courses",
        moodle.client.create_courses(
            [moodle.course_record(course["categoryid"], shortname=course["shortname"])]
        ),
    )

    _failed_with(result.outcomes[0], "shortnametaken")
    assert course["shortname"] in result.outcomes[0].error.message
    found = moodle.client.get_courses_by_field("shortname", course["shortname"])
    assert [c["id"] for c in found] == [course["id"]]


def test_duplicate_course_idnumber_is_courseidnumbertaken(moodle):
    course = moodle.new_course()

    result = moodle.track(
        "courses",
        moodle.client.create_courses(
            [moodle.course_record(course["categoryid"], idnumber=course["idnumber"])]
        ),
    )

    _failed_with(result.outcomes[0], "courseidnumbertaken")
    found = moodle.client.get_courses_by_field("idnumber", course["idnumber"])
    assert [c["id"] for c in found] == [course["id"]]


def test_course_batch_with_one_bad_record(moodle):
    taken = moodle.new_course()
    records = [
        moodle.course_record(taken["categoryid"]),
        moodle.course_record(taken["categoryid"], shortname=taken["shortname"]),
        moodle.course_record(taken["categoryid"]),
    ]

    result = moodle.track("courses", moodle.client.create_courses(records))

    assert [o.status for o in result.outcomes] == ["ok", "failed", "ok"]
    _failed_with(result.outcomes[1], "shortnametaken")
    assert result.aborted is None
    for index in (0, 2):
        found = moodle.client.get_courses_by_field(
            "idnumber", records[index]["idnumber"]
        )
        assert [c["id"] for c in found] == [result.outcomes[index].value["id"]]
    assert moodle.client.get_course_by_idnumber(records[1]["idnumber"]) is None


def test_update_course_to_a_taken_shortname_fails_that_course_only(moodle):
    first = moodle.new_course()
    second = moodle.new_course(categoryid=first["categoryid"])

    result = moodle.client.update_courses(
        [
            {"id": second["id"], "shortname": first["shortname"]},
            {"id": first["id"], "fullname": first["fullname"] + " (renamed)"},
        ]
    )

    _failed_with(result.outcomes[0], "shortnametaken")
    assert result.outcomes[1].ok
    course = moodle.client.get_course_by_idnumber(first["idnumber"])
    assert course["fullname"].endswith("(renamed)")
    unchanged = moodle.client.get_course_by_idnumber(second["idnumber"])
    assert unchanged["shortname"] == second["shortname"]


# --------------------------------------------------------------------- users
def test_user_created_and_found_by_each_field(moodle):
    user = moodle.new_user()

    for field in ("username", "idnumber", "email", "id"):
        value = str(user["id"]) if field == "id" else user[field]
        found = moodle.client.get_users_by_field(field, [value])
        assert [u["id"] for u in found] == [user["id"]], field
    found = found[0]
    assert found["username"] == user["username"]
    assert found["firstname"] == user["firstname"]
    assert found["lastname"] == user["lastname"]
    assert found["email"] == user["email"]
    assert found["idnumber"] == user["idnumber"]
    assert "password" not in found


def test_empty_profile_fields_are_absent_from_lookups(moodle):
    # Moodle leaves empty optional profile fields out of the answer: read
    # them with .get()
    bare = moodle.new_user()
    full = moodle.new_user(city="Contractville", country="IN", institution="OEC")

    found = {
        u["id"]: u
        for u in moodle.client.get_users_by_field(
            "id", [str(bare["id"]), str(full["id"])]
        )
    }

    for key in ("city", "country", "institution", "description"):
        assert key not in found[bare["id"]], key
    assert found[full["id"]]["city"] == "Contractville"
    assert found[full["id"]]["country"] == "IN"
    assert found[full["id"]]["institution"] == "OEC"


def test_user_lookup_skips_unknown_values(moodle):
    user = moodle.new_user()

    found = moodle.client.get_users_by_field(
        "username", [moodle.name("nobody"), user["username"], moodle.name("nobody")]
    )

    assert [u["id"] for u in found] == [user["id"]]


def test_duplicate_username_is_invalidparameter(moodle):
    user = moodle.new_user()

    result = moodle.track(
        "users",
        moodle.client.create_users([moodle.user_record(username=user["username"])]),
    )

    _failed_with(result.outcomes[0], "invalidparameter")
    found = moodle.client.get_users_by_field("username", [user["username"]])
    assert [u["id"] for u in found] == [user["id"]]


def test_duplicate_email_is_invalidparameter(moodle):
    user = moodle.new_user()

    result = moodle.track(
        "users",
        moodle.client.create_users([moodle.user_record(email=user["email"].upper())]),
    )

    _failed_with(result.outcomes[0], "invalidparameter")


def test_user_without_password_is_invalidparameter(moodle):
    record = moodle.user_record()
    del record["password"]

    result = moodle.track("users", moodle.client.create_users([record]))

    _failed_with(result.outcomes[0], "invalidparameter")


def test_user_with_createpassword_is_created(moodle):
    record = moodle.user_record(createpassword=1)
    del record["password"]

    result = moodle.track("users", moodle.client.create_users([record]))

    assert result.outcomes[0].ok, result.outcomes[0].error
    assert result.outcomes[0].value["username"] == record["username"]


def test_user_batch_with_one_bad_record_creates_the_others_once(moodle):
    taken = moodle.new_user()
    records = [
        moodle.user_record(),
        moodle.user_record(),
        moodle.user_record(username=taken["username"]),
        moodle.user_record(),
    ]
    if not moodle.real:
        moodle.fm.reset_calls()

    result = moodle.track("users", moodle.client.create_users(records))

    assert [o.status for o in result.outcomes] == ["ok", "ok", "failed", "ok"]
    _failed_with(result.outcomes[2], "invalidparameter")
    assert result.aborted is None
    good = [records[i]["username"] for i in (0, 1, 3)]
    found = moodle.client.get_users_by_field("username", good)
    assert sorted(u["username"] for u in found) == sorted(good)
    assert {u["id"] for u in found} == {
        result.outcomes[i].value["id"] for i in (0, 1, 3)
    }
    by_idnumber = moodle.client.get_users_by_field("idnumber", [records[2]["idnumber"]])
    assert by_idnumber == []
    if not moodle.real:
        # [0-3] rejected; [0, 1] ok; [2, 3] rejected; [2] rejected; [3] ok
        assert moodle.fm.call_counts["core_user_create_users"] == 5


def test_update_users_duplicate_email_fails_that_user_only(moodle):
    first = moodle.new_user()
    second = moodle.new_user()

    result = moodle.client.update_users(
        [
            {"id": second["id"], "email": first["email"]},
            {"id": first["id"], "city": "Contractville"},
        ]
    )

    assert result.aborted is None
    _failed_with(result.outcomes[0], "useremailduplicate")
    assert result.outcomes[1].ok
    by_id = {
        u["id"]: u
        for u in moodle.client.get_users_by_field(
            "id", [str(first["id"]), str(second["id"])]
        )
    }
    assert by_id[second["id"]]["email"] == second["email"]
    assert by_id[first["id"]]["city"] == "Contractville"


def test_update_a_deleted_user_is_a_failed_outcome(moodle):
    gone = moodle.new_user()
    moodle.client.delete_users([gone["id"]])
    moodle.cleanup.users.remove(gone["id"])

    result = moodle.client.update_users([{"id": gone["id"], "city": "Nowhere"}])

    _failed_with(result.outcomes[0], "usernotupdateddeleted")


def test_deleted_user_is_found_by_id_only(moodle):
    user = moodle.new_user()

    assert moodle.client.delete_users([user["id"]]) is None
    moodle.cleanup.users.remove(user["id"])

    for field in ("username", "idnumber", "email"):
        assert moodle.client.get_users_by_field(field, [user[field]]) == [], field
    # Moodle deletes softly: by id the row is still there, renamed, with no
    # flag saying it is deleted
    (row,) = moodle.client.get_users_by_field("id", [str(user["id"])])
    assert row["username"].startswith(user["email"] + ".")
    assert row["email"] != user["email"]
    assert not row.get("idnumber")
    assert "deleted" not in row


# -------------------------------------------------------------------- groups
def test_group_created_and_found_by_idnumber(moodle):
    course = moodle.new_course()
    group = moodle.new_group(course["id"])

    groups = moodle.client.get_course_groups(course["id"])

    assert [g["id"] for g in groups] == [group["id"]]
    found = groups[0]
    assert found["idnumber"] == group["idnumber"]
    assert found["name"] == group["name"]
    assert found["courseid"] == course["id"]


@pytest.mark.parametrize(
    "same, errorcode",
    [("name", "invalidparameter"), ("idnumber", "idnumbertaken")],
)
def test_duplicate_group_in_a_course(moodle, same, errorcode):
    course = moodle.new_course()
    group = moodle.new_group(course["id"])

    result = moodle.track(
        "groups",
        moodle.client.create_groups(
            [moodle.group_record(course["id"], **{same: group[same]})]
        ),
    )

    _failed_with(result.outcomes[0], errorcode)
    assert len(moodle.client.get_course_groups(course["id"])) == 1


def test_group_without_description_is_invalidparameter(moodle):
    course = moodle.new_course()
    record = moodle.group_record(course["id"])
    del record["description"]

    result = moodle.track("groups", moodle.client.create_groups([record]))

    _failed_with(result.outcomes[0], "invalidparameter")


def test_same_group_idnumber_in_two_courses_is_allowed(moodle):
    first = moodle.new_course()
    second = moodle.new_course(categoryid=first["categoryid"])
    group = moodle.new_group(first["id"])

    other = moodle.new_group(second["id"], idnumber=group["idnumber"])

    assert other["id"] != group["id"]


# ------------------------------------------------------------------- cleanup
def test_cleanup_deletes_what_the_test_created(moodle):
    course = moodle.new_course()
    category = moodle.client.get_categories(ids=str(course["categoryid"]))[0]
    group = moodle.new_group(course["id"])
    user = moodle.new_user()
    assert group["id"] in moodle.cleanup.groups

    moodle.cleanup.run(moodle.client)

    assert moodle.client.get_course_by_idnumber(course["idnumber"]) is None
    assert moodle.client.get_categories(idnumber=category["idnumber"]) == []
    assert moodle.client.get_users_by_field("username", [user["username"]]) == []
