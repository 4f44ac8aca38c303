"""Moodle's column limits: a value too long for its database column.

Moodle's web services give these string fields no length, so a too-long value
reaches the database, which refuses it (MariaDB in strict mode: "Data too long
for column", PostgreSQL: "value too long"): Moodle answers
``dml_write_exception`` / ``dmlwriteexception`` "Error writing to database".
A function that runs its batch in one transaction fails as a whole; one that
updates each record in a transaction of its own answers a warning for that
record. The category name is measured in PHP first (``categorytoolong``).

The tests call Moodle through ``client.call`` (or read the per-record
warnings) so that they judge Moodle's answer, not how the client classes it.
"""

import pytest

from openeducat_moodle.moodle import MoodleError


def _long(prefix, length):
    return (prefix + "-" + "x" * length)[:length]


def _dml_write_error(call, **params):
    with pytest.raises(MoodleError) as caught:
        call(**params)
    err = caught.value
    assert err.errorcode == "dmlwriteexception", err.to_dict()
    assert err.exception == "dml_write_exception", err.to_dict()
    assert err.message == "Error writing to database"
    return err


def test_course_shortname_of_256_characters_fails_the_whole_batch(moodle):
    category = moodle.new_category()
    good = moodle.course_record(category["id"])
    bad = moodle.course_record(category["id"])
    bad["shortname"] = _long(bad["shortname"], 256)

    try:
        _dml_write_error(
            moodle.client.call,
            wsfunction="core_course_create_courses",
            courses=[good, bad],
        )
    finally:
        for record in (good, bad):  # should there be any, clean them up
            found = moodle.client.get_course_by_idnumber(record["idnumber"])
            if found:
                moodle.cleanup.courses.append(found["id"])
    # one transaction: the good course went with the bad one
    assert moodle.client.get_course_by_idnumber(good["idnumber"]) is None

    fits = moodle.course_record(category["id"])
    fits["shortname"] = _long(fits["shortname"], 255)
    result = moodle.track("courses", moodle.client.create_courses([fits]))
    assert result.outcomes[0].ok, result.outcomes[0].error


def _fullname_limit(moodle):
    """A course's full name: 254 characters on 4.5, 1333 from Moodle 5.0."""
    release = moodle.client.get_site_info().release
    return 254 if release.split(".")[0] in ("3", "4") else 1333


def test_course_fullname_too_long_on_update_is_that_course_s_warning(moodle):
    first = moodle.new_course()
    second = moodle.new_course(categoryid=first["categoryid"])
    limit = _fullname_limit(moodle)

    fits = moodle.client.update_courses(
        [{"id": second["id"], "fullname": _long(second["fullname"], limit)}]
    )
    assert fits.outcomes[0].ok, fits.outcomes[0].error
    result = moodle.client.update_courses(
        [
            {"id": first["id"], "fullname": _long(first["fullname"], limit + 1)},
            {"id": second["id"], "fullname": second["fullname"] + " (renamed)"},
        ]
    )

    assert result.aborted is None
    assert result.outcomes[0].status == "failed"
    assert result.outcomes[0].error.errorcode == "dmlwriteexception"
    assert result.outcomes[1].ok
    renamed = moodle.client.get_course_by_idnumber(second["idnumber"])
    assert renamed["fullname"].endswith("(renamed)")
    same = moodle.client.get_course_by_idnumber(first["idnumber"])
    assert same["fullname"] == first["fullname"]


def test_course_idnumber_of_101_characters_is_dmlwriteexception(moodle):
    category = moodle.new_category()
    record = moodle.course_record(category["id"])
    record["idnumber"] = _long(record["idnumber"], 101)
    try:
        _dml_write_error(
            moodle.client.call,
            wsfunction="core_course_create_courses",
            courses=[record],
        )
    finally:
        found = moodle.client.get_courses_by_field("shortname", record["shortname"])
        moodle.cleanup.courses.extend(c["id"] for c in found)


def test_username_of_101_characters_fails_the_whole_batch(moodle):
    good = moodle.user_record()
    bad = moodle.user_record()
    bad["username"] = _long(bad["username"], 101)
    try:
        _dml_write_error(
            moodle.client.call, wsfunction="core_user_create_users", users=[good, bad]
        )
    finally:
        for field, record in (("username", good), ("email", bad)):
            found = moodle.client.get_users_by_field(field, [record[field]])
            moodle.cleanup.users.extend(u["id"] for u in found)
    assert moodle.client.get_users_by_field("username", [good["username"]]) == []


def test_user_city_too_long_on_update_is_that_user_s_warning(moodle):
    first = moodle.new_user()
    second = moodle.new_user()

    result = moodle.client.update_users(
        [
            {"id": first["id"], "city": _long("city", 121)},
            {"id": second["id"], "city": "Lyon"},
        ]
    )

    assert result.outcomes[0].status == "failed"
    assert result.outcomes[0].error.errorcode == "dmlwriteexception"
    assert result.outcomes[1].ok
    (user,) = moodle.client.get_users_by_field("id", [second["id"]])
    assert user["city"] == "Lyon"


def test_group_name_of_255_characters_is_dmlwriteexception(moodle):
    course = moodle.new_course()
    record = moodle.group_record(course["id"])
    record["name"] = _long(record["name"], 255)
    _dml_write_error(
        moodle.client.call, wsfunction="core_group_create_groups", groups=[record]
    )
    assert moodle.client.get_course_groups(course["id"]) == []


def test_category_name_of_256_characters_is_categorytoolong(moodle):
    record = moodle.category_record()
    record["name"] = _long(record["name"], 256)
    result = moodle.track("categories", moodle.client.create_categories([record]))
    outcome = result.outcomes[0]
    assert outcome.status == "failed"
    assert outcome.error.errorcode == "categorytoolong"
    assert outcome.error.kind == "record"
