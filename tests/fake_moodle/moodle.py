"""The simulated Moodle site: state, request handling, faults and counters."""

import collections
import itertools
import json
import threading
import time
from html import escape
from urllib.parse import urlsplit

from .errors import (
    ACCESS_EXC,
    MISSING_EXC,
    MOODLE_EXC,
    MoodleError,
    TransportFault,
    invalid_parameter,
    unknown_record,
)
from .fn_attendance import AttendanceMixin
from .fn_contents import ContentsMixin
from .fn_core import CoreMixin
from .fn_grades import GradesMixin
from .fn_people import PeopleMixin
from .fn_plugin import PluginMixin
from .limits import (
    DML_WRITE_MESSAGE,
    FLAVOUR_LIMITS,
    check_category,
    check_columns,
    too_long,
)
from .params import parse_form, php_decode, to_plain, validate
from .schema import (
    ATTENDANCE_FUNCTIONS,
    FUNCTIONS,
    LEGACY_FUNCTIONS,
    PARAMS,
)

REST_PATH = "/webservice/rest/server.php"
RESERVED = {
    "wstoken",
    "wsfunction",
    "moodlewsrestformat",
    "moodlewssettingfilter",
    "moodlewssettingfileurl",
    "moodlewssettinglang",
    "moodlewssettingtimezone",
}
FAULT_KINDS = {
    "http500",
    "http502",
    "http503",
    "http429",
    "timeout",
    "drop",
    "html",
    "badjson",
    # the request is not delivered: nothing is recorded or processed
    "refused",
    # Moodle does the work, then the answer never reaches the client
    "lost_reply",
    "slow_reply",
    # the database fails the call (deadlock, lost connection): nothing kept
    "dmlwriteexception",
    "dmlreadexception",
}
# Faults below HTTP: handle() raises TransportFault for them.
TRANSPORT_FAULTS = {"timeout", "drop", "refused", "lost_reply", "slow_reply"}
# Batch functions that run each record in a transaction of its own and turn
# its failure into a warning (the others run the whole call in one).
PER_RECORD_WARNINGS = {
    "core_course_update_courses": "course",
    "core_user_update_users": "user",
}
DML_EXCEPTIONS = {
    "dmlwriteexception": "dml_write_exception",
    "dmlreadexception": "dml_read_exception",
}
DML_MESSAGES = {
    "dmlwriteexception": DML_WRITE_MESSAGE,
    "dmlreadexception": "Error reading from database",
}
# release and version reported by each simulated Moodle branch
FLAVOURS = {
    "4.5": ("4.5.6 (Build: 20250811)", "2024100706"),
    "5.1": ("5.1.3+ (Build: 20260227)", "2025100603.04"),
}
ATTENDANCE_VERSION = "2024020500"
LEGACY_ATTENDANCE_VERSION = "2025010100"

JSON_TYPE = "application/json; charset=utf-8"
HTML_TYPE = "text/html; charset=utf-8"
XML_TYPE = "application/xml; charset=utf-8"
NOT_FOUND_HTML = (
    "<!DOCTYPE html><html><head><title>404 Not Found</title></head>"
    "<body><h1>Not Found</h1><p>The requested URL was not found on this "
    "server.</p></body></html>"
)
ERROR_HTML = (
    "<!DOCTYPE html><html><head><title>{code} Error</title></head><body>"
    "<h1>{code} {reason}</h1><p>The server could not answer the request.</p>"
    "</body></html>"
)
MOODLE_ERROR_HTML = (
    "<!DOCTYPE html><html><head><title>Error | Moodle</title></head><body>"
    '<div class="errorbox"><p class="errormessage">Error reading from database'
    "</p></div></body></html>"
)
_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    429: "Too Many Requests",
}


class FakeMoodle(
    PluginMixin, CoreMixin, PeopleMixin, GradesMixin, AttendanceMixin, ContentsMixin
):
    """In-memory Moodle 4.5 (or 5.1) answering REST web-service calls.

    :param token: the only accepted ``wstoken``
    :param release: ``release`` reported by ``core_webservice_get_site_info``
        (default: the flavour's)
    :param version: site ``version`` (string; default: the flavour's)
    :param max_input_vars: PHP limit on form fields; the rest is dropped silently
    :param flavour: ``"4.5"`` or ``"5.1"``; 5.1 answers every missing record
        (unknown ``wsfunction`` included) with ``invalidrecordunknown`` and
        reports release ``5.1.3+ (Build: 20260227)``, version ``2025100603.04``
    :param db: the site's database: ``"mariadb"`` (the default) compares
        text without letter case; ``"pgsql"`` compares case in look-ups (a user
        by email or idnumber), as Moodle on PostgreSQL does
    """

    def __init__(
        self,
        token="simtoken",
        release=None,
        version=None,
        max_input_vars=5000,
        flavour="4.5",
        db="mariadb",
    ):
        if flavour not in FLAVOURS:
            raise ValueError(f"unknown flavour {flavour!r}")
        if db not in ("mariadb", "pgsql"):
            raise ValueError(f"unknown db {db!r}")
        self.token = token
        self.flavour = flavour
        self.db = db
        self.release = release or FLAVOURS[flavour][0]
        self.version = version or FLAVOURS[flavour][1]
        self.max_input_vars = max_input_vars
        self.base_url = "https://moodle.test"
        self.sitename = "Fake Moodle"
        # behaviour switches
        self.latency = 0.0
        self.timeout_sleep = 10.0
        self.rest_enabled = True
        self.debug = False
        self.welcome_message_fails = False
        self.allow_accounts_same_email = False
        self.password_min_length = 8
        self.assignable_roles = {3, 4, 5}
        self.course_contact_roles = {3}
        # 5.1 only: every new course gets a hidden question bank module
        self.course_qbank = False
        self.faults = []
        self.fault_counts = collections.Counter()
        self.refused_until = None
        self.rejections = []
        # Moodle's column lengths (limits.FLAVOUR_LIMITS) checked on writes
        self.column_limits = True
        self.limits = FLAVOUR_LIMITS[flavour]
        self.registered_functions = set(FUNCTIONS)
        self.service_functions = set(FUNCTIONS) - LEGACY_FUNCTIONS
        self.clock = time.time
        # counters
        self.calls = []
        self.call_counts = collections.Counter()
        self._lock = threading.RLock()
        self._reset_state()

    # ------------------------------------------------------------------ state
    def _reset_state(self):
        self._ids = collections.defaultdict(lambda: itertools.count(1))
        self._ids["category"] = itertools.count(2)
        self._ids["course"] = itertools.count(2)
        self._ids["user"] = itertools.count(3)
        self._ids["cm"] = itertools.count(101)
        self._ids["att_status"] = itertools.count(5)  # 1-4: plugin defaults
        self._ids["context"] = itertools.count(30)
        now = self.now()
        self.categories = {
            1: {
                "id": 1,
                "name": "Category 1",
                "idnumber": "",
                "description": "",
                "descriptionformat": 1,
                "parent": 0,
                "visible": 1,
                "visibleold": 1,
                "timemodified": now,
                "theme": "",
            }
        }
        self.courses = {}
        self.users = {}
        self.groups = {}
        self.group_memberships = {}
        self.enrol_instances = {}
        self.enrolments = {}
        self.grade_categories = {}
        self.grade_items = {}
        self.grades = {}
        self.course_sections = {}
        self.course_modules = {}
        self.assignments = {}
        self.assign_grades = {}
        self.quizzes = {}
        self.quiz_attempts = []
        self.completion_criteria = {}
        self.course_completions = {}
        self.attendances = {}
        self.attendance_statuses = {}
        self.attendance_sessions = {}
        self.attendance_logs = {}
        self.courses[1] = self._course_defaults(
            1, {"fullname": "Fake Moodle", "shortname": "fake", "categoryid": 0}
        )
        self.courses[1]["format"] = "site"
        self._add_sections(1, 1)
        self._add_user_record(1, "guest", "Guest user", " ", "root@localhost")
        self._add_user_record(2, "admin", "Admin", "User", "admin@example.com")
        self.site_admins = {2}
        self.ws_userid = 2

    def _add_user_record(self, userid, username, first, last, email):
        self.users[userid] = self._user_defaults(
            userid,
            {
                "username": username,
                "firstname": first,
                "lastname": last,
                "email": email,
                "auth": "manual",
                "lang": "en",
                "idnumber": "",
            },
        )

    def _next(self, kind):
        return next(self._ids[kind])

    def now(self):
        return int(self.clock())

    # --------------------------------------------------------------- counters
    def write_call_count(self):
        """Number of recorded calls to functions that modify state."""
        return sum(
            count
            for name, count in self.call_counts.items()
            if FUNCTIONS.get(name) == "write"
        )

    def reset_calls(self):
        self.calls.clear()
        self.call_counts.clear()

    # ----------------------------------------------------------------- faults
    def inject(self, kind, times=1, function=None, after=0):
        """Queue a transport fault for the next ``times`` matching requests.

        :param after: let this many matching requests through first (e.g.
            ``after=1``: the second call of a batch fails)
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self.faults.append(
                {"kind": kind, "times": times, "function": function, "after": after}
            )

    def _take_fault(self, wsfunction):
        for fault in self.faults:
            if fault["function"] and fault["function"] != wsfunction:
                continue
            if fault.get("after"):
                fault["after"] -= 1
                return None
            fault["times"] -= 1
            if fault["times"] <= 0:
                self.faults.remove(fault)
            return fault["kind"]
        return None

    def refuse_until(self, when):
        """Refuse every connection until :attr:`clock` reaches ``when``
        (``None``: stop refusing), as a stopped web server does."""
        with self._lock:
            self.refused_until = when

    def outage(self, seconds):
        """Refuse every connection for ``seconds`` of :attr:`clock` from now."""
        self.refuse_until(self.clock() + seconds)

    def refusing(self):
        """Whether an outage is on at :attr:`clock`'s time."""
        until = self.refused_until
        return until is not None and self.clock() < until

    def reject_records(
        self,
        function=None,
        predicate=None,
        errorcode="dmlwriteexception",
        message=None,
        times=None,
        debuginfo="Simulated database error",
    ):
        """Have the database refuse the records ``predicate(record)`` picks.

        A call to ``function`` (any write function when ``None``) whose batch
        (its list of records) holds a matching record fails as a whole with
        ``{"exception": "dml_write_exception", "errorcode": errorcode,
        "message": "Error writing to database"}``: Moodle runs the call in one
        transaction, so nothing of it is kept. The functions that update each
        record in a transaction of its own (``core_course_update_courses``,
        ``core_user_update_users``) answer a warning for the matching records
        instead and update the others, as Moodle does.

        :param predicate: ``predicate(record) -> bool`` (``None``: every record)
        :param times: calls to fail before the rule expires (``None``: never)
        :return: the rule (a dict; ``fm.rejections.remove(rule)`` lifts it)
        """
        if message is None:
            message = DML_MESSAGES.get(errorcode, DML_WRITE_MESSAGE)
        rule = {
            "function": function,
            "predicate": predicate or (lambda record: True),
            "errorcode": errorcode,
            "message": message,
            "times": times,
            "debuginfo": debuginfo,
        }
        with self._lock:
            self.rejections.append(rule)
        return rule

    def _rejection(self, name, records):
        """The rule that refuses this batch, and the records it picks."""
        for rule in self.rejections:
            if rule["function"] and rule["function"] != name:
                continue
            if not rule["function"] and FUNCTIONS.get(name) != "write":
                continue
            picked = [i for i, r in enumerate(records) if rule["predicate"](r)]
            if not picked:
                continue
            if rule["times"] is not None:
                rule["times"] -= 1
                if rule["times"] <= 0:
                    self.rejections.remove(rule)
            return rule, picked
        return None, []

    def _call_rejecting(self, name, method, validated):
        """Run ``method`` under the :meth:`reject_records` rules."""
        key = next(
            (
                k
                for k, v in validated.items()
                if isinstance(v, list) and v and isinstance(v[0], dict)
            ),
            None,
        )
        if key is None:
            return method(**validated)
        records = validated[key]
        rule, picked = self._rejection(name, records)
        if rule is None:
            return method(**validated)
        error = MoodleError(
            DML_EXCEPTIONS.get(rule["errorcode"], MOODLE_EXC),
            rule["errorcode"],
            rule["message"],
            rule["debuginfo"],
        )
        self.fault_counts["rejected"] += 1
        item = PER_RECORD_WARNINGS.get(name)
        if item is None:
            raise error
        rest = [r for i, r in enumerate(records) if i not in picked]
        result = method(**{**validated, key: rest}) if rest else {"warnings": []}
        warnings = [
            {
                "item": item,
                "itemid": records[i].get("id"),
                "warningcode": error.errorcode,
                "message": error.message,
            }
            for i in picked
        ]
        result = dict(result or {})
        result["warnings"] = warnings + list(result.get("warnings") or [])
        return result

    # ---------------------------------------------------------- column limits
    def _check_columns(self, table, record, statement="INSERT INTO"):
        """Moodle's database refusing a too-long value (``dmlwriteexception``)."""
        if self.column_limits:
            check_columns(table, record, statement, self.limits)

    def _check_category_columns(self, record):
        if self.column_limits:
            check_category(record)

    def _column_warning(self, table, record):
        """The warning of a per-record update (``core_user_update_users``)
        whose value is too long for its column, or None."""
        column = too_long(table, record, self.limits) if self.column_limits else None
        if column is None:
            return None
        return {
            "item": table,
            "itemid": record["id"],
            "warningcode": "dmlwriteexception",
            "message": DML_WRITE_MESSAGE,
        }

    # -------------------------------------------------------- service control
    def remove_function(self, name):
        self.service_functions.discard(name)

    def add_function(self, name):
        self.service_functions.add(name)

    def enable_legacy_attendance(self, only=False):
        """Add the ``mod_wsattendance_*`` names to the service.

        :param only: also remove the ``mod_attendance_*`` functions
        """
        self.service_functions |= LEGACY_FUNCTIONS
        if only:
            self.service_functions -= ATTENDANCE_FUNCTIONS - LEGACY_FUNCTIONS

    def disable_attendance(self, uninstall=False):
        """Remove every attendance function from the service.

        :param uninstall: also unregister them (``invalidrecord`` instead of
            ``accessexception``), like a site without the plugin
        """
        self.service_functions -= ATTENDANCE_FUNCTIONS
        if uninstall:
            self.registered_functions -= ATTENDANCE_FUNCTIONS

    @property
    def moodle51(self):
        return self.flavour == "5.1"

    def _flavoured(self, err):
        """``err`` as this site's Moodle version words it.

        5.1 hides the table of a missing record unless debugging is on.
        """
        return unknown_record(err) if self.moodle51 and not self.debug else err

    def function_version(self, name):
        if name.startswith("mod_attendance_"):
            return ATTENDANCE_VERSION
        if name.startswith("mod_wsattendance_"):
            return LEGACY_ATTENDANCE_VERSION
        return self.version

    # --------------------------------------------------------------- requests
    def rest_path(self):
        """Path of the REST endpoint under :attr:`base_url`."""
        return urlsplit(self.base_url).path.rstrip("/") + REST_PATH

    def handle(self, body, path=None):
        """Answer one request like Moodle's ``webservice/rest/server.php``.

        :param body: the ``x-www-form-urlencoded`` body (bytes or str)
        :param path: request path, optionally with a query string (default:
            :meth:`rest_path`); any other path is answered 404 (HTML)
        :return: ``(status, headers, body_bytes)``
        :raise TransportFault: for the ``timeout`` and ``drop`` faults; a
            timeout carries ``resume()`` that finishes the request
        """
        if self.latency:
            time.sleep(self.latency)
        if path is None:
            path = self.rest_path()
        path_only, _sep, query = path.partition("?")
        if path_only.rstrip("/") != self.rest_path():
            return 404, {"Content-Type": HTML_TYPE}, NOT_FOUND_HTML.encode()
        pairs = parse_form(query, self.max_input_vars)
        pairs += parse_form(body, self.max_input_vars)
        fields = php_decode(pairs)
        wsfunction = fields.get("wsfunction")
        if not isinstance(wsfunction, str):
            wsfunction = None
        with self._lock:
            fault = "refused" if self.refusing() else self._take_fault(wsfunction)
            if fault:
                self.fault_counts[fault] += 1
            if wsfunction and fault != "refused":
                params = {k: v for k, v in fields.items() if k not in RESERVED}
                self.calls.append((wsfunction, to_plain(params)))
                self.call_counts[wsfunction] += 1
        if fault in TRANSPORT_FAULTS:
            exc = TransportFault(fault)
            if fault in {"lost_reply", "slow_reply"}:
                # Moodle does the work; only its answer is lost (or late).
                answer = self._answer(fields)
                exc.resume = lambda: answer
            else:
                exc.resume = lambda: self._answer(fields)
            raise exc
        if fault in DML_EXCEPTIONS:
            return self._db_fault(fault, fields, wsfunction)
        if fault:
            return self._fault_response(fault)
        return self._answer(fields)

    def _db_fault(self, kind, fields, name):
        """The database fails the call: Moodle's error, nothing kept; the
        functions with a transaction per record warn for each record."""
        err = MoodleError(
            DML_EXCEPTIONS[kind], kind, DML_MESSAGES[kind], "Simulated database failure"
        )
        as_json = fields.get("moodlewsrestformat") == "json"
        item = PER_RECORD_WARNINGS.get(name)
        if item is None or not as_json:
            return self._error_response(err, as_json)
        params = {k: v for k, v in fields.items() if k not in RESERVED}
        try:
            validated = validate(PARAMS[name], params, "params")
        except MoodleError as bad:
            return self._error_response(bad, as_json)
        records = next(v for v in validated.values() if isinstance(v, list))
        warnings = [
            {
                "item": item,
                "itemid": record.get("id"),
                "warningcode": kind,
                "message": err.message,
            }
            for record in records
        ]
        body = json.dumps({"warnings": warnings}).encode()
        return 200, {"Content-Type": JSON_TYPE}, body

    def _fault_response(self, kind):
        if kind == "html":
            return 200, {"Content-Type": HTML_TYPE}, MOODLE_ERROR_HTML.encode()
        if kind == "badjson":
            return 200, {"Content-Type": JSON_TYPE}, b'{"truncated": '
        code = int(kind[4:])
        headers = {"Content-Type": HTML_TYPE}
        if code == 429:
            headers["Retry-After"] = "2"
        body = ERROR_HTML.format(code=code, reason=_REASONS[code])
        return code, headers, body.encode()

    def _answer(self, fields):
        if not self.rest_enabled:
            return 403, {}, b""
        as_json = fields.get("moodlewsrestformat") == "json"
        with self._lock:
            try:
                result = self._execute(fields)
            except MoodleError as err:
                return self._error_response(self._flavoured(err), as_json)
        if as_json:
            return 200, {"Content-Type": JSON_TYPE}, json.dumps(result).encode()
        xml = '<?xml version="1.0" encoding="UTF-8" ?>\n<RESPONSE/>\n'
        return 200, {"Content-Type": XML_TYPE}, xml.encode()

    def _error_response(self, err, as_json):
        if as_json:
            body = json.dumps(err.as_dict(self.debug))
            return 200, {"Content-Type": JSON_TYPE}, body.encode()
        xml = (
            '<?xml version="1.0" encoding="UTF-8" ?>\n'
            f'<EXCEPTION class="{escape(err.exception)}">\n'
            f"<ERRORCODE>{escape(err.errorcode)}</ERRORCODE>\n"
            f"<MESSAGE>{escape(err.message)}</MESSAGE>\n"
        )
        if self.debug and err.debuginfo:
            xml += f"<DEBUGINFO>{escape(err.debuginfo)}</DEBUGINFO>\n"
        xml += "</EXCEPTION>\n"
        return 200, {"Content-Type": XML_TYPE}, xml.encode()

    def _execute(self, fields):
        token = fields.get("wstoken")
        if not isinstance(token, str) or token != self.token:
            raise MoodleError(
                "moodle_exception", "invalidtoken", "Invalid token - token not found"
            )
        name = fields.get("wsfunction")
        if not isinstance(name, str) or not name:
            raise invalid_parameter("Missing function name")
        if name not in self.registered_functions:
            raise MoodleError(
                MISSING_EXC,
                "invalidrecord",
                "Can't find data record in database table external_functions.",
            )
        if name not in self.service_functions:
            raise MoodleError(
                ACCESS_EXC,
                "accessexception",
                "Access control exception",
                f"Access to the function {name}() is not allowed.",
            )
        params = {k: v for k, v in fields.items() if k not in RESERVED}
        validated = validate(PARAMS[name], params, "params")
        method = getattr(
            self, "ws_" + name.replace("mod_wsattendance_", "mod_attendance_")
        )
        if self.rejections:
            return self._call_rejecting(name, method, validated)
        return method(**validated)

    # -------------------------------------------------------------- transports
    def install(self, rsps, base_url="https://moodle.test"):
        """Answer requests to ``base_url`` made through ``responses``."""
        from .server import install

        return install(self, rsps, base_url)

    def serve(self, host="127.0.0.1", port=0):
        """Serve over HTTP in a daemon thread; return ``(server, base_url)``."""
        from .server import serve

        return serve(self, host, port)
