"""Each kind of error: access, record and transient."""

import pytest

from openeducat_moodle.moodle import (
    MoodleAccessError,
    MoodleRecordError,
    MoodleTransientError,
)

from .conftest import WRONG_TOKEN

# Core functions every Moodle 4.x/5.x has and the connector never calls: one
# of them missing from the token's service shows ``accessexception``.
CORE_FUNCTIONS_OUTSIDE_THE_CATALOGUE = (
    "core_course_get_courses",
    "core_user_get_users",
    "core_course_get_contents",
    "core_enrol_get_users_courses",
)


# ------------------------------------------------------------------- access
def test_invalid_token_is_an_access_error(moodle):
    client = moodle.make_client(token=WRONG_TOKEN)

    with pytest.raises(MoodleAccessError) as caught:
        client.get_site_info()

    err = caught.value
    assert err.errorcode == "invalidtoken"
    assert err.wsfunction == "core_webservice_get_site_info"
    assert "Manage tokens" in err.hint
    assert WRONG_TOKEN not in str(err) and WRONG_TOKEN not in repr(err.to_dict())
    assert WRONG_TOKEN not in repr(client)


def test_invalid_token_aborts_a_batch_leaving_records_pending(moodle):
    client = moodle.make_client(token=WRONG_TOKEN)
    records = [moodle.user_record(), moodle.user_record()]

    result = client.create_users(records)

    assert isinstance(result.aborted, MoodleAccessError)
    assert [o.status for o in result.outcomes] == ["pending", "pending"]
    with pytest.raises(MoodleAccessError):
        result.raise_if_aborted()
    found = moodle.client.get_users_by_field(
        "username", [r["username"] for r in records]
    )
    assert found == []


def test_function_not_in_the_service_is_an_access_error(moodle):
    if moodle.fm is not None:
        name = "core_course_get_courses_by_field"
        moodle.fm.remove_function(name)
    else:
        # a catalogue function the site lacks, else a core one it surely has
        caps = moodle.client.capabilities()
        known_missing = [n for names in caps.missing.values() for n in names]
        outside = [
            n
            for n in CORE_FUNCTIONS_OUTSIDE_THE_CATALOGUE
            if n not in caps.site.functions
        ]
        if not known_missing and not outside:
            pytest.skip("every function this test knows is in the token's service")
        name = (known_missing or outside)[0]

    # the service is checked before the parameters
    with pytest.raises(MoodleAccessError) as caught:
        moodle.client.call(name)

    assert caught.value.errorcode == "accessexception"
    assert caught.value.wsfunction == name
    assert "External services" in caught.value.hint


def test_unknown_function_is_functionmissing(moodle):
    # 4.5: dml_missing_record_exception "invalidrecord", message naming the
    # external_functions table; 5.1: "invalidrecordunknown", "Can't find data
    # record in database." Either way the site lacks the function: access.
    with pytest.raises(MoodleAccessError) as caught:
        moodle.client.call("local_contracttest_no_such_function")

    assert caught.value.errorcode == "functionmissing"
    assert caught.value.exception == "dml_missing_record_exception"
    assert "not installed" in caught.value.hint


def test_wrong_base_url_is_endpointnotfound(moodle):
    client = moodle.make_client(base_url=moodle.base_url + "/no-such-moodle")

    with pytest.raises(MoodleAccessError) as caught:
        client.get_site_info()

    assert caught.value.errorcode == "endpointnotfound"


@pytest.mark.sim_only("REST cannot be switched off through web services")
def test_rest_disabled_is_restprotocoldisabled(moodle):
    moodle.fm.rest_enabled = False

    with pytest.raises(MoodleAccessError) as caught:
        moodle.client.get_site_info()

    assert caught.value.errorcode == "restprotocoldisabled"
    assert "Manage protocols" in caught.value.hint


# ------------------------------------------------------------------- record
def test_unsupported_lookup_field_is_a_coding_error(moodle):
    with pytest.raises(MoodleRecordError) as caught:
        moodle.client.get_users_by_field("city", ["Contractville"])

    assert caught.value.errorcode == "codingerror"
    assert caught.value.exception == "core\\exception\\coding_exception"
    assert "invalid field parameter" in caught.value.message


def test_unknown_parameter_is_invalidparameter(moodle):
    with pytest.raises(MoodleRecordError) as caught:
        moodle.client.call(
            "core_course_get_courses_by_field",
            field="idnumber",
            value=moodle.name("none"),
            contracttestunknown=1,
        )

    assert caught.value.errorcode == "invalidparameter"


def test_upper_case_username_lookup_is_invalidparameter(moodle):
    with pytest.raises(MoodleRecordError) as caught:
        moodle.client.get_users_by_field("username", [moodle.name("x").upper()])

    assert caught.value.errorcode == "invalidparameter"


@pytest.mark.sim_only("developer debugging cannot be switched on through web services")
def test_debuginfo_tells_why_a_parameter_was_invalid(moodle):
    user = moodle.new_user()
    moodle.fm.debug = True

    result = moodle.client.create_users([moodle.user_record(username=user["username"])])

    error = result.outcomes[0].error
    assert error.errorcode == "invalidparameter"
    assert error.message == "Invalid parameter value detected"
    assert f"Username already exists: {user['username']}" in error.debuginfo
    assert error.debuginfo in str(error)


def test_errors_are_not_transient_unless_they_are(moodle):
    # a record error is never retried as if it were transient
    course = moodle.new_course()
    result = moodle.track(
        "courses",
        moodle.client.create_courses(
            [moodle.course_record(course["categoryid"], shortname=course["shortname"])]
        ),
    )
    assert not isinstance(result.outcomes[0].error, MoodleTransientError)
    assert result.outcomes[0].error.kind == "record"
