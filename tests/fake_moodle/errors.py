"""Exceptions raised by the simulated Moodle functions.

Each one carries what Moodle's REST server prints: the exception class name, the
error code, the message and (shown only with developer debugging) ``debuginfo``.
"""

MOODLE_EXC = "core\\exception\\moodle_exception"
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
    """``dml_missing_record_exception`` for a record missing in ``table``."""
    return MoodleError(
        MISSING_EXC,
        "invalidrecord",
        f"Can't find data record in database table {table}.",
    )


def invalid_user():
    return MoodleError(MISSING_EXC, "invaliduser", "Invalid user")


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
