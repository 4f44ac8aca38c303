"""Moodle accounts on the simulator: adoption of existing accounts, one
account per email address, letter case on PostgreSQL, usernames, languages."""

import dataclasses

import pytest
import responses

from openeducat_moodle.moodle import MoodleAccessError, MoodleClient
from openeducat_moodle.sync import accounts
from openeducat_moodle.sync.push import PushSettings, PushSync
from openeducat_moodle.sync.reconcile import Importer
from openeducat_moodle.sync.rows import (
    Batch,
    Department,
    Enrolment,
    Person,
    Program,
    Snapshot,
    Subject,
)
from openeducat_moodle.sync.store import MemoryStore
from tests.fake_moodle import FakeMoodle

BASE = "https://moodle.test"
ACCOUNT_FUNCTIONS = (
    "core_enrol_get_users_courses",
    "core_enrol_get_enrolled_users_with_capability",
    "core_user_get_users",
)
# What Moodle's default roles can do, of accounts.ABOVE_STUDENT.
ROLE_CAPABILITIES = {
    1: set(accounts.ABOVE_STUDENT),
    2: {"moodle/course:create"},
    3: {"moodle/course:update", "moodle/grade:viewall", "moodle/role:assign"},
    4: {"moodle/grade:viewall"},
    5: set(),
}


class SiteClient(MoodleClient):
    """A client of the simulator that also answers the optional functions the
    simulator does not serve, from its state, as Moodle 4.5 does (checked on
    real sites by tests/contract/test_accounts.py).

    :param functions: those of them in the token's service
    :param system: ``{userid: role id}`` of roles held at system level
    """

    def __init__(self, fm, functions=ACCOUNT_FUNCTIONS, system=None, **options):
        super().__init__(BASE, "simtoken", **options)
        self.fm = fm
        self.functions = set(functions)
        self.system = system or {}

    def call(self, wsfunction, **params):
        if wsfunction not in ACCOUNT_FUNCTIONS:
            answer = super().call(wsfunction, **params)
            if wsfunction == "core_webservice_get_site_info":
                answer["functions"] += [
                    {"name": n, "version": ""} for n in self.functions
                ]
            return answer
        self.call_counts[wsfunction] += 1
        if wsfunction not in self.functions:
            raise MoodleAccessError(
                "Access control exception", "accessexception", wsfunction
            )
        return getattr(self, wsfunction)(**params)

    def core_enrol_get_users_courses(self, userid, returnusercount=1):
        return [
            {
                "id": e["courseid"],
                "shortname": self.fm.courses[e["courseid"]]["shortname"],
            }
            for e in self.fm.enrolments.values()
            if e["userid"] == userid
        ]

    def core_enrol_get_enrolled_users_with_capability(
        self, coursecapabilities, options
    ):
        answer = []
        for entry in coursecapabilities:
            courseid = entry["courseid"]
            for capability in entry["capabilities"]:
                if courseid == 1:
                    holders = [
                        u
                        for u, r in self.system.items()
                        if capability in ROLE_CAPABILITIES[r]
                    ]
                else:
                    holders = [
                        e["userid"]
                        for e in self.fm.enrolments.values()
                        if e["courseid"] == courseid
                        and any(capability in ROLE_CAPABILITIES[r] for r in e["roles"])
                    ]
                answer.append(
                    {
                        "courseid": courseid,
                        "capability": capability,
                        "users": [{"id": u} for u in sorted(holders)],
                    }
                )
        return answer

    def core_user_get_users(self, criteria):
        (criterion,) = criteria
        assert criterion["key"] == "email"
        value = criterion["value"].lower()
        users = [
            self.fm._user_info(u)
            for u in self.fm.users.values()
            if not u["deleted"] and u["email"].lower() == value
        ]
        return {"users": users, "warnings": []}


@pytest.fixture
def fm():
    fake = FakeMoodle(token="simtoken")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.install(rsps, base_url=BASE)
        yield fake


@pytest.fixture
def pg():
    """A simulated Moodle on PostgreSQL: look-ups by email compare case."""
    fake = FakeMoodle(token="simtoken", db="pgsql")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.install(rsps, base_url=BASE)
        yield fake


@pytest.fixture
def store():
    return MemoryStore()


def school(students=(), faculty=(), enrolments=None):
    """One program with one subject; every student enrolled in it."""
    students = list(students)
    return Snapshot.build(
        departments=[Department(1, "Science")],
        programs=[Program(10, "BSc", "BSC", 1, (100,))],
        subjects=[Subject(100, "Mathematics", "MATH")],
        batches=[Batch(20, "2026", "B26", 10)],
        students=students,
        faculty=list(faculty),
        enrolments=enrolments
        if enrolments is not None
        else [Enrolment(50 + i, s.id, 10, 20) for i, s in enumerate(students)],
    )


def student(pid=30, email="ann@uni.test", first="Ann", last="Lee", **kw):
    return Person(pid, "student", first, last, email, **kw)


def teacher(pid=40, email="eve@uni.test", first="Eve", last="Qi", **kw):
    kw.setdefault("subject_ids", (100,))
    return Person(pid, "faculty", first, last, email, **kw)


def push(fm, store, snapshot, client=None, **settings):
    client = client or MoodleClient(BASE, "simtoken")
    sync = PushSync(client, store, PushSettings(**settings))
    return sync.run(snapshot)


def records(result, phase="users"):
    return {r["key"]: (r["action"], r["reason"]) for r in result.phases[phase].records}


def course_id(fm):
    return fm.find_course(idnumber="oec_subj_100_course_10")["id"]


def a_teacher_account(fm, email="ann@uni.test"):
    """An account made in Moodle, teaching the course the push creates."""
    uid = fm.add_user("mrs.lee", "Ada", "Lee", email, auth="oauth2")
    return uid


# ---------------------------------------------------------------- adoption


def test_an_account_matched_by_email_is_not_taken_by_default(fm, store):
    """Anyone who can set a person's email in OpenEduCat could otherwise take
    over a teacher's Moodle account."""
    uid = a_teacher_account(fm)
    before = dict(fm.users[uid])

    result = push(fm, store, school([student()]))

    assert fm.users[uid] == before  # not renamed, not re-authed, no idnumber
    action, reason = records(result)["oec_student_30"]
    assert action == "blocked"
    assert f"Moodle account {uid} (mrs.lee, by email)" in reason
    assert "Initial Import wizard" in reason
    assert fm.find_user(idnumber="oec_student_30") is None
    assert not fm.enrolled_roles(course_id(fm), uid)
    mapping = store.get("user", "oec_student_30")
    assert (mapping.state, mapping.moodle_id) == ("blocked", None)


def test_never_blocks_with_the_reason_and_never_retries(fm, store):
    uid = a_teacher_account(fm)
    push(fm, store, school([student()]), adopt_accounts="never")
    mapping = store.get("user", "oec_student_30")
    assert mapping.state == "blocked"
    assert f"already used by Moodle account {uid} (mrs.lee)" in mapping.last_error
    assert "adopting existing accounts is off" in mapping.last_error
    fm.reset_calls()

    push(fm, store, school([student()]), adopt_accounts="never")

    assert fm.write_call_count() == 0
    assert store.get("user", "oec_student_30").retry_count == 0


def test_an_approved_account_keeps_its_login_and_username(fm, store):
    uid = a_teacher_account(fm)
    push(fm, store, school([student()]))
    store.get("user", "oec_student_30").extra["adopt"] = {"moodle_id": uid}

    result = push(fm, store, school([student()]))

    user = fm.users[uid]
    assert (user["idnumber"], user["firstname"], user["username"], user["auth"]) == (
        "oec_student_30",
        "Ann",
        "mrs.lee",
        "oauth2",
    )
    assert result.phases["users"].adopted == 1
    assert fm.enrolled_roles(course_id(fm), uid) == {5}
    mapping = store.get("user", "oec_student_30")
    assert (mapping.moodle_id, mapping.extra["adopted"]) == (uid, "email")
    fm.reset_calls()
    push(fm, store, school([student()]))
    assert fm.write_call_count() == 0  # the kept login is no change


def test_an_approved_account_gets_the_instance_login_when_asked(fm, store):
    uid = a_teacher_account(fm)
    push(fm, store, school([student()]))
    store.get("user", "oec_student_30").extra["adopt"] = {"moodle_id": uid}

    push(fm, store, school([student()]), adopt_keep_auth=False)

    assert fm.users[uid]["auth"] == "manual"


def test_an_approval_no_longer_holds_when_the_account_stopped_matching(fm, store):
    uid = a_teacher_account(fm)
    push(fm, store, school([student()]))
    store.get("user", "oec_student_30").extra["adopt"] = {"moodle_id": uid}
    fm.users[uid]["email"] = "someone.else@uni.test"

    push(fm, store, school([student()]))

    assert fm.users[uid]["idnumber"] == ""
    assert fm.find_user(idnumber="oec_student_30")["id"] != uid


def test_someone_else_is_never_adopted(fm, store):
    uid = a_teacher_account(fm)
    push(fm, store, school([student()]))
    store.get("user", "oec_student_30").extra["adopt"] = {"separate": [uid]}

    push(fm, store, school([student()]))

    assert fm.users[uid]["idnumber"] == ""
    reason = store.get("user", "oec_student_30").last_error
    assert "a Moodle Manager said it is someone else" in reason


def test_a_site_administrator_is_never_adopted(fm, store):
    uid = fm.add_user("boss", "Bo", "Ss", "ann@uni.test")
    fm.site_admins.add(uid)
    push(fm, store, school([student()]))
    store.get("user", "oec_student_30").extra["adopt"] = {"moodle_id": uid}

    result = push(fm, store, school([student()]))

    assert fm.users[uid]["idnumber"] == ""
    mapping = store.get("user", "oec_student_30")
    assert (mapping.state, mapping.moodle_id) == ("blocked", None)
    assert "Cannot update admin accounts" in mapping.last_error
    enrolment = records(result, "enrolments")["oec_student_30@oec_subj_100_course_10"]
    assert enrolment == ("blocked", "user oec_student_30 is not synced")
    assert not fm.enrolled_roles(course_id(fm), uid)
    fm.reset_calls()
    push(fm, store, school([student()]))
    assert fm.write_call_count() == 0


def not_admin(fm):
    """The connector's Moodle user, not a site administrator."""
    fm.ws_userid = fm.add_user("oecsync", "Sync", "User", "sync@uni.test")


def test_auto_adopts_an_account_that_is_only_a_student(fm, store):
    not_admin(fm)
    other = fm.add_course("Elsewhere", "ELSE")
    uid = fm.add_user("ann.old", "A", "L", "ANN@uni.test", auth="ldap")
    fm.enrol(other, uid, 5)

    result = push(fm, store, school([student()]), SiteClient(fm), adopt_accounts="auto")

    assert result.phases["users"].adopted == 1
    assert fm.users[uid]["idnumber"] == "oec_student_30"
    assert fm.users[uid]["auth"] == "ldap"
    assert fm.enrolled_roles(course_id(fm), uid) == {5}


def test_auto_refuses_an_account_that_teaches(fm, store):
    not_admin(fm)
    other = fm.add_course("Elsewhere", "ELSE")
    uid = a_teacher_account(fm)
    fm.enrol(other, uid, 3)

    result = push(fm, store, school([student()]), SiteClient(fm), adopt_accounts="auto")

    assert fm.users[uid]["idnumber"] == ""
    action, reason = records(result)["oec_student_30"]
    assert action == "blocked"
    assert "moodle/course:update" in reason and "ELSE" in reason


def test_auto_refuses_a_manager_at_site_level(fm, store):
    not_admin(fm)
    uid = a_teacher_account(fm)
    client = SiteClient(fm, system={uid: 1})

    result = push(fm, store, school([student()]), client, adopt_accounts="auto")

    assert fm.users[uid]["idnumber"] == ""
    assert "in the whole site" in records(result)["oec_student_30"][1]


def test_auto_refuses_when_the_connector_user_is_a_site_administrator(fm, store):
    uid = fm.add_user("ann.old", "A", "L", "ann@uni.test")

    result = push(fm, store, school([student()]), SiteClient(fm), adopt_accounts="auto")

    assert fm.users[uid]["idnumber"] == ""
    assert "site administrator" in records(result)["oec_student_30"][1]


def test_auto_refuses_when_the_rights_cannot_be_checked(fm, store):
    not_admin(fm)
    uid = fm.add_user("ann.old", "A", "L", "ann@uni.test")
    client = SiteClient(fm, functions=("core_user_get_users",))

    result = push(fm, store, school([student()]), client, adopt_accounts="auto")

    assert fm.users[uid]["idnumber"] == ""
    reason = records(result)["oec_student_30"][1]
    assert "core_enrol_get_users_courses" in reason
    assert fm.call_counts["core_enrol_get_users_courses"] == 0


def test_auto_refuses_an_account_matched_by_two_people(fm, store):
    """Ann's email is on the account, and Bob's login is its username."""
    not_admin(fm)
    uid = fm.add_user("bob", "A", "L", "ann@uni.test")
    people = [student(), student(31, "bob@uni.test", "Bob", "Ng", login="bob")]

    result = push(fm, store, school(people), SiteClient(fm), adopt_accounts="auto")

    assert fm.users[uid]["idnumber"] == ""
    assert "matches more than one person" in records(result)["oec_student_30"][1]
    assert "matches more than one person" in records(result)["oec_student_31"][1]


def test_auto_never_takes_an_account_by_username_alone(fm, store):
    """Its email address would become the person's: a way into it."""
    not_admin(fm)
    uid = fm.add_user("ann", "A", "L", "someone@else.test")
    person = student(login="ann")

    result = push(fm, store, school([person]), SiteClient(fm), adopt_accounts="auto")

    assert fm.users[uid]["email"] == "someone@else.test"
    assert "not this person's" in records(result)["oec_student_30"][1]


# ------------------------------------------------- one account per address


def test_two_students_with_one_email_the_second_is_blocked(fm, store):
    people = [
        student(),
        student(31, "Ann@Uni.Test", "Annie", "Lee"),
        student(32, "cy@uni.test", "Cy", "Po"),
    ]

    push(fm, store, school(people))

    assert fm.find_user(idnumber="oec_student_30")["email"] == "ann@uni.test"
    assert fm.find_user(idnumber="oec_student_32")
    second = store.get("user", "oec_student_31")
    assert second.state == "blocked"
    assert second.last_error.startswith(
        "email address Ann@Uni.Test is already used by Ann Lee (oec_student_30)"
    )
    fm.reset_calls()
    push(fm, store, school(people))
    assert fm.write_call_count() == 0


def test_the_unchanged_owner_keeps_the_address(fm, store):
    """Bob takes Ann's address in OpenEduCat: Bob is blocked, not Ann."""
    people = [student(), student(31, "bob@uni.test", "Bob", "Ng")]
    push(fm, store, school(people))
    bob = dataclasses.replace(people[1], email="ann@uni.test")

    push(fm, store, school([people[0], bob]))

    assert store.get("user", "oec_student_30").state == "synced"
    assert "already used by Ann Lee" in store.get("user", "oec_student_31").last_error


def test_an_address_of_another_of_our_accounts_is_blocked_not_retried(fm, store):
    push(fm, store, school([student()]))
    newcomer = student(31, "ANN@uni.test", "Annie", "Lee")

    push(fm, store, school([newcomer]))

    mapping = store.get("user", "oec_student_31")
    assert mapping.state == "blocked"
    assert "Moodle account of oec_student_30" in mapping.last_error


# ------------------------------------------------- student and faculty


def test_a_student_who_teaches_has_one_account_with_both_roles(fm, store):
    snapshot = school(
        [student(partner_id=7)],
        [teacher(email="ann@uni.test", first="Ann", last="Lee", partner_id=7)],
    )

    push(fm, store, snapshot)

    ann = fm.find_user(idnumber="oec_student_30")
    assert len([u for u in fm.users.values() if u["email"] == "ann@uni.test"]) == 1
    assert fm.enrolled_roles(course_id(fm), ann["id"]) == {3, 5}
    shared = store.get("user", "oec_faculty_40")
    assert (shared.state, shared.moodle_id, shared.extra["account"]) == (
        "synced",
        None,
        "oec_student_30",
    )
    fm.reset_calls()
    push(fm, store, snapshot)
    assert fm.write_call_count() == 0


def test_one_person_by_email_and_name_in_any_case(fm, store):
    snapshot = school(
        [student()], [teacher(email="ANN@uni.test", first="ann", last="LEE")]
    )

    push(fm, store, snapshot)

    ann = fm.find_user(idnumber="oec_student_30")
    assert fm.enrolled_roles(course_id(fm), ann["id"]) == {3, 5}


def test_the_shared_account_stays_open_while_one_of_them_is_active(fm, store):
    snapshot = school(
        [student(partner_id=7)], [teacher(email="ann@uni.test", partner_id=7)]
    )
    push(fm, store, snapshot)
    graduated = dataclasses.replace(snapshot.students[30], active=False)

    push(fm, store, school([graduated], list(snapshot.faculty.values()), []))

    assert fm.find_user(idnumber="oec_student_30")["suspended"] == 0


def test_a_push_of_the_teacher_alone_finds_the_shared_account(fm, store):
    """A new faculty record is pushed alone (its save enqueues only it): the
    account of the student it is, is found by its email address and names."""
    push(fm, store, school([student()]))
    alone = school([], [teacher(email="ann@uni.test", first="Ann", last="Lee")], [])

    PushSync(MoodleClient(BASE, "simtoken"), store, PushSettings()).run(
        alone, scope={"faculty": {40}}
    )

    ann = fm.find_user(idnumber="oec_student_30")
    assert fm.enrolled_roles(course_id(fm), ann["id"]) == {3, 5}
    assert store.get("user", "oec_faculty_40").extra["account"] == "oec_student_30"
    assert len(fm.users) == 3  # guest, admin, Ann


def test_a_push_of_the_teacher_alone_keeps_the_shared_account(fm, store):
    snapshot = school(
        [student(partner_id=7)], [teacher(email="ann@uni.test", partner_id=7)]
    )
    push(fm, store, snapshot)
    ann = fm.find_user(idnumber="oec_student_30")
    fm.unenrol(course_id(fm), ann["id"])  # as if the teaching were new
    store.delete([store.get("enrolment", "oec_faculty_40@oec_subj_100_course_10")])
    alone = school([], list(snapshot.faculty.values()), [])

    PushSync(MoodleClient(BASE, "simtoken"), store, PushSettings()).run(
        alone, scope={"faculty": {40}}
    )

    assert fm.enrolled_roles(course_id(fm), ann["id"]) == {3}
    assert len(fm.users) == 3


# ---------------------------------------------------------------- usernames


def test_usernames_follow_moodle_rules():
    assert accounts.username(" José.Núñez@Uni.test ") == "jose.nunez@uni.test"
    assert accounts.username("Straße@x.de") == "strasse@x.de"
    assert accounts.username("José@x", extended=True) == "josé@x"
    assert accounts.with_suffix("ann@x.edu", "student", 30) == "ann-s30@x.edu"
    assert accounts.with_suffix("ann", "faculty", 4) == "ann-f4"


def test_a_non_ascii_login_is_transliterated_not_stripped(fm, store):
    push(fm, store, school([student(login="José@uni.test")]))

    assert fm.find_user(idnumber="oec_student_30")["username"] == "jose@uni.test"


def test_a_site_with_extended_characters_keeps_them(fm, store):
    class Extended(MoodleClient):
        """A site with $CFG->extendedusernamechars: the probe is accepted."""

        def get_users_by_field(self, field, values):
            if field == "username" and values == [accounts.EXTENDED_PROBE]:
                self.call_counts["probe"] += 1
                return []
            return super().get_users_by_field(field, values)

    client = Extended(BASE, "simtoken")
    sync = PushSync(client, store, PushSettings())
    assert sync._username(student(login="José@uni.test")) == "josé@uni.test"
    assert sync._username(student(login="Zoë@uni.test")) == "zoë@uni.test"
    assert sync._username(student(login="ann@uni.test")) == "ann@uni.test"
    assert client.call_counts["probe"] == 1


def test_the_probe_tells_a_site_without_extended_characters(fm, store):
    client = MoodleClient(BASE, "simtoken")
    sync = PushSync(client, store, PushSettings())
    assert sync._username(student(login="ann@uni.test")) == "ann@uni.test"
    assert fm.call_counts["core_user_get_users_by_field"] == 0  # not needed
    assert sync._username(student(login="José@uni.test")) == "jose@uni.test"
    assert fm.call_counts["core_user_get_users_by_field"] == 1


def test_a_username_taken_in_moodle_gets_a_suffix(fm, store):
    uid = fm.add_user("jose@uni.test", "Jo", "Se", "jose.other@uni.test")
    person = student(email="ann@uni.test", login="josé@uni.test")

    push(fm, store, school([person]), adopt_accounts="never")

    assert fm.users[uid]["idnumber"] == ""  # not adopted by its username
    created = fm.find_user(idnumber="oec_student_30")
    assert created["username"] == "jose-s30@uni.test"
    mapping = store.get("user", "oec_student_30")
    assert "username jose@uni.test is taken" in mapping.extra["note"]
    fm.reset_calls()
    push(fm, store, school([person]), adopt_accounts="never")
    assert fm.write_call_count() == 0


def test_two_people_with_one_username_get_two(fm, store):
    people = [
        student(31, "bob@uni.test", "Bob", "Ng", login="kim@uni.test"),
        student(32, "kim@uni.test", "Kim", "Ro"),
    ]

    result = push(fm, store, school(people))

    assert result.phases["users"].failed == 0
    assert fm.find_user(idnumber="oec_student_31")["username"] == "kim@uni.test"
    assert fm.find_user(idnumber="oec_student_32")["username"] == "kim-s32@uni.test"


# -------------------------------------------------- letter case (PostgreSQL)


def test_email_in_upper_case_is_found_on_postgresql(pg, store):
    uid = pg.add_user("ann.old", "A", "L", "ANN@UNI.TEST")

    push(pg, store, school([student()]), adopt_accounts="never")

    mapping = store.get("user", "oec_student_30")
    assert mapping.state == "blocked" and mapping.retry_count == 0
    assert f"Moodle account {uid}" in mapping.last_error


def test_email_in_mixed_case_is_explained_on_postgresql(pg, store):
    """Not found by any look-up by email; Moodle refuses the create; the
    case-insensitive search finds why."""
    uid = pg.add_user("ann.old", "A", "L", "Ann@Uni.Test")
    client = SiteClient(pg)

    result = push(pg, store, school([student()]), client)

    mapping = store.get("user", "oec_student_30")
    assert mapping.state == "blocked" and mapping.retry_count == 0
    assert f"Moodle account {uid} (ann.old, by email)" in mapping.last_error
    assert mapping.extra["candidate"] == uid
    assert result.phases["users"].failed == 0
    # Remembered: the next push finds it without a failed create, and an
    # approval adopts it.
    pg.reset_calls()
    push(pg, store, school([student()]), client)
    assert pg.call_counts["core_user_create_users"] == 0
    store.get("user", "oec_student_30").extra["adopt"] = {"moodle_id": uid}
    push(pg, store, school([student()]), client)
    assert pg.users[uid]["idnumber"] == "oec_student_30"


@pytest.mark.parametrize(("db", "other_case"), [("mariadb", True), ("pgsql", False)])
def test_the_simulator_compares_case_as_each_database_does(db, other_case):
    fake = FakeMoodle(token="simtoken", db=db)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake.install(rsps, base_url=BASE)
        fake.add_user("ann", "A", "L", "Ann@Uni.Test", idnumber="X1")
        client = MoodleClient(BASE, "simtoken")
        assert client.get_users_by_field("email", ["Ann@Uni.Test"])
        assert client.get_users_by_field("idnumber", ["X1"])
        found = client.get_users_by_field("email", ["ann@uni.test"])
        assert bool(found) is other_case
        assert bool(client.get_users_by_field("idnumber", ["x1"])) is other_case


# ---------------------------------------------------------------- languages


@pytest.mark.parametrize(
    ("odoo", "moodle"),
    [
        ("zh_CN", "zh_cn"),
        ("pt_BR", "pt_br"),
        ("fr_FR", "fr"),
        ("es_MX", "es_mx"),
        ("es_ES", "es"),
        ("de_CH", "de"),
        ("sr@latin", "sr_lt"),
        ("en_US", None),
        (None, None),
    ],
)
def test_language_codes_are_moodle_s(odoo, moodle):
    assert accounts.moodle_lang(odoo) == moodle


def test_a_language_moodle_lacks_never_blocks_an_account(fm, store):
    people = [
        student(lang="zh_cn"),
        student(31, "bob@uni.test", "Bob", "Ng", lang="fr"),
    ]

    result = push(fm, store, school(people))

    assert result.phases["users"].failed == 0
    ann = fm.find_user(idnumber="oec_student_30")
    assert ann["lang"] == "en"  # the site's default
    assert fm.find_user(idnumber="oec_student_31")["lang"] == "fr"
    note = store.get("user", "oec_student_30").extra["note"]
    assert note.startswith("language zh_cn is not installed in Moodle")
    assert fm.enrolled_roles(course_id(fm), ann["id"]) == {5}
    fm.reset_calls()
    push(fm, store, school(people))
    assert fm.write_call_count() == 0


def test_a_language_moodle_lacks_on_update(fm, store):
    push(fm, store, school([student()]))
    push(fm, store, school([student(lang="zh_cn")]))

    mapping = store.get("user", "oec_student_30")
    assert mapping.state == "synced"
    assert "zh_cn" in mapping.extra["note"]


# ------------------------------------------------------------ initial import


def test_import_lists_candidates_and_maps_nothing_by_email(fm):
    not_admin(fm)
    uid = a_teacher_account(fm)
    other = fm.add_course("Elsewhere", "ELSE")
    fm.enrol(other, uid, 3)
    store = MemoryStore()
    importer = Importer(SiteClient(fm), store, PushSettings())

    importer.run(school([student()]))

    assert store.get("user", "oec_student_30") is None
    assert fm.write_call_count() == 0
    (candidate,) = importer.candidates
    assert (candidate["key"], candidate["moodle_id"], candidate["match"]) == (
        "oec_student_30",
        uid,
        "email",
    )
    assert "moodle/role:assign in ELSE" in candidate["rights"]
    assert "more than a student" in candidate["problem"]


def test_an_import_keeps_the_login_of_an_adopted_account(fm):
    """The mapping table is lost after an adoption: the rebuilt one keeps the
    account's login and username, and the next push changes neither."""
    uid = a_teacher_account(fm)
    store = MemoryStore()
    push(fm, store, school([student()]))
    store.get("user", "oec_student_30").extra["adopt"] = {"moodle_id": uid}
    push(fm, store, school([student()]))
    rebuilt = MemoryStore()

    Importer(MoodleClient(BASE, "simtoken"), rebuilt, PushSettings()).run(
        school([student()])
    )
    push(fm, rebuilt, school([student()]))

    user = fm.users[uid]
    assert (user["auth"], user["username"]) == ("oauth2", "mrs.lee")
    fm.reset_calls()
    push(fm, rebuilt, school([student()]))
    assert fm.write_call_count() == 0
