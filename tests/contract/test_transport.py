"""Transient failures and PHP's max_input_vars, produced by the simulator."""

import pytest

from openeducat_moodle.moodle import MoodleTransientError

pytestmark = pytest.mark.sim_only(
    "faults and PHP limits are injected into the simulator"
)

# username, password, firstname, lastname, email
USER_FIELDS = 5


def _plain_user(moodle):
    record = moodle.user_record()
    del record["idnumber"]
    assert len(record) == USER_FIELDS
    return record


@pytest.mark.parametrize("kind", ["http500", "http502", "http503"])
def test_server_errors_are_transient(moodle, kind):
    moodle.fm.inject(kind)

    with pytest.raises(MoodleTransientError) as caught:
        moodle.client.get_site_info()

    assert caught.value.errorcode == kind
    # the next call goes through
    assert moodle.client.get_site_info().release


def test_rate_limit_is_transient_with_retry_after(moodle):
    moodle.fm.inject("http429")

    with pytest.raises(MoodleTransientError) as caught:
        moodle.client.get_site_info()

    assert caught.value.errorcode == "http429"
    assert caught.value.retry_after == 2


@pytest.mark.parametrize(
    "kind, errorcode",
    [
        ("timeout", "timeout"),
        ("drop", "connectionerror"),
        ("html", "htmlresponse"),
        ("badjson", "badjson"),
    ],
)
def test_broken_answers_are_transient(moodle, kind, errorcode):
    moodle.fm.inject(kind, function="core_course_get_courses_by_field")

    with pytest.raises(MoodleTransientError) as caught:
        moodle.client.get_course_by_idnumber(moodle.name("any"))

    assert caught.value.errorcode == errorcode
    assert caught.value.wsfunction == "core_course_get_courses_by_field"
    assert moodle.fm.call_counts["core_course_get_courses_by_field"] == 1


def test_transient_error_on_the_first_chunk_leaves_everything_pending(moodle):
    client = moodle.make_client(batch_size=2)
    records = [moodle.user_record() for _ in range(5)]
    moodle.fm.inject("http503", function="core_user_create_users")

    result = moodle.track("users", client.create_users(records))

    assert result.aborted.errorcode == "http503"
    assert [o.status for o in result.outcomes] == ["pending"] * 5
    assert moodle.fm.call_counts["core_user_create_users"] == 1
    usernames = [r["username"] for r in records]
    assert moodle.client.get_users_by_field("username", usernames) == []


@pytest.mark.parametrize("kind", ["http503", "timeout", "drop"])
def test_transient_error_mid_batch_keeps_what_was_written(moodle, monkeypatch, kind):
    fm = moodle.fm
    handle = fm.handle

    def second_call_fails(body, *args, **kwargs):
        if fm.call_counts["core_user_create_users"] == 1:
            fm.inject(kind, function="core_user_create_users")
        return handle(body, *args, **kwargs)

    monkeypatch.setattr(fm, "handle", second_call_fails)
    client = moodle.make_client(batch_size=2)
    records = [moodle.user_record() for _ in range(5)]

    result = moodle.track("users", client.create_users(records))

    assert isinstance(result.aborted, MoodleTransientError)
    assert [o.status for o in result.outcomes] == ["ok"] * 2 + ["pending"] * 3
    assert fm.call_counts["core_user_create_users"] == 2
    usernames = [r["username"] for r in records]
    found = moodle.client.get_users_by_field("username", usernames)
    assert sorted(u["username"] for u in found) == sorted(usernames[:2])
    # sending the pending records again creates each of them once
    retry = moodle.track(
        "users", client.create_users([o.record for o in result.pending])
    )
    assert [o.status for o in retry.outcomes] == ["ok"] * 3
    found = moodle.client.get_users_by_field("username", usernames)
    assert sorted(u["username"] for u in found) == sorted(usernames)


# ------------------------------------------------------------ max_input_vars
def test_client_above_the_site_limit_loses_records_and_says_so(moodle):
    # PHP keeps the first max_input_vars fields; here the cut falls on a record
    # boundary after 10 users, so Moodle creates those and answers for them only.
    moodle.fm.max_input_vars = 3 + 10 * USER_FIELDS
    client = moodle.make_client(max_fields=1000)
    records = [_plain_user(moodle) for _ in range(15)]

    result = moodle.track("users", client.create_users(records))

    assert [o.status for o in result.outcomes] == ["ok"] * 10 + ["failed"] * 5
    assert {o.error.errorcode for o in result.failed} == {"noresult"}
    found = moodle.client.get_users_by_field(
        "username", [r["username"] for r in records]
    )
    assert sorted(u["username"] for u in found) == sorted(
        r["username"] for r in records[:10]
    )


def test_client_above_the_site_limit_gets_a_cut_record_rejected(moodle):
    # a cut inside a record makes it invalid: the whole call is rejected, and
    # the client's halving then gets every record through
    moodle.fm.max_input_vars = 3 + 10 * USER_FIELDS + 2
    client = moodle.make_client(max_fields=1000)
    records = [_plain_user(moodle) for _ in range(15)]

    result = moodle.track("users", client.create_users(records))

    assert [o.status for o in result.outcomes] == ["ok"] * 15
    assert moodle.fm.call_counts["core_user_create_users"] > 1


def test_lookup_above_the_site_limit_finds_nothing(moodle):
    user = moodle.new_user()
    values = [moodle.name(f"n{i}") for i in range(5100)] + [user["username"]]
    greedy = moodle.make_client(max_fields=10000)

    # PHP drops the values past the limit, the user's among them
    everything = greedy.call(
        "core_user_get_users_by_field", field="username", values=values
    )
    assert everything == []
    # the client's lookup sends the values in requests that fit
    found = moodle.client.get_users_by_field("username", values)
    assert [u["id"] for u in found] == [user["id"]]


def test_default_client_never_exceeds_the_site_limit(moodle):
    client = moodle.make_client(batch_size=10000)
    records = [_plain_user(moodle) for _ in range(1100)]
    assert 3 + len(records) * USER_FIELDS > moodle.fm.max_input_vars

    result = moodle.track("users", client.create_users(records))

    assert [o.status for o in result.outcomes] == ["ok"] * len(records)
    sent = [
        len(params["users"])
        for name, params in moodle.fm.calls
        if name == "core_user_create_users"
    ]
    assert sum(sent) == len(records)
    assert all(3 + n * USER_FIELDS <= 2000 for n in sent)
    found = moodle.client.get_users_by_field(
        "username", [r["username"] for r in records]
    )
    assert len(found) == len(records)
