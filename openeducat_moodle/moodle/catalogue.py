"""Every web-service function the connector calls, in one place.

The catalogue drives three things: the typed wrappers of :class:`MoodleClient`,
capability detection (which features a token can serve, and exactly which
functions are missing for each), and the function list in the README that an
admin copies into Moodle's external service. Run
``python -m openeducat_moodle.moodle`` to print that list.
"""

import dataclasses

READ = "read"
WRITE = "write"


@dataclasses.dataclass(frozen=True)
class WsFunction:
    """One Moodle web-service function.

    :param name: the ``wsfunction`` name
    :param kind: ``read`` or ``write``
    :param feature: the connector feature that needs it
    :param batch_key: for batch writes, the list parameter holding the records
    :param result: shape of a batch write's answer: ``list`` (one item per
        record, in order), ``warnings`` (``{"warnings": [...]}`` keyed by record
        id) or ``null``
    :param legacy: the older name of the same function, when a site may only
        have that one (``mod_wsattendance_*``)
    """

    name: str
    kind: str
    feature: str
    batch_key: str | None = None
    result: str | None = None
    legacy: str | None = None
    optional: bool = False


# What an optional function adds, for the README (default: session creation).
OPTIONAL_NOTES = {
    "core_course_get_contents": "finds attendance activities added in Moodle",
}
DEFAULT_OPTIONAL_NOTE = "lets the connector create sessions"

# Features, in the order an admin reads them, with a human label.
FEATURES = {
    "connection": "Connection test and health check",
    "categories": "Push departments and programs (course categories)",
    "courses": "Push subjects (one course per subject and program)",
    "users": "Push students and faculty (user accounts)",
    "groups": "Push batches (groups and memberships)",
    "enrolments": "Push enrolments and unenrolments",
    "gradebook": "Pull gradebook grades",
    "assignments": "Pull assignment grades",
    "quizzes": "Pull quiz best grades",
    "completion": "Pull course completion",
    "attendance": "Attendance (mod_attendance plugin)",
    "cleanup": "Deletion (contract tests on a real site only; never used by sync)",
}

_F = WsFunction
_ALL = [
    _F("core_webservice_get_site_info", READ, "connection"),
    _F("core_course_get_categories", READ, "categories"),
    _F("core_course_create_categories", WRITE, "categories", "categories", "list"),
    _F("core_course_update_categories", WRITE, "categories", "categories", "null"),
    _F("core_course_get_courses_by_field", READ, "courses"),
    _F("core_course_create_courses", WRITE, "courses", "courses", "list"),
    _F("core_course_update_courses", WRITE, "courses", "courses", "warnings"),
    _F("core_user_get_users_by_field", READ, "users"),
    _F("core_user_create_users", WRITE, "users", "users", "list"),
    _F("core_user_update_users", WRITE, "users", "users", "warnings"),
    _F("core_group_get_course_groups", READ, "groups"),
    _F("core_group_create_groups", WRITE, "groups", "groups", "list"),
    _F("core_group_update_groups", WRITE, "groups", "groups", "null"),
    _F("core_group_get_group_members", READ, "groups"),
    _F("core_group_add_group_members", WRITE, "groups", "members", "null"),
    _F("core_group_delete_group_members", WRITE, "groups", "members", "null"),
    _F("core_enrol_get_enrolled_users", READ, "enrolments"),
    _F("enrol_manual_enrol_users", WRITE, "enrolments", "enrolments", "null"),
    _F("enrol_manual_unenrol_users", WRITE, "enrolments", "enrolments", "null"),
    _F("gradereport_user_get_grade_items", READ, "gradebook"),
    _F("mod_assign_get_assignments", READ, "assignments"),
    _F("mod_assign_get_grades", READ, "assignments"),
    _F("mod_quiz_get_quizzes_by_courses", READ, "quizzes"),
    _F("mod_quiz_get_user_best_grade", READ, "quizzes"),
    _F("core_completion_get_course_completion_status", READ, "completion"),
    _F(
        "mod_attendance_get_sessions",
        READ,
        "attendance",
        legacy="mod_wsattendance_get_sessions",
    ),
    _F(
        "mod_attendance_get_session",
        READ,
        "attendance",
        legacy="mod_wsattendance_get_session",
    ),
    _F(
        "mod_attendance_update_user_status",
        WRITE,
        "attendance",
        legacy="mod_wsattendance_update_user_status",
    ),
    # Only the current plugin has these; with the legacy names the connector
    # works on sessions that already exist in Moodle.
    _F("mod_attendance_add_attendance", WRITE, "attendance", optional=True),
    _F("mod_attendance_add_session", WRITE, "attendance", optional=True),
    # Lists a course's activities: attendance activities a teacher adds in
    # Moodle are found and read (without it, only the connector's own).
    _F("core_course_get_contents", READ, "attendance", optional=True),
    _F("core_course_delete_categories", WRITE, "cleanup", "categories", "null"),
    _F("core_course_delete_courses", WRITE, "cleanup"),
    _F("core_group_delete_groups", WRITE, "cleanup"),
    _F("core_user_delete_users", WRITE, "cleanup"),
]

FUNCTIONS = {f.name: f for f in _ALL}


def functions_for(feature):
    """Return the catalogue entries a feature needs, in catalogue order."""
    return [f for f in _ALL if f.feature == feature]


def markdown():
    """Return the README's function list, one table row per function."""
    lines = ["| function | read/write | needed for |", "|---|---|---|"]
    for function in _ALL:
        need = FEATURES[function.feature]
        if function.legacy:
            need += f" (older plugin: `{function.legacy}`)"
        if function.optional:
            note = OPTIONAL_NOTES.get(function.name, DEFAULT_OPTIONAL_NOTE)
            need += f"; optional: {note}"
        lines.append(f"| `{function.name}` | {function.kind} | {need} |")
    return "\n".join(lines) + "\n"
