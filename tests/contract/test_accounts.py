"""Moodle accounts: letter case in email look-ups (MariaDB and PostgreSQL),
languages Moodle lacks, usernames with extended characters, what web services
show of an account's rights, and the push's account rules on top of them.

Each test runs on the simulator as MariaDB (``sim``), on the simulator as
PostgreSQL (``sim_pg``: look-ups compare case) and on the real Moodle at
``MOODLE_URL`` (``real``; the suite must pass on a MariaDB and on a
PostgreSQL site).
"""

import secrets

import pytest
import responses

from openeducat_moodle.moodle import MoodleClient, MoodleRecordError
from openeducat_moodle.sync import accounts
from openeducat_moodle.sync.push import PushSettings, PushSync
from openeducat_moodle.sync.rows import Person, Snapshot
from openeducat_moodle.sync.store import MemoryStore

from ..fake_moodle import FakeMoodle
from .conftest import SIM_BASE, SIM_TOKEN, Moodle, _real, _sim


def _sim_pg(request):
    fm = FakeMoodle(token=SIM_TOKEN, db="pgsql")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fm.install(rsps, base_url=SIM_BASE)
        site = Moodle(MoodleClient(SIM_BASE, SIM_TOKEN), real=False, fm=fm)
        yield site
        site.cleanup.run(site.client)


@pytest.fixture(params=["sim", "sim_pg", "real"])
def site(request):
    """The site under test (see the module docstring)."""
    make = {"sim": _sim, "sim_pg": _sim_pg, "real": _real}[request.param]
    yield from make(request)


def functions(site):
    return set(site.client.get_site_info().functions)


def an_account(site, email, **extra):
    """An account made in Moodle, not by the connector (no idnumber)."""
    record = site.user_record(email=email, idnumber="", **extra)
    return site._one("users", site.client.create_users([record]))


def person(site, email, pid=None, **extra):
    """An OpenEduCat student with an id no other run uses."""
    pid = pid or 900_000_000 + secrets.randbelow(99_999_999)
    return Person(pid, "student", "Contract", site.prefix, email, **extra)


def push_users(site, people, **settings):
    """The push's users phase; whatever it creates is deleted at teardown."""
    store = MemoryStore()
    snapshot = Snapshot.build(students=people)
    try:
        result = PushSync(
            site.client, store, PushSettings(phases=("users",), **settings)
        ).run(snapshot)
    finally:
        ours = site.client.get_users_by_field(
            "idnumber", [f"oec_student_{p.id}" for p in people]
        )
        site.cleanup.users += [u["id"] for u in ours]
    return result, store


# ---------------------------------------------------------------- email case
def test_email_lookup_finds_the_address_as_stored(site):
    address = f"{site.name('usr')}@EXAMPLE.COM"
    account = an_account(site, address)

    found = site.client.get_users_by_field("email", [address])

    assert [u["id"] for u in found] == [account["id"]]
    assert found[0]["email"] == address  # Moodle keeps what it was sent


def test_email_lookup_in_another_case_depends_on_the_database(site):
    """MariaDB finds the address in any letter case, PostgreSQL only as
    stored: nothing the connector does may depend on either."""
    address = f"{site.name('usr')}@EXAMPLE.COM"
    account = an_account(site, address)

    found = site.client.get_users_by_field("email", [address.lower()])

    assert [u["id"] for u in found] in ([], [account["id"]])
    if site.fm is not None:
        assert bool(found) is (site.fm.db != "pgsql")


def test_create_refuses_an_address_differing_only_in_case(site):
    """On every database: Moodle compares addresses without case on create."""
    address = f"{site.name('usr')}@Example.Com"
    an_account(site, address)

    result = site.track(
        "users", site.client.create_users([site.user_record(email=address.lower())])
    )

    outcome = result.outcomes[0]
    assert not outcome.ok
    assert outcome.error.errorcode == "invalidparameter"


def test_case_insensitive_search_by_email(site):
    """``core_user_get_users`` compares without case on every database (the
    push's explanation of a refused create); optional in the service."""
    if "core_user_get_users" not in functions(site):
        pytest.skip("core_user_get_users is not in the token's service")
    address = f"{site.name('usr')}@Example.Com"
    account = an_account(site, address)

    answer = site.client.call(
        "core_user_get_users", criteria=[{"key": "email", "value": address.lower()}]
    )

    assert [u["id"] for u in answer["users"]] == [account["id"]]


def test_push_finds_an_address_stored_in_upper_case(site):
    """The push looks an address up as given, in lower and in upper case."""
    local = site.name("usr")
    account = an_account(site, f"{local}@example.com".upper())
    ann = person(site, f"{local}@example.com")

    result, store = push_users(site, [ann], adopt_accounts="never")

    mapping = store.get("user", f"oec_student_{ann.id}")
    assert mapping.state == "blocked", mapping.last_error
    assert f"Moodle account {account['id']}" in mapping.last_error
    assert result.phases["users"].failed == 0


def test_push_explains_an_address_stored_in_mixed_case(site):
    """Stored as ``Ctest…@Example.Com``: no look-up by email finds it on
    PostgreSQL; the create is refused and the case-insensitive search tells
    why (when the service has it). Never a failure retried for good."""
    local = site.name("usr")
    account = an_account(site, f"{local.capitalize()}@Example.Com")
    ann = person(site, f"{local}@example.com")

    result, store = push_users(site, [ann])

    mapping = store.get("user", f"oec_student_{ann.id}")
    users = site.client.get_users_by_field("idnumber", [f"oec_student_{ann.id}"])
    assert users == []
    if mapping.state == "blocked":
        assert f"Moodle account {account['id']}" in mapping.last_error
    else:
        # Only where Moodle's look-up missed it and nothing could explain it.
        assert "core_user_get_users" not in functions(site)
        assert mapping.state == "error" and "invalidparameter" in mapping.last_error


def test_two_people_with_one_address_in_two_cases(site):
    local = site.name("usr")
    first = person(site, f"{local}@example.com")
    # the lower id keeps the address
    second = person(site, f"{local.upper()}@EXAMPLE.COM", pid=first.id + 1)

    result, store = push_users(site, [first, second])

    assert store.get("user", f"oec_student_{first.id}").state == "synced"
    blocked = store.get("user", f"oec_student_{second.id}")
    assert blocked.state == "blocked"
    assert f"(oec_student_{first.id})" in blocked.last_error
    assert result.phases["users"].failed == 0


# ----------------------------------------------------------------- languages
def test_a_language_moodle_lacks_is_refused(site):
    """Moodle refuses a language whose pack it lacks, on create and update."""
    result = site.track(
        "users", site.client.create_users([site.user_record(lang="xx")])
    )
    assert result.outcomes[0].error.errorcode == "invalidparameter"
    user = site.new_user()
    update = site.client.update_users([{"id": user["id"], "lang": "xx"}])
    assert not update.outcomes[0].ok


def test_push_creates_the_account_without_a_language_moodle_lacks(site):
    ann = person(site, f"{site.name('usr')}@example.com", lang="xx")

    result, store = push_users(site, [ann])

    (user,) = site.client.get_users_by_field("idnumber", [f"oec_student_{ann.id}"])
    assert user.get("lang") != "xx"
    mapping = store.get("user", f"oec_student_{ann.id}")
    assert mapping.state == "synced"
    assert mapping.extra["note"].startswith("language xx is not installed")
    assert result.phases["users"].failed == 0


# ----------------------------------------------------------------- usernames
def test_a_username_with_extended_characters_tells_the_site_setting(site):
    """Without ``extendedusernamechars`` (Moodle's default) a look-up by such
    a username is refused; with it, it is an ordinary look-up."""
    try:
        site.client.get_users_by_field("username", [accounts.EXTENDED_PROBE])
    except MoodleRecordError as err:
        assert err.errorcode == "invalidparameter"
        extended = False
    else:
        extended = True
    sync = PushSync(site.client, MemoryStore(), PushSettings())
    assert sync._extended_usernames() is extended
    if not site.real:
        assert extended is False


# -------------------------------------------------------------- rights check
def test_what_web_services_show_of_an_account_s_rights(site):
    missing = set(accounts.ROLE_CHECK_FUNCTIONS) - functions(site)
    if missing:
        pytest.skip(f"not in the token's service: {', '.join(sorted(missing))}")
    course = site.new_course()
    teacher = site.new_user()
    student = site.new_user()
    site.enrol(course["id"], teacher["id"], "editingteacher")
    site.enrol(course["id"], student["id"], "student")

    problems, rights = accounts.check_accounts(
        site.client, [teacher["id"], student["id"]]
    )

    info = site.client.call("core_webservice_get_site_info")
    if info.get("userissiteadmin"):
        assert "site administrator" in problems[student["id"]]
        return
    assert course["shortname"] in problems[teacher["id"]]
    assert "moodle/course:update" in problems[teacher["id"]]
    assert student["id"] not in problems
    assert rights[student["id"]] == f"enrolled in {course['shortname']} as a student"
