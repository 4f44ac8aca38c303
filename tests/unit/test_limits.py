"""Payloads fitted into Moodle's columns before any call (issue 13, item 2)."""

import pytest

from openeducat_moodle.sync import limits

# Moodle 4.5.6 lib/db/install.xml: the columns the connector writes.
MOODLE_45_COLUMNS = {
    "category": {"name": 255, "idnumber": 100},
    "course": {"fullname": 254, "shortname": 255, "idnumber": 100},
    "group": {"name": 254, "idnumber": 100},
    "user": {
        "username": 100,
        "firstname": 100,
        "lastname": 100,
        "email": 100,
        "idnumber": 255,
        "auth": 20,
        "lang": 30,
        "country": 2,
        "phone1": 20,
        "city": 120,
        "institution": 255,
        "department": 255,
        "address": 255,
    },
}


def test_the_limits_are_moodle_45s_columns():
    assert {
        kind: {name: field.limit for name, field in fields.items()}
        for kind, fields in limits.LIMITS.items()
    } == MOODLE_45_COLUMNS


def test_a_value_that_fits_is_left_alone():
    payload = {"fullname": "é" * 254, "shortname": "日" * 255, "idnumber": "oec_1"}
    assert limits.fit("course", payload) == (payload, [], None)
    assert limits.fit("course", payload)[0] is payload


def test_lengths_are_characters_not_bytes():
    # 255 characters of two bytes each (510 bytes) fit a 255 column
    fitted, notes, problem = limits.fit("course", {"shortname": "é" * 256})
    assert problem is None and len(fitted["shortname"]) == 255
    assert notes == [
        "shortname shortened from 256 characters to 255 (Moodle allows 255)"
    ]


def test_a_long_full_name_is_cut_with_an_ellipsis():
    name = "Advanced " * 40
    fitted, notes, problem = limits.fit("course", {"fullname": name})
    assert problem is None
    assert len(fitted["fullname"]) <= 254
    assert fitted["fullname"].endswith("…")
    assert fitted["fullname"] == name[:253].rstrip() + "…"
    size = len(fitted["fullname"])
    assert notes == [
        f"fullname shortened from {len(name)} characters to {size} (Moodle allows 254)"
    ]
    # A category's and a person's names likewise.
    assert limits.fit("category", {"name": "x" * 300})[0]["name"] == "x" * 254 + "…"
    assert limits.fit("user", {"lastname": "y" * 101})[0]["lastname"] == (
        "y" * 99 + "…"
    )


def test_a_long_short_name_keeps_a_prefix_and_a_hash_of_the_whole():
    """Two codes alike in their first 250 characters never collide, and the
    same code always gives the same short name (the payload hash holds)."""
    first = "S" * 250 + "_PHYSICS_A"
    second = "S" * 250 + "_PHYSICS_B"
    one = limits.fit("course", {"shortname": first})[0]["shortname"]
    two = limits.fit("course", {"shortname": second})[0]["shortname"]
    assert len(one) == len(two) == 255
    assert one != two
    assert one.startswith("S" * 246 + "~") and len(one.split("~")[1]) == 8
    assert limits.fit("course", {"shortname": first})[0]["shortname"] == one
    # A group's name must be unique in its course: hashed too.
    group = limits.fit("group", {"name": "B" * 300})[0]["name"]
    assert len(group) == 254
    assert group != limits.fit("group", {"name": "B" * 301})[0]["name"]


@pytest.mark.parametrize(
    ("kind", "payload", "reason"),
    [
        (
            "user",
            {"email": "a" * 120 + "@uni.test"},
            "email address is 129 characters; Moodle allows 100: shorten it",
        ),
        ("user", {"username": "u" * 101}, "username is 101 characters"),
        ("user", {"phone1": "+44 20 7946 0958 ext 1234"}, "phone number is 25"),
        ("user", {"country": "USA"}, "country 'USA' is not what Moodle accepts"),
        ("user", {"country": "1A"}, "use the 2-letter code"),
        ("user", {"lang": "x" * 31}, "language code is 31 characters"),
        ("user", {"auth": "a" * 21}, "choose another on the Moodle instance"),
        ("course", {"idnumber": "i" * 101}, "idnumber the connector gives it"),
        ("group", {"idnumber": "i" * 101}, "Moodle allows 100"),
    ],
)
def test_a_value_that_cannot_be_shortened_blocks_the_record(kind, payload, reason):
    fitted, notes, problem = limits.fit(kind, payload)
    assert fitted is None and notes == []
    assert reason in problem


def test_every_blocking_problem_is_named_at_once():
    _fitted, _notes, problem = limits.fit(
        "user", {"email": "e" * 101, "username": "u" * 101, "lastname": "l" * 200}
    )
    assert "email address is 101" in problem and "username is 101" in problem


def test_kinds_without_text_pass_through():
    payload = {"roleid": 5, "userid": 3, "courseid": 2}
    assert limits.fit("enrolment", payload) == (payload, [], None)
