"""The ``moodle`` fixture: one client, on the simulator and/or a real Moodle.

Every contract test takes ``moodle`` and runs once per site:

* ``sim``: a fresh :class:`~tests.fake_moodle.FakeMoodle` answering in-process
  through ``responses`` at ``https://moodle.test`` (token ``simtoken``);
* ``real``: the Moodle at ``MOODLE_URL`` with the token in ``MOODLE_TOKEN``
  (skipped when either is unset).

On a real site the suite assumes nothing about the site's content: it creates
its own category, courses, users and groups, names them with a prefix unique to
the run (``ctest`` + 8 hex digits), and deletes them again at teardown.

The real token is kept out of every test id, log line, assertion message and
report: only the client holds it, and :func:`pytest_runtest_makereport` scrubs
it from anything pytest would print.
"""

import itertools
import logging
import os
import secrets

import pytest
import responses

from openeducat_moodle.moodle import MoodleClient, MoodleError

from ..fake_moodle import FakeMoodle

_logger = logging.getLogger(__name__)

SIM_BASE = "https://moodle.test"
SIM_TOKEN = "simtoken"
WRONG_TOKEN = "contract-test-wrong-token"
REAL_SKIP = "MOODLE_URL and MOODLE_TOKEN not set"
# A password that passes Moodle's default password policy.
PASSWORD = "Contract-Test-1"

# Unique per run; 8 hex digits, so it can never be mistaken for a token.
PREFIX = "ctest" + secrets.token_hex(4)
_SEQUENCE = itertools.count(1)
# Role ids found on each site, shared by all the tests of the run.
_ROLE_CACHE = {}


def _real_configured():
    return bool(os.environ.get("MOODLE_URL") and os.environ.get("MOODLE_TOKEN"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "sim_only(reason): needs the simulator's powers (fault injection, site "
        "settings, data web services cannot create); skipped on a real Moodle",
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Scrub the real token from whatever pytest reports (tracebacks, logs)."""
    outcome = yield
    token = os.environ.get("MOODLE_TOKEN")
    if not token or not _real_configured():
        return
    report = outcome.get_result()
    if report.longrepr is not None and token in str(report.longrepr):
        report.longrepr = str(report.longrepr).replace(token, "***")
    report.sections = [
        (title, text.replace(token, "***")) for title, text in report.sections
    ]


class Cleanup:
    """What a test created, deleted again at teardown (errors logged, ignored)."""

    def __init__(self):
        self.groups = []
        self.courses = []
        self.categories = []
        self.users = []

    def run(self, client):
        """Delete everything registered, newest first (children before parents).

        Each delete function runs in one transaction, so after a failure the
        ids are tried one by one: one record already gone does not keep the
        others.
        """

        def delete_categories(ids):
            result = client.delete_categories([{"id": i, "recursive": 1} for i in ids])
            result.raise_if_aborted()
            for outcome in result.failed:
                _warn("category", [outcome.record["id"]], outcome.error)

        steps = [
            ("groups", self.groups, client.delete_groups),
            ("courses", self.courses, client.delete_courses),
            ("categories", self.categories, delete_categories),
            ("users", self.users, client.delete_users),
        ]
        for kind, ids, delete in steps:
            ids = list(reversed(ids))
            if not ids or _attempt(delete, ids) is None:
                continue
            for one in ids:
                err = _attempt(delete, [one])
                if err is not None:
                    _warn(kind, [one], err)
        self.__init__()


def _attempt(delete, ids):
    """Run one deletion; return the error instead of raising it."""
    try:
        delete(ids)
    except MoodleError as err:  # cleanup must never fail a test
        return err
    return None


def _warn(kind, ids, err):
    _logger.warning("cleanup: cannot delete %s %s: %s", kind, ids, err)


class Moodle:
    """One test's view of a site: the client plus helpers that clean up.

    :ivar MoodleClient client: the client under test
    :ivar bool real: a real Moodle (``False``: the simulator)
    :ivar FakeMoodle fm: the simulator (``None`` on a real site)
    :ivar str prefix: the run's unique prefix, part of every created name
    """

    def __init__(self, client, real, fm=None):
        self.client = client
        self.real = real
        self.fm = fm
        self.prefix = PREFIX
        self.cleanup = Cleanup()
        self.base_url = client.base_url

    def __repr__(self):
        return f"<Moodle {'real' if self.real else 'sim'} {self.base_url}>"

    # ------------------------------------------------------------- clients
    def make_client(self, token=None, **options):
        """Another client for the same site (the same token unless given one).

        :param str token: e.g. a wrong token; ``None`` keeps the site's token
        """
        if token is None:
            token = os.environ["MOODLE_TOKEN"] if self.real else SIM_TOKEN
        return MoodleClient(options.pop("base_url", self.base_url), token, **options)

    # --------------------------------------------------------------- names
    def name(self, tag):
        """A unique, lowercase name such as ``ctest1a2b3c4d-007-crs``."""
        return f"{self.prefix}-{next(_SEQUENCE):03d}-{tag}"

    # ------------------------------------------------------- record makers
    def track(self, kind, result):
        """Register the created records of a batch result for cleanup."""
        ids = getattr(self.cleanup, kind)
        for outcome in result.succeeded:
            value = outcome.value
            if isinstance(value, dict) and value.get("id"):
                ids.append(value["id"])
        return result

    def category_record(self, **extra):
        name = self.name("cat")
        return {"name": name, "idnumber": name, "parent": 0, **extra}

    def course_record(self, categoryid, **extra):
        name = self.name("crs")
        return {
            "fullname": f"Contract {name}",
            "shortname": name,
            "idnumber": name,
            "categoryid": categoryid,
            **extra,
        }

    def user_record(self, **extra):
        name = self.name("usr")
        return {
            "username": name,
            "password": PASSWORD,
            "firstname": "Contract",
            "lastname": name,
            "email": f"{name}@example.com",
            "idnumber": name,
            **extra,
        }

    def group_record(self, courseid, **extra):
        name = self.name("grp")
        return {
            "courseid": courseid,
            "name": name,
            "idnumber": name,
            "description": "",
            **extra,
        }

    def _one(self, kind, result):
        self.track(kind, result)
        outcome = result.outcomes[0]
        assert outcome.ok, f"cannot create a {kind[:-1]}: {outcome.error}"
        return {**outcome.record, **outcome.value}

    def new_category(self, **extra):
        record = self.category_record(**extra)
        return self._one("categories", self.client.create_categories([record]))

    def new_course(self, categoryid=None, **extra):
        """A course in a new category of its own (unless one is given)."""
        if categoryid is None:
            categoryid = self.new_category()["id"]
        record = self.course_record(categoryid, **extra)
        return self._one("courses", self.client.create_courses([record]))

    def new_user(self, **extra):
        return self._one("users", self.client.create_users([self.user_record(**extra)]))

    def new_group(self, courseid, **extra):
        record = self.group_record(courseid, **extra)
        return self._one("groups", self.client.create_groups([record]))

    # --------------------------------------------------------- enrolments
    def enrolled(self, courseid):
        """``{userid: set(role shortnames)}`` of a course."""
        users = self.client.get_enrolled_users(courseid, userfields="id,username,roles")
        return {u["id"]: {r["shortname"] for r in u.get("roles") or []} for u in users}

    def role_id(self, shortname):
        """The id of a role on this site, checked by its shortname.

        Moodle's defaults are tried first (5 student, 3 editingteacher,
        4 teacher); if the site says otherwise, ids 1-40 are tried. No core web
        service lists roles, so each guess is an enrolment read back through
        ``core_enrol_get_enrolled_users``.
        """
        key = (self.base_url, shortname)
        if key not in _ROLE_CACHE:
            _ROLE_CACHE[key] = self._find_role(shortname)
        roleid = _ROLE_CACHE[key]
        if roleid is None:
            pytest.skip(f"no role {shortname!r} that the token can assign")
        return roleid

    def _find_role(self, shortname):
        default = {"student": 5, "editingteacher": 3, "teacher": 4}.get(shortname)
        candidates = [default] if default else []
        candidates += [i for i in range(1, 41) if i != default]
        # the probe's records are removed at once, apart from the test's own
        own, self.cleanup = self.cleanup, Cleanup()
        try:
            course = self.new_course()
            user = self.new_user()
            for roleid in candidates:
                result = self.client.enrol_users(
                    [{"roleid": roleid, "userid": user["id"], "courseid": course["id"]}]
                )
                result.raise_if_aborted()
                if not result.outcomes[0].ok:
                    continue
                roles = self.enrolled(course["id"]).get(user["id"], set())
                self.client.unenrol_users(
                    [{"userid": user["id"], "courseid": course["id"]}]
                )
                if roles == {shortname}:
                    return roleid
            return None
        finally:
            self.cleanup.run(self.client)
            self.cleanup = own

    def enrol(self, courseid, userid, shortname="student"):
        result = self.client.enrol_users(
            [
                {
                    "roleid": self.role_id(shortname),
                    "userid": userid,
                    "courseid": courseid,
                }
            ]
        )
        assert result.outcomes[0].ok, f"cannot enrol: {result.outcomes[0].error}"
        return result


def _sim(request):
    fm = FakeMoodle(token=SIM_TOKEN)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fm.install(rsps, base_url=SIM_BASE)
        site = Moodle(MoodleClient(SIM_BASE, SIM_TOKEN), real=False, fm=fm)
        yield site
        site.cleanup.run(site.client)


def _real(request):
    if not _real_configured():
        pytest.skip(REAL_SKIP)
    marker = request.node.get_closest_marker("sim_only")
    if marker:
        reason = marker.args[0] if marker.args else "needs the simulator"
        pytest.skip(f"simulator only: {reason}")
    site = Moodle(
        MoodleClient(os.environ["MOODLE_URL"], os.environ["MOODLE_TOKEN"]),
        real=True,
    )
    yield site
    site.cleanup.run(site.client)


@pytest.fixture(params=["sim", "real"])
def moodle(request):
    """The site under test; see the module docstring."""
    if request.param == "sim":
        yield from _sim(request)
    else:
        yield from _real(request)
