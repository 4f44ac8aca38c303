"""The Moodle web-services client: transport, error mapping and batching.

One :class:`MoodleClient` per Moodle site and token, holding one
``requests.Session``. It knows nothing of Odoo: the sync core and the Odoo
services hand it plain dicts and get plain dicts back.
"""

import collections
import dataclasses
import email.utils
import json
import logging
import os
import re
import time

import requests

from .capabilities import Capabilities, SiteInfo
from .catalogue import FUNCTIONS, PLUGIN_ATTENDANCE_LOGS, PLUGIN_COMPLETIONS
from .errors import (
    MoodleAccessError,
    MoodleError,
    MoodleRecordError,
    MoodleTransientError,
    classify,
)
from .params import count_fields, encode

_logger = logging.getLogger(__name__)

ENDPOINT = "/webservice/rest/server.php"
DEFAULT_CONNECT_TIMEOUT = 10
DEFAULT_READ_TIMEOUT = 120
DEFAULT_BATCH_SIZE = 100
# Moodle requires max_input_vars >= 5000 and PHP silently drops what is beyond
# it; staying well below leaves room for sites that run with exactly 5000.
DEFAULT_MAX_FIELDS = 2000
# wstoken, wsfunction and moodlewsrestformat
BASE_FIELDS = 3
WELCOME_MESSAGE_FAILED = "Message was not sent."
_FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}
# HTTP answers that say "later" (timeout, too early, rate limit), those that
# say "too large" (the request is split), and the real refusals, which pause
# the instance until a person acts. 5xx are transient; 3xx, 403 with an empty
# body and 404 have their own explanations below.
TRANSIENT_STATUSES = frozenset({408, 425, 429})
TOO_LARGE_STATUSES = frozenset({413, 414, 431})
ACCESS_STATUSES = frozenset({401, 403, 405, 407})

OK = "ok"
FAILED = "failed"
PENDING = "pending"

# Course ids per core_course_get_courses_by_field "ids" call.
COURSE_IDS_PER_CALL = 500
# The companion plugin's paged reads: rows per page (its limit is 5000) and
# ids per list (its limit).
PLUGIN_PERPAGE = 5000
PLUGIN_MAX_IDS = 1000


@dataclasses.dataclass
class RecordOutcome:
    """What happened to one record of a batch write.

    :ivar int index: position of the record in the list given to the client
    :ivar dict record: the record as sent
    :ivar str status: ``ok``; ``failed`` (Moodle rejected this record, see
        ``error``); ``pending`` (never sent, or its answer was lost: the whole
        call stopped on a transient or access error, see
        :attr:`BatchResult.aborted`)
    :ivar value: Moodle's answer for this record (e.g. ``{"id": 7, ...}``)
    :ivar MoodleError error: why it failed
    :ivar str note: a remark on a success (e.g. welcome message not sent)
    """

    index: int
    record: dict
    status: str = PENDING
    value: object = None
    error: MoodleError | None = None
    note: str | None = None

    @property
    def ok(self):
        return self.status == OK


@dataclasses.dataclass
class BatchResult:
    """The per-record result of :meth:`MoodleClient.call_batch`.

    No record is silently dropped: every record given ends ``ok``, ``failed``
    or ``pending``. ``aborted`` holds the transient or access error that stopped
    the call; the records left ``pending`` were not (or not knowingly) written.
    """

    wsfunction: str
    outcomes: list
    aborted: MoodleError | None = None
    calls: int = 0

    @property
    def succeeded(self):
        return [o for o in self.outcomes if o.status == OK]

    @property
    def failed(self):
        return [o for o in self.outcomes if o.status == FAILED]

    @property
    def pending(self):
        return [o for o in self.outcomes if o.status == PENDING]

    def raise_if_aborted(self):
        """Raise the error that stopped the batch, if any."""
        if self.aborted is not None:
            raise self.aborted


def _retry_after(value):
    """Seconds to wait from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().replace(".", "", 1).isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


_XML_ERRORCODE = re.compile(r"<ERRORCODE>(.*?)</ERRORCODE>", re.DOTALL)
_XML_MESSAGE = re.compile(r"<MESSAGE>(.*?)</MESSAGE>", re.DOTALL)


class MoodleClient:
    """A client for one Moodle site's REST web services.

    :param str base_url: Moodle's ``wwwroot``, e.g. ``https://lms.example.edu``
    :param str token: the web-service token; kept private, never logged,
        never part of an error or a ``repr``
    :param float connect_timeout: seconds to wait for the TCP/TLS connection
    :param float read_timeout: seconds to wait for Moodle's answer
    :param bool verify: verify the TLS certificate (on unless turned off)
    :param int batch_size: most records per write call
    :param int max_fields: most form fields per request (PHP's
        ``max_input_vars`` silently drops the rest)
    :param requests.Session session: a session to use (tests, pooling)
    """

    def __init__(
        self,
        base_url,
        token,
        *,
        connect_timeout=DEFAULT_CONNECT_TIMEOUT,
        read_timeout=DEFAULT_READ_TIMEOUT,
        verify=True,
        batch_size=DEFAULT_BATCH_SIZE,
        max_fields=DEFAULT_MAX_FIELDS,
        session=None,
    ):
        if not base_url:
            raise ValueError("A Moodle base URL is required.")
        if not token:
            raise ValueError("A Moodle web-service token is required.")
        self.base_url = base_url.rstrip("/")
        self.__token = token
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.verify = verify
        self.batch_size = max(1, int(batch_size))
        self.max_fields = max(BASE_FIELDS + 1, int(max_fields))
        self.session = session or self._session()
        self.call_counts = collections.Counter()
        self.aliases = {}
        # The functions the token may call, once capabilities() has run.
        self.site_functions = None

    def _session(self):
        """A session that reads the environment's proxy and CA settings once.

        ``requests`` looks them up again for every request (``trust_env``),
        which costs more than encoding the request on a push of thousands of
        calls; the values are the same for the client's lifetime (one job).
        """
        session = requests.Session()
        session.proxies.update(requests.utils.get_environ_proxies(self.url))
        if self.verify is True:
            self.verify = (
                os.environ.get("REQUESTS_CA_BUNDLE")
                or os.environ.get("CURL_CA_BUNDLE")
                or True
            )
        session.trust_env = False
        return session

    def __repr__(self):
        return f"<MoodleClient {self.base_url} token=***>"

    @property
    def url(self):
        return self.base_url + ENDPOINT

    def _scrub(self, text):
        """Remove the token from a text that came from elsewhere."""
        text = str(text)
        return text.replace(self.__token, "***") if self.__token else text

    # ------------------------------------------------------------------
    # Transport
    # ------------------------------------------------------------------

    def call(self, wsfunction, **params):
        """Call one web-service function and return its decoded answer.

        :param str wsfunction: the function (catalogue name; a legacy alias is
            used when the site only has that)
        :param params: the function's parameters, nested as Moodle describes
        :return: the decoded JSON (``None`` for functions that return nothing)
        :raise MoodleTransientError: network failure, timeout, HTTP 5xx/429,
            or a body that is not the expected JSON
        :raise MoodleAccessError: bad token, function not in the service,
            REST disabled, wrong base URL
        :raise MoodleRecordError: Moodle rejected the parameters or a record
        """
        name = self.aliases.get(wsfunction, wsfunction)
        body, fields = encode(self.__token, name, params)
        self.call_counts[name] += 1
        return self._exchange(name, body, fields)

    def _exchange(self, name, body, fields):
        """Send one encoded request and decode the answer (the round trip)."""
        started = time.monotonic()
        try:
            response = self.session.post(
                self.url,
                data=body.encode("ascii"),
                headers=_FORM_HEADERS,
                timeout=(self.connect_timeout, self.read_timeout),
                verify=self.verify,
                allow_redirects=False,
            )
        except requests.Timeout:
            raise MoodleTransientError(
                f"Moodle did not answer within {self.read_timeout} s",
                errorcode="timeout",
                wsfunction=name,
            ) from None
        except requests.ConnectionError as exc:
            raise MoodleTransientError(
                f"Cannot reach Moodle at {self.base_url}: "
                f"{self._scrub(type(exc).__name__)}",
                errorcode="connectionerror",
                wsfunction=name,
            ) from None
        except requests.RequestException as exc:
            raise MoodleTransientError(
                f"Request to Moodle failed: {self._scrub(exc)}",
                errorcode="requesterror",
                wsfunction=name,
            ) from None
        finally:
            _logger.debug(
                "moodle %s %.3fs (%d fields)",
                name,
                time.monotonic() - started,
                fields,
            )
        return self._parse(response, name)

    def _parse(self, response, name):
        status = response.status_code
        if status in TRANSIENT_STATUSES:
            raise MoodleTransientError(
                "Moodle is rate limiting the connector (HTTP 429)"
                if status == 429
                else f"Moodle (or a proxy before it) answered HTTP {status}",
                errorcode=f"http{status}",
                wsfunction=name,
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        if status in TOO_LARGE_STATUSES:
            # The request is too large for the server or a proxy: a batch is
            # split (as for a record Moodle rejects) until it fits.
            raise MoodleRecordError(
                f"The request is too large for the server (HTTP {status})",
                errorcode=f"http{status}",
                wsfunction=name,
            )
        if status >= 500:
            raise MoodleTransientError(
                f"Moodle answered HTTP {status}",
                errorcode=f"http{status}",
                wsfunction=name,
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        if 300 <= status < 400:
            location = self._scrub(response.headers.get("Location", ""))
            raise MoodleAccessError(
                f"Moodle redirected the request to {location!r}",
                errorcode="redirected",
                wsfunction=name,
            )
        text = response.text.strip() if response.content else ""
        if status == 403 and not text:
            raise MoodleAccessError(
                "Moodle refused the REST request (HTTP 403 with an empty body)",
                errorcode="restprotocoldisabled",
                wsfunction=name,
            )
        if status == 404:
            raise MoodleAccessError(
                f"{self.url} does not exist (HTTP 404)",
                errorcode="endpointnotfound",
                wsfunction=name,
            )
        if status in ACCESS_STATUSES:
            raise MoodleAccessError(
                f"Moodle refused the connector (HTTP {status}): check the token, "
                "the base URL and any proxy's authentication",
                errorcode=f"http{status}",
                wsfunction=name,
            )
        if status >= 400:
            # Not an answer about access: pausing the instance until a person
            # acts would be wrong; it backs off and tries again.
            raise MoodleTransientError(
                f"Moodle (or a proxy before it) answered HTTP {status}",
                errorcode=f"http{status}",
                wsfunction=name,
            )
        if text == "null" or (not text and status == 200):
            return None
        try:
            data = json.loads(text)
        except ValueError:
            raise self._not_json(text, name) from None
        if isinstance(data, dict) and ("exception" in data or "errorcode" in data):
            error = classify(
                {
                    k: self._scrub(v) if isinstance(v, str) else v
                    for k, v in data.items()
                },
                name,
            )
            if (
                isinstance(error, MoodleRecordError)
                and "missing_record" in str(error.exception or "")
                and self._function_missing(name)
            ):
                # Moodle 5.1 no longer names the external_functions table: a
                # missing record for a function the site does not list is the
                # function itself.
                error = MoodleAccessError(
                    error.message,
                    errorcode="functionmissing",
                    wsfunction=name,
                    debuginfo=error.debuginfo,
                    exception=error.exception,
                )
            raise error
        if isinstance(data, dict) and data.get("warnings"):
            _logger.warning(
                "moodle %s returned %d warning(s): %s",
                name,
                len(data["warnings"]),
                ", ".join(
                    str(w.get("warningcode") or w.get("message"))
                    for w in data["warnings"][:5]
                ),
            )
        return data

    def _function_missing(self, name):
        """Whether the site lacks ``name`` (asks Moodle once if not known)."""
        if name == "core_webservice_get_site_info":
            return False
        if self.site_functions is None:
            self.capabilities()
        return name not in self.site_functions

    def _not_json(self, text, name):
        """Explain a body that is not JSON: XML error, HTML page or garbage."""
        code = _XML_ERRORCODE.search(text)
        if code:
            message = _XML_MESSAGE.search(text)
            return classify(
                {
                    "errorcode": code.group(1).strip(),
                    "message": self._scrub(message.group(1).strip() if message else ""),
                },
                name,
            )
        if text.lstrip()[:1] == "<":
            return MoodleTransientError(
                "Moodle answered with an HTML page instead of JSON (maintenance "
                "mode, a proxy error page or a PHP error)",
                errorcode="htmlresponse",
                wsfunction=name,
            )
        return MoodleTransientError(
            "Moodle answered with malformed JSON",
            errorcode="badjson",
            wsfunction=name,
        )

    # ------------------------------------------------------------------
    # Batches
    # ------------------------------------------------------------------

    def chunks(self, records, extra_fields=0):
        """Split records into lists of indexes that fit one request each.

        A chunk holds at most ``batch_size`` records and at most
        ``max_fields`` form fields, counted leaf by leaf.
        """
        limit = self.max_fields - BASE_FIELDS - extra_fields
        chunk, fields = [], 0
        for index, record in enumerate(records):
            size = count_fields(record)
            if chunk and (len(chunk) >= self.batch_size or fields + size > limit):
                yield chunk
                chunk, fields = [], 0
            chunk.append(index)
            fields += size
        if chunk:
            yield chunk

    def call_batch(self, wsfunction, records, **extra):
        """Send records to a batch write function, chunk by chunk.

        Moodle runs a batch in one transaction: one bad record rejects the
        whole chunk. The client then splits the chunk in halves until the
        offending records stand alone, sends the rest, and reports each failed
        record with its reason. A database write error (``dmlwriteexception``,
        e.g. a value longer than its column) is such a record error; a lock
        conflict or an unreachable database is not (see
        :func:`.errors.classify`). A transient or access error stops the call:
        what succeeded before stays ``ok``, the rest stays ``pending``.

        :param str wsfunction: a catalogue function with a ``batch_key``
        :param list records: the records (dicts) to send
        :param extra: other parameters of the function, sent with every chunk
        :rtype: BatchResult
        """
        spec = FUNCTIONS[wsfunction]
        records = list(records)
        result = BatchResult(
            wsfunction=wsfunction,
            outcomes=[RecordOutcome(index=i, record=r) for i, r in enumerate(records)],
        )
        limit = self.max_fields - BASE_FIELDS - count_fields(extra)
        for chunk in self.chunks(records, count_fields(extra)):
            if result.aborted is not None:
                break
            if len(chunk) == 1 and count_fields(records[chunk[0]]) > limit:
                result.outcomes[chunk[0]].status = FAILED
                result.outcomes[chunk[0]].error = MoodleRecordError(
                    f"The record has more than {limit} fields and cannot be sent "
                    "without PHP dropping some of them",
                    errorcode="toomanyfields",
                    wsfunction=wsfunction,
                )
                continue
            self._send_chunk(spec, chunk, result, extra)
        return result

    def _send_chunk(self, spec, indexes, result, extra):
        records = [result.outcomes[i].record for i in indexes]
        result.calls += 1
        try:
            data = self.call(spec.name, **{spec.batch_key: records}, **extra)
        except MoodleRecordError as err:
            if spec.name == "enrol_manual_enrol_users" and (
                err.errorcode == WELCOME_MESSAGE_FAILED
            ):
                # The enrolments were committed; only the welcome mail failed.
                for i in indexes:
                    result.outcomes[i].status = OK
                    result.outcomes[
                        i
                    ].note = "Enrolled; Moodle could not send the welcome message"
                return
            if len(indexes) == 1:
                result.outcomes[indexes[0]].status = FAILED
                result.outcomes[indexes[0]].error = err
                return
            middle = len(indexes) // 2
            for half in (indexes[:middle], indexes[middle:]):
                if result.aborted is None:
                    self._send_chunk(spec, half, result, extra)
            return
        except (MoodleTransientError, MoodleAccessError) as err:
            result.aborted = err
            return
        self._apply(spec, indexes, data, result)

    def _apply(self, spec, indexes, data, result):
        outcomes = [result.outcomes[i] for i in indexes]
        if spec.result == "list":
            items = data if isinstance(data, list) else []
            if len(items) == len(outcomes):
                for outcome, item in zip(outcomes, items, strict=True):
                    outcome.status, outcome.value = OK, item
                return
            self._match_by_key(spec, outcomes, items)
            return
        if spec.result == "warnings":
            failed = {}
            for warning in (data or {}).get("warnings") or []:
                failed.setdefault(warning.get("itemid"), warning)
            for outcome in outcomes:
                warning = failed.get(outcome.record.get("id"))
                if warning:
                    outcome.status = FAILED
                    outcome.error = MoodleRecordError(
                        warning.get("message") or warning.get("warningcode"),
                        errorcode=warning.get("warningcode"),
                        wsfunction=spec.name,
                    )
                else:
                    outcome.status = OK
            return
        for outcome in outcomes:
            outcome.status = OK
            outcome.value = data

    def _match_by_key(self, spec, outcomes, items):
        """Pair answers with records when Moodle returned fewer than sent.

        That happens when PHP cut the request on a record boundary. Answers are
        matched on the record's unique key; a record with no answer is
        reported, never assumed written or dropped.
        """
        for key in ("username", "shortname", "idnumber", "name"):
            sent = [o.record.get(key) for o in outcomes]
            if all(sent) and len(set(sent)) == len(sent):
                break
        else:
            key = None
        answers = {item.get(key): item for item in items} if key else {}
        for outcome in outcomes:
            item = answers.get(outcome.record.get(key)) if key else None
            if item is not None:
                outcome.status, outcome.value = OK, item
            else:
                outcome.status = FAILED
                outcome.error = MoodleRecordError(
                    f"Moodle answered for {len(items)} of {len(outcomes)} records "
                    "and not for this one; the request may have been cut by PHP's "
                    "max_input_vars. It will be looked up before it is sent again.",
                    errorcode="noresult",
                    wsfunction=spec.name,
                )

    # ------------------------------------------------------------------
    # Site and capabilities
    # ------------------------------------------------------------------

    def get_site_info(self):
        """Return the site's identity and the token's functions.

        :rtype: SiteInfo
        """
        return SiteInfo.from_payload(self.call("core_webservice_get_site_info") or {})

    def capabilities(self):
        """Detect what the token can do and use the site's attendance names.

        :rtype: Capabilities
        """
        caps = Capabilities.detect(self.get_site_info())
        self.aliases = dict(caps.aliases)
        self.site_functions = frozenset(caps.site.functions)
        return caps

    # ------------------------------------------------------------------
    # Categories
    # ------------------------------------------------------------------

    def get_categories(self, addsubcategories=False, **criteria):
        """Return categories matching all criteria (``idnumber``, ``ids``, …).

        With no criteria, every category of the site.
        """
        return (
            self.call(
                "core_course_get_categories",
                criteria=[{"key": k, "value": v} for k, v in criteria.items()],
                addsubcategories=addsubcategories,
            )
            or []
        )

    def create_categories(self, categories):
        return self.call_batch("core_course_create_categories", categories)

    def update_categories(self, categories):
        return self.call_batch("core_course_update_categories", categories)

    def delete_categories(self, categories):
        return self.call_batch("core_course_delete_categories", categories)

    # ------------------------------------------------------------------
    # Courses
    # ------------------------------------------------------------------

    def get_courses_by_field(self, field="", value=""):
        """Return the courses whose ``field`` equals ``value`` (all with '')."""
        data = self.call("core_course_get_courses_by_field", field=field, value=value)
        return (data or {}).get("courses") or []

    def get_course_by_idnumber(self, idnumber):
        courses = self.get_courses_by_field("idnumber", idnumber)
        return courses[0] if courses else None

    def create_courses(self, courses):
        return self.call_batch("core_course_create_courses", courses)

    def update_courses(self, courses):
        return self.call_batch("core_course_update_courses", courses)

    def delete_courses(self, courseids):
        return self.call("core_course_delete_courses", courseids=list(courseids))

    def get_course_modules(self, courseid, modname=None):
        """Return the activities of a course, from every section.

        One ``core_course_get_contents`` call. Moodle 5.x question banks
        (``modname`` ``qbank``, hidden modules that are not activities) are
        left out.

        :param int courseid: the Moodle course
        :param str modname: only modules of this type (e.g. ``attendance``)
        :return: dicts ``id`` (the cmid), ``instance`` (the activity's own
            id, e.g. the attendance id), ``modname``, ``name``, ``visible``
        :rtype: list[dict]
        """
        options = [{"name": "excludecontents", "value": 1}]
        if modname:
            options.append({"name": "modname", "value": modname})
        sections = self.call(
            "core_course_get_contents", courseid=courseid, options=options
        )
        modules = []
        for section in sections or []:
            for module in section.get("modules") or []:
                kind = module.get("modname")
                if kind == "qbank" or (modname and kind != modname):
                    continue
                modules.append(
                    {
                        "id": int(module["id"]),
                        "instance": int(module["instance"]),
                        "modname": kind,
                        "name": module.get("name") or "",
                        "visible": int(module.get("visible", 1) or 0),
                    }
                )
        return modules

    # ------------------------------------------------------------------
    # Users
    # ------------------------------------------------------------------

    def get_users_by_field(self, field, values):
        """Return the users whose ``field`` is one of ``values``.

        The values are sent in as many requests as ``max_fields`` requires:
        past PHP's limit Moodle would silently find nothing.
        """
        values = list(values)
        users = []
        step = min(self.max_fields - BASE_FIELDS - 1, 1000)
        for start in range(0, len(values), step):
            users.extend(
                self.call(
                    "core_user_get_users_by_field",
                    field=field,
                    values=values[start : start + step],
                )
                or []
            )
        return users

    def create_users(self, users):
        return self.call_batch("core_user_create_users", users)

    def update_users(self, users):
        return self.call_batch("core_user_update_users", users)

    def delete_users(self, userids):
        return self.call("core_user_delete_users", userids=list(userids))

    # ------------------------------------------------------------------
    # Groups
    # ------------------------------------------------------------------

    def get_course_groups(self, courseid):
        return self.call("core_group_get_course_groups", courseid=courseid) or []

    def create_groups(self, groups):
        return self.call_batch("core_group_create_groups", groups)

    def update_groups(self, groups):
        return self.call_batch("core_group_update_groups", groups)

    def delete_groups(self, groupids):
        return self.call("core_group_delete_groups", groupids=list(groupids))

    def get_group_members(self, groupids):
        """Return ``{groupid: set(userids)}``."""
        data = self.call("core_group_get_group_members", groupids=list(groupids))
        return {g["groupid"]: set(g.get("userids") or []) for g in data or []}

    def add_group_members(self, members):
        return self.call_batch("core_group_add_group_members", members)

    def delete_group_members(self, members):
        return self.call_batch("core_group_delete_group_members", members)

    # ------------------------------------------------------------------
    # Enrolments
    # ------------------------------------------------------------------

    def enrol_users(self, enrolments):
        """Enrol users (``roleid``, ``userid``, ``courseid``) with the manual plugin.

        Re-enrolling is harmless; a second role is added, not substituted. A
        failed welcome message is reported as a note on a success, since Moodle
        saved the enrolment before the mail failed.
        """
        return self.call_batch("enrol_manual_enrol_users", enrolments)

    def unenrol_users(self, enrolments):
        """Remove manual enrolments (``userid``, ``courseid``): every role goes."""
        return self.call_batch("enrol_manual_unenrol_users", enrolments)

    def get_enrolled_users(self, courseid, **options):
        return (
            self.call(
                "core_enrol_get_enrolled_users",
                courseid=courseid,
                options=[{"name": k, "value": v} for k, v in options.items()],
            )
            or []
        )

    # ------------------------------------------------------------------
    # Grades and completion
    # ------------------------------------------------------------------

    def get_grade_items(self, courseid, userid=0):
        """Return the user-report rows of a course (all students with userid 0)."""
        data = self.call(
            "gradereport_user_get_grade_items", courseid=courseid, userid=userid
        )
        return (data or {}).get("usergrades") or []

    def get_assignments(self, courseids):
        data = self.call(
            "mod_assign_get_assignments",
            courseids=list(courseids),
            includenotenrolledcourses=True,
        )
        return (data or {}).get("courses") or []

    def get_assignment_grades(self, assignmentids, since=0):
        data = self.call(
            "mod_assign_get_grades", assignmentids=list(assignmentids), since=since
        )
        return (data or {}).get("assignments") or []

    def get_quizzes(self, courseids):
        data = self.call("mod_quiz_get_quizzes_by_courses", courseids=list(courseids))
        return (data or {}).get("quizzes") or []

    def get_quiz_best_grade(self, quizid, userid):
        return self.call("mod_quiz_get_user_best_grade", quizid=quizid, userid=userid)

    def get_course_completion_status(self, courseid, userid):
        """Return the completion status, or ``None`` for a course without criteria."""
        try:
            data = self.call(
                "core_completion_get_course_completion_status",
                courseid=courseid,
                userid=userid,
            )
        except MoodleRecordError as err:
            if err.errorcode == "nocriteriaset":
                return None
            raise
        return (data or {}).get("completionstatus")

    # ------------------------------------------------------------------
    # Attendance (mod_attendance, or the legacy mod_wsattendance names)
    # ------------------------------------------------------------------

    def add_attendance(self, courseid, name, groupmode=0):
        data = self.call(
            "mod_attendance_add_attendance",
            courseid=courseid,
            name=name,
            groupmode=groupmode,
        )
        return data["attendanceid"]

    def add_attendance_session(self, attendanceid, sessiontime, duration=0, **kw):
        data = self.call(
            "mod_attendance_add_session",
            attendanceid=attendanceid,
            sessiontime=sessiontime,
            duration=duration,
            **kw,
        )
        return data["sessionid"]

    def get_attendance_sessions(self, attendanceid):
        return self.call("mod_attendance_get_sessions", attendanceid=attendanceid) or []

    def get_attendance_session(self, sessionid):
        return self.call("mod_attendance_get_session", sessionid=sessionid)

    def update_attendance_status(self, sessionid, studentid, statusid, statusset, by):
        return self.call(
            "mod_attendance_update_user_status",
            sessionid=sessionid,
            studentid=studentid,
            takenbyid=by,
            statusid=statusid,
            statusset=statusset,
        )

    # ------------------------------------------------------------------
    # Look-ups bounded by the connector's own objects
    # ------------------------------------------------------------------

    def get_courses_by_ids(self, courseids, per_call=COURSE_IDS_PER_CALL):
        """Return the courses among ``courseids`` that exist, in id order.

        ``core_course_get_courses_by_field`` with ``ids``, ``per_call`` ids a
        call: the answer is bounded by the ids asked, never by the site.
        """
        ids = sorted({int(i) for i in courseids})
        courses = []
        for start in range(0, len(ids), per_call):
            chunk = ids[start : start + per_call]
            courses += self.get_courses_by_field("ids", ",".join(map(str, chunk)))
        return courses

    def get_courses_in_category(self, categoryid):
        """Return the courses of one category (not of its sub-categories)."""
        return self.get_courses_by_field("category", int(categoryid))

    def get_course_last_access(self, courseid):
        """Each enrolled user's last access to a course, in one call.

        :return: ``{userid: unix time}`` (0: never); ``None`` for a user whose
            last access Moodle does not show (a site that hides it)
        :rtype: dict
        """
        users = self.get_enrolled_users(courseid, userfields="id,lastcourseaccess")
        return {
            int(u["id"]): (
                int(u["lastcourseaccess"] or 0) if "lastcourseaccess" in u else None
            )
            for u in users
        }

    # ------------------------------------------------------------------
    # The companion plugin local_openeducat (optional)
    # ------------------------------------------------------------------

    def has_function(self, name):
        """Whether the token's service holds ``name`` (known once
        :meth:`capabilities` has run; ``False`` before)."""
        return name in (self.site_functions or ())

    def _plugin_pages(self, wsfunction, ids, since, perpage, **lists):
        """Every page of a paged plugin function, ``PLUGIN_MAX_IDS`` ids per
        list and call: the answers as Moodle gives them."""
        ids = sorted({int(i) for i in ids})
        for start in range(0, max(len(ids), 1), PLUGIN_MAX_IDS):
            chunk = ids[start : start + PLUGIN_MAX_IDS]
            page = 0
            while True:
                answer = self.call(
                    wsfunction,
                    **{
                        name: chunk if value is None else value
                        for name, value in lists.items()
                    },
                    since=int(since),
                    page=page,
                    perpage=perpage,
                )
                yield answer
                if not answer.get("hasmore"):
                    break
                page += 1

    def course_completion_pages(self, courseids, since=0, perpage=PLUGIN_PERPAGE):
        """Course completion of every tracked user of these courses, changed at
        or after ``since`` (``local_openeducat_get_course_completions``).

        One call per page and per ``PLUGIN_MAX_IDS`` courses. Each answer holds
        ``completions`` (``courseid``, ``userid``, ``hascriteria``,
        ``completed``, ``timecompleted``; a course without criteria is one row
        with ``userid`` 0), ``timenow`` (the next run's ``since``: the first
        page's), ``allrows`` and ``warnings`` (per course).

        :return: a generator of the answers, page by page
        """
        if not courseids:
            return iter(())
        return self._plugin_pages(
            PLUGIN_COMPLETIONS, courseids, since, perpage, courseids=None
        )

    def attendance_log_pages(self, courseids, since=0, perpage=PLUGIN_PERPAGE):
        """Attendance records of every attendance activity of these courses,
        taken or changed at or after ``since``
        (``local_openeducat_get_attendance_logs``), with their sessions.

        Each answer holds ``logs`` (by record id), ``timenow``, ``hasmore`` and
        ``warnings`` (per course or activity).

        :return: a generator of the answers, page by page
        """
        if not courseids:
            return iter(())
        return self._plugin_pages(
            PLUGIN_ATTENDANCE_LOGS, courseids, since, perpage, courseids=None
        )
