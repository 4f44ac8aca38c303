"""The three kinds of failure a Moodle call can end in.

=========== ================================================ ======================
kind        examples                                          handling
=========== ================================================ ======================
transient   timeout, refused connection, HTTP 5xx/429, an     retry later with backoff
            HTML page or malformed JSON instead of JSON
access      invalid token, function not in the service, REST  flag the instance; a
            disabled (HTTP 403), wrong base URL               human must fix Moodle
record      invalid parameter, shortname or idnumber taken,   that record fails; the
            a database write refused (a value too long for    rest of the batch goes on
            its column)
=========== ================================================ ======================

A database error is transient when the database is unreachable or cannot read
(``dbconnectionfailed``, ``dbsessionfailure``, ``dmlreadexception``) or when a
write met a lock conflict (a deadlock or serialization failure, when Moodle says
so); any other failed write (``dmlwriteexception``) is the record's error.

No error ever carries the web-service token: messages are built from Moodle's
answer and from the function name only.
"""

import re

ACCESS_ERRORCODES = frozenset(
    {
        "invalidtoken",
        "accessexception",
        "servicenotavailable",
        "invalidtimedtoken",
        "invalidiptoken",
        "nopermissions",
        "forcepasswordchangenotice",
        "sitepolicynotagreed",
        "usernotfullysetup",
        "webservicesnotenabled",
        "restprotocoldisabled",
        "redirected",
        "endpointnotfound",
    }
)

# The database is out of reach or cannot read, or the site is being upgraded
# or is in maintenance mode: worth another try later, for the whole instance
# (never a record's fault).
TRANSIENT_ERRORCODES = frozenset(
    {
        "dmlreadexception",
        "dbsessionfailure",
        "dbconnectionfailed",
        "upgraderunning",
        "sitemaintenance",
    }
)
# A failed write (``dml_write_exception``) is most often the record's fault: a
# value longer than its column, a unique index. Moodle runs a batch call in one
# transaction, so a batch write is split until the bad record stands alone
# (see :meth:`.client.MoodleClient.call_batch`), and that record fails alone.
# Only a lock conflict is the database's, not the record's: the same write goes
# through when tried again. Moodle puts the driver's words first in
# ``debuginfo`` (developer debugging only; then the SQL and its parameters,
# which are the record's own values and are not searched).
DB_WRITE_ERRORCODE = "dmlwriteexception"
_LOCK_CONFLICT = re.compile(
    r"deadlock|could not serialize|serialization failure|lock wait timeout"
    r"|try restarting transaction|lock timeout",
    re.IGNORECASE,
)

# What the admin must do on the Moodle side for each access failure.
ACCESS_HINTS = {
    "invalidtoken": (
        "The token is unknown to Moodle. Create a token for the integration user "
        "and the connector's service (Site administration > Server > Web services "
        "> Manage tokens) and paste it on the instance."
    ),
    "accessexception": (
        "The function is not in the token's external service. Add it under Site "
        "administration > Server > Web services > External services > Functions."
    ),
    "functionmissing": (
        "Moodle does not know this function: the plugin that provides it is not "
        "installed, or the site is too old."
    ),
    "nopermissions": (
        "The integration user lacks a capability this function requires. Give its "
        "role the capability at system level."
    ),
    "restprotocoldisabled": (
        "The REST protocol is disabled. Enable it under Site administration > "
        "Server > Web services > Manage protocols."
    ),
    "webservicesnotenabled": (
        "Web services are disabled. Enable them under Site administration > "
        "Advanced features."
    ),
    "servicenotavailable": "The external service is disabled: enable it in Moodle.",
    "redirected": (
        "Moodle answered with a redirect: set the base URL to Moodle's exact "
        "wwwroot (scheme and host name)."
    ),
    "endpointnotfound": (
        "No Moodle web-service endpoint at this address: check the base URL."
    ),
}


class MoodleError(Exception):
    """A failed Moodle call.

    :param str message: a human-readable explanation
    :param str errorcode: Moodle's ``errorcode`` (an opaque string: it can be
        free text or even HTML), or one of the connector's own codes
    :param str wsfunction: the web-service function that was called
    :param str debuginfo: Moodle's ``debuginfo``, sent only in developer mode
    :param str exception: Moodle's exception class name
    """

    kind = "error"

    def __init__(
        self,
        message,
        errorcode=None,
        wsfunction=None,
        debuginfo=None,
        exception=None,
    ):
        super().__init__(message)
        self.message = message
        self.errorcode = errorcode
        self.wsfunction = wsfunction
        self.debuginfo = debuginfo
        self.exception = exception

    def __str__(self):
        parts = []
        if self.wsfunction:
            parts.append(self.wsfunction)
        if self.errorcode and self.errorcode != self.message:
            parts.append(f"[{self.errorcode}]")
        text = " ".join(parts)
        text = f"{text}: {self.message}" if text else self.message
        if self.debuginfo:
            text = f"{text} ({self.debuginfo})"
        return text

    def to_dict(self):
        """Return a JSON-safe description, fit for a mapping row or a log."""
        return {
            "kind": self.kind,
            "errorcode": self.errorcode,
            "message": self.message,
            "debuginfo": self.debuginfo,
            "wsfunction": self.wsfunction,
        }


class MoodleTransientError(MoodleError):
    """The call may succeed later: network, timeout, HTTP 5xx/429, garbled body.

    :param float retry_after: seconds Moodle (or a proxy) asked us to wait, if any
    """

    kind = "transient"

    def __init__(self, message, *args, retry_after=None, **kwargs):
        super().__init__(message, *args, **kwargs)
        self.retry_after = retry_after


class MoodleAccessError(MoodleError):
    """The site refuses the connector as configured; a human must act."""

    kind = "access"

    @property
    def hint(self):
        """What to fix on the Moodle side, in one sentence."""
        return ACCESS_HINTS.get(self.errorcode, "")

    def __str__(self):
        text = super().__str__()
        return f"{text} {self.hint}" if self.hint else text


class MoodleRecordError(MoodleError):
    """Moodle rejected this record (validation, uniqueness, missing object)."""

    kind = "record"


def classify(payload, wsfunction=None):
    """Turn Moodle's error JSON into the matching :class:`MoodleError`.

    Moodle reports errors as HTTP 200 with ``exception``/``errorcode``/``message``.
    An unknown function is a ``dml_missing_record_exception`` on the
    ``external_functions`` table: that is a configuration problem, not a record
    one.

    :param dict payload: the decoded error body
    :param str wsfunction: the function called
    :return: the error to raise
    :rtype: MoodleError
    """
    errorcode = str(payload.get("errorcode") or "")
    message = str(payload.get("message") or errorcode or "Moodle error")
    exception = payload.get("exception")
    kwargs = {
        "errorcode": errorcode or None,
        "wsfunction": wsfunction,
        "debuginfo": payload.get("debuginfo"),
        "exception": exception,
    }
    if errorcode in ACCESS_ERRORCODES:
        return MoodleAccessError(message, **kwargs)
    if errorcode.startswith("invalidrecord") and "external_functions" in message:
        kwargs["errorcode"] = "functionmissing"
        return MoodleAccessError(message, **kwargs)
    if errorcode in TRANSIENT_ERRORCODES:
        return MoodleTransientError(message, **kwargs)
    if errorcode == DB_WRITE_ERRORCODE and lock_conflict(message, kwargs["debuginfo"]):
        return MoodleTransientError(message, **kwargs)
    return MoodleRecordError(message, **kwargs)


def lock_conflict(message, debuginfo=None):
    """Whether a failed database write met a lock conflict (a deadlock, a
    serialization failure, a lock wait timeout) rather than a bad value.

    Only the message and the first line of ``debuginfo`` (the database's own
    words) are read: the lines after it hold the statement and the record's
    values, which may contain any text.

    :param str message: Moodle's message
    :param str debuginfo: Moodle's ``debuginfo``, when developer debugging is on
    :rtype: bool
    """
    first_line = str(debuginfo or "").strip().split("\n", 1)[0]
    return bool(_LOCK_CONFLICT.search(f"{message}\n{first_line}"))
