"""Exceptions raised by the simulated Moodle functions.

Each one carries what Moodle's REST server prints: the exception class name, the
error code, the message and (shown only with developer debugging) ``debuginfo``.
"""

MOODLE_EXC = "core\\exception\\moodle_exception"
CODING_EXC = "core\\exception\\coding_exception"
PARAM_EXC = "core\\exception\\invalid_parameter_exception"
MISSING_EXC = "dml_missing_record_exception"
ACCESS_EXC = "webservice_access_exception"


class MoodleError(Exception):
    """An error answered as ``{"exception", "errorcode", "message"}``."""

    def __init__(self, exception, errorcode, message, debuginfo=None):
        super().__init__(f"{errorcode}: {message}")
        self.exception = exception
        self.errorcode = errorcode
        self.message = message
        self.debuginfo = debuginfo

    def as_dict(self, debug=False):
        data = {
            "exception": self.exception,
            "errorcode": self.errorcode,
            "message": self.message,
        }
        if debug and self.debuginfo:
            data["debuginfo"] = self.debuginfo
        return data


def invalid_parameter(debuginfo=None):
    """``invalid_parameter_exception`` ("Invalid parameter value detected")."""
    return MoodleError(
        PARAM_EXC, "invalidparameter", "Invalid parameter value detected", debuginfo
    )


def moodle_exception(errorcode, message, debuginfo=None):
    return MoodleError(MOODLE_EXC, errorcode, message, debuginfo)


def missing_record(table):
    """``dml_missing_record_exception`` for a record missing in ``table``.

    Like Moodle, a missing ``user`` row is ``invaliduser`` ("Invalid user").
    """
    if table == "user":
        return invalid_user()
    return MoodleError(
        MISSING_EXC,
        "invalidrecord",
        f"Can't find data record in database table {table}.",
    )


def invalid_user():
    """``dml_missing_record_exception`` for a user id that does not exist (4.5)."""
    return MoodleError(MISSING_EXC, "invaliduser", "Invalid user")


def user_deleted():
    """``core_user::require_active_user()`` on a deleted account."""
    return moodle_exception("userdeleted", "error/userdeleted")


def coding_error(hint):
    """``coding_exception`` (a check Moodle treats as a programming error)."""
    return MoodleError(
        CODING_EXC,
        "codingerror",
        f"Coding error detected, it must be fixed by a programmer: {hint}",
    )


def unknown_record(err):
    """Moodle 5.1's form of a missing record: ``invalidrecordunknown``.

    5.1 no longer names the table (or the kind of record) in
    ``dml_missing_record_exception``; every other error is returned unchanged.
    """
    if err.exception != MISSING_EXC:
        return err
    return MoodleError(
        MISSING_EXC,
        "invalidrecordunknown",
        "Can't find data record in database.",
        err.debuginfo,
    )


def course_context_error(courseid):
    return moodle_exception(
        "errorcoursecontextnotvalid",
        "You cannot execute functions in the course context (course id:"
        f"{courseid}). The context error message was: Invalid parameter value "
        "detected",
    )


class TransportFault(Exception):
    """Raised by :meth:`FakeMoodle.handle` for faults below HTTP (timeout, drop)."""

    def __init__(self, kind):
        super().__init__(kind)
        self.kind = kind
