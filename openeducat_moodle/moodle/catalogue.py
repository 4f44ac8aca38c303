"""Every web-service function the connector calls, in one place.

The catalogue drives four things: the typed wrappers of :class:`MoodleClient`,
capability detection (which features a token can serve, and exactly which
functions are missing for each), the function list in the README that an
admin copies into Moodle's external service, and the Moodle capabilities the
web-service user's role needs (the README's list, and the role the compose
set-up creates: ``docker/moodle/functions.py``). Run
``python -m openeducat_moodle.moodle`` to print the function list and
``python -m openeducat_moodle.moodle capabilities`` the capability list.
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
    :param capabilities: the Moodle capabilities the function checks for the
        calls the connector makes (``()``: none beyond the protocol's
        ``webservice/rest:use``), read from the function's code in Moodle 4.5
    """

    name: str
    kind: str
    feature: str
    batch_key: str | None = None
    result: str | None = None
    legacy: str | None = None
    optional: bool = False
    capabilities: tuple[str, ...] | None = None


# What an optional function adds, for the README (default: session creation).
OPTIONAL_NOTES = {
    "core_course_get_contents": "finds attendance activities added in Moodle",
    "core_enrol_get_users_courses": "lets automatic adoption check an existing "
    "account's roles",
    "core_enrol_get_enrolled_users_with_capability": "lets automatic adoption "
    "check an existing account's roles",
    "core_user_get_users": "finds the account that holds an email address in "
    "another letter case (Moodle on PostgreSQL)",
    "local_openeducat_get_course_completions": "the companion plugin "
    "local_openeducat: completion of many courses in a few calls, only what "
    "changed since the last run",
    "local_openeducat_get_attendance_logs": "the companion plugin "
    "local_openeducat: attendance taken or changed since the last run, in a few "
    "calls",
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

# The capabilities, as Moodle 4.5 checks them. A web service runs
# validate_context(), which for a course or an activity is require_login(): a
# user who is not enrolled there needs moodle/course:view, and
# moodle/course:viewhiddencourses when the course is hidden (a course not open
# to students yet, or in a hidden category); an activity must be visible to the
# caller (its mod/...:view, its availability conditions).
REST = "webservice/rest:use"  # the protocol, for every call
COURSE_VIEW = "moodle/course:view"
HIDDEN_COURSES = "moodle/course:viewhiddencourses"
# Courses and activities in separate-groups mode: without it the enrolled-user
# list, the grade report and completion only show the caller's own groups.
ALL_GROUPS = "moodle/site:accessallgroups"
# Activities restricted (dates, groups, completion) are read all the same.
ANY_AVAILABILITY = "moodle/course:ignoreavailabilityrestrictions"
CATEGORY_MANAGE = "moodle/category:manage"
MANAGE_GROUPS = "moodle/course:managegroups"
TAKE_ATTENDANCE = "mod/attendance:takeattendances"

_F = WsFunction
_GROUPS = (COURSE_VIEW, HIDDEN_COURSES, MANAGE_GROUPS)
_ALL = [
    _F("core_webservice_get_site_info", READ, "connection", capabilities=()),
    _F(
        "core_course_get_categories",
        READ,
        "categories",
        # idnumber is only returned with category:manage; a category hidden
        # in Moodle needs viewhiddencategories to be found again.
        capabilities=(
            "moodle/category:viewcourselist",
            "moodle/category:viewhiddencategories",
            CATEGORY_MANAGE,
        ),
    ),
    _F(
        "core_course_create_categories",
        WRITE,
        "categories",
        "categories",
        "list",
        capabilities=(CATEGORY_MANAGE,),
    ),
    _F(
        "core_course_update_categories",
        WRITE,
        "categories",
        "categories",
        "null",
        capabilities=(CATEGORY_MANAGE,),
    ),
    _F(
        "core_course_get_courses_by_field",
        READ,
        "courses",
        # idnumber is only returned with course:update
        capabilities=(COURSE_VIEW, HIDDEN_COURSES, "moodle/course:update"),
    ),
    _F(
        "core_course_create_courses",
        WRITE,
        "courses",
        "courses",
        "list",
        capabilities=("moodle/course:create",),
    ),
    _F(
        "core_course_update_courses",
        WRITE,
        "courses",
        "courses",
        "warnings",
        # each changed field has its own capability; the connector sends
        # fullname, shortname, category, summary, start and end dates and its
        # own idnumber (never changed).
        capabilities=(
            COURSE_VIEW,
            HIDDEN_COURSES,
            "moodle/course:update",
            "moodle/course:changefullname",
            "moodle/course:changeshortname",
            "moodle/course:changesummary",
            "moodle/course:changecategory",
        ),
    ),
    _F(
        "core_user_get_users_by_field",
        READ,
        "users",
        # username, idnumber, auth and lang need viewalldetails; email (and
        # phone) are identity fields (viewuseridentity and the site's
        # showuseridentity); firstname and lastname need viewfullnames under
        # some name formats; fields the site hides need viewhiddendetails.
        capabilities=(
            "moodle/user:viewdetails",
            "moodle/user:viewalldetails",
            "moodle/user:viewhiddendetails",
            "moodle/site:viewuseridentity",
            "moodle/site:viewfullnames",
        ),
    ),
    _F(
        "core_user_create_users",
        WRITE,
        "users",
        "users",
        "list",
        capabilities=("moodle/user:create",),
    ),
    _F(
        "core_user_update_users",
        WRITE,
        "users",
        "users",
        "warnings",
        capabilities=("moodle/user:update",),
    ),
    _F("core_group_get_course_groups", READ, "groups", capabilities=_GROUPS),
    _F(
        "core_group_create_groups",
        WRITE,
        "groups",
        "groups",
        "list",
        capabilities=_GROUPS,
    ),
    _F(
        "core_group_update_groups",
        WRITE,
        "groups",
        "groups",
        "null",
        capabilities=_GROUPS,
    ),
    _F("core_group_get_group_members", READ, "groups", capabilities=_GROUPS),
    _F(
        "core_group_add_group_members",
        WRITE,
        "groups",
        "members",
        "null",
        capabilities=_GROUPS,
    ),
    _F(
        "core_group_delete_group_members",
        WRITE,
        "groups",
        "members",
        "null",
        capabilities=_GROUPS,
    ),
    _F(
        "core_enrol_get_enrolled_users",
        READ,
        "enrolments",
        capabilities=(
            COURSE_VIEW,
            HIDDEN_COURSES,
            "moodle/course:viewparticipants",
            "moodle/user:viewdetails",
            ALL_GROUPS,
        ),
    ),
    _F(
        "enrol_manual_enrol_users",
        WRITE,
        "enrolments",
        "enrolments",
        "null",
        # and the role must be allowed to assign the given role
        capabilities=(
            COURSE_VIEW,
            HIDDEN_COURSES,
            "enrol/manual:enrol",
            "moodle/role:assign",
        ),
    ),
    _F(
        "enrol_manual_unenrol_users",
        WRITE,
        "enrolments",
        "enrolments",
        "null",
        capabilities=(COURSE_VIEW, HIDDEN_COURSES, "enrol/manual:unenrol"),
    ),
    _F(
        "gradereport_user_get_grade_items",
        READ,
        "gradebook",
        capabilities=(
            COURSE_VIEW,
            HIDDEN_COURSES,
            "gradereport/user:view",
            "moodle/grade:viewall",
            ALL_GROUPS,
        ),
    ),
    _F(
        "mod_assign_get_assignments",
        READ,
        "assignments",
        capabilities=(COURSE_VIEW, HIDDEN_COURSES, "mod/assign:view", ANY_AVAILABILITY),
    ),
    _F(
        "mod_assign_get_grades",
        READ,
        "assignments",
        capabilities=(
            COURSE_VIEW,
            HIDDEN_COURSES,
            "mod/assign:view",
            "mod/assign:viewgrades",
            ANY_AVAILABILITY,
            ALL_GROUPS,
        ),
    ),
    _F(
        "mod_quiz_get_quizzes_by_courses",
        READ,
        "quizzes",
        capabilities=(COURSE_VIEW, HIDDEN_COURSES, "mod/quiz:view", ANY_AVAILABILITY),
    ),
    _F(
        "mod_quiz_get_user_best_grade",
        READ,
        "quizzes",
        capabilities=(
            COURSE_VIEW,
            HIDDEN_COURSES,
            "mod/quiz:view",
            "mod/quiz:viewreports",
            ANY_AVAILABILITY,
        ),
    ),
    _F(
        "core_completion_get_course_completion_status",
        READ,
        "completion",
        capabilities=(
            COURSE_VIEW,
            HIDDEN_COURSES,
            "report/completion:view",
            ALL_GROUPS,
        ),
    ),
    _F(
        "mod_attendance_get_sessions",
        READ,
        "attendance",
        legacy="mod_wsattendance_get_sessions",
        capabilities=(
            COURSE_VIEW,
            HIDDEN_COURSES,
            "mod/attendance:view",
            TAKE_ATTENDANCE,
        ),
    ),
    _F(
        "mod_attendance_get_session",
        READ,
        "attendance",
        legacy="mod_wsattendance_get_session",
        capabilities=(
            COURSE_VIEW,
            HIDDEN_COURSES,
            "mod/attendance:view",
            TAKE_ATTENDANCE,
        ),
    ),
    _F(
        "mod_attendance_update_user_status",
        WRITE,
        "attendance",
        legacy="mod_wsattendance_update_user_status",
        capabilities=(
            COURSE_VIEW,
            HIDDEN_COURSES,
            "mod/attendance:view",
            TAKE_ATTENDANCE,
        ),
    ),
    # Only the current plugin has these; with the legacy names the connector
    # works on sessions that already exist in Moodle.
    _F(
        "mod_attendance_add_attendance",
        WRITE,
        "attendance",
        optional=True,
        capabilities=(
            COURSE_VIEW,
            HIDDEN_COURSES,
            "moodle/course:manageactivities",
            "mod/attendance:addinstance",
        ),
    ),
    _F(
        "mod_attendance_add_session",
        WRITE,
        "attendance",
        optional=True,
        capabilities=(
            COURSE_VIEW,
            HIDDEN_COURSES,
            "mod/attendance:view",
            "mod/attendance:manageattendances",
        ),
    ),
    # Lists a course's activities: attendance activities a teacher adds in
    # Moodle are found and read (without it, only the connector's own).
    _F(
        "core_course_get_contents",
        READ,
        "attendance",
        optional=True,
        # an activity the caller may not view (mod/attendance:view) is left
        # out of the list
        capabilities=(COURSE_VIEW, HIDDEN_COURSES, "mod/attendance:view"),
    ),
    # Existing accounts: what an account can do before automatic adoption
    # (its courses, then who holds a capability above student in them and
    # at site level), and the account that holds an email address in another
    # letter case (a look-up by email compares case on PostgreSQL).
    _F(
        "core_enrol_get_users_courses",
        READ,
        "users",
        optional=True,
        # another user's courses are listed where the caller may see the
        # participants and the user's profile
        capabilities=(
            COURSE_VIEW,
            HIDDEN_COURSES,
            "moodle/course:viewparticipants",
            "moodle/user:viewdetails",
        ),
    ),
    _F(
        "core_enrol_get_enrolled_users_with_capability",
        READ,
        "users",
        optional=True,
        # the front page (site level) needs site:viewparticipants; others'
        # permissions need role:review
        capabilities=(
            COURSE_VIEW,
            HIDDEN_COURSES,
            "moodle/course:viewparticipants",
            "moodle/site:viewparticipants",
            "moodle/role:review",
            "moodle/user:viewdetails",
        ),
    ),
    _F(
        "core_user_get_users",
        READ,
        "users",
        optional=True,
        capabilities=(
            "moodle/user:viewdetails",
            "moodle/user:viewalldetails",
            "moodle/user:viewhiddendetails",
            "moodle/site:viewuseridentity",
            "moodle/site:viewfullnames",
        ),
    ),
    _F(
        "core_course_delete_categories",
        WRITE,
        "cleanup",
        "categories",
        "null",
        # the courses inside go too
        capabilities=(CATEGORY_MANAGE, "moodle/course:delete"),
    ),
    _F(
        "core_course_delete_courses",
        WRITE,
        "cleanup",
        capabilities=(COURSE_VIEW, HIDDEN_COURSES, "moodle/course:delete"),
    ),
    _F("core_group_delete_groups", WRITE, "cleanup", capabilities=_GROUPS),
    _F(
        "core_user_delete_users", WRITE, "cleanup", capabilities=("moodle/user:delete",)
    ),
    # The companion plugin local_openeducat (this repository's
    # local_openeducat/): bulk reads of what changed since a time, used when
    # the site has them, Moodle's own functions otherwise. Their capabilities
    # are those the plugin checks (local_openeducat/classes/local/catalogue.php).
    _F(
        "local_openeducat_get_course_completions",
        READ,
        "completion",
        optional=True,
        capabilities=(
            COURSE_VIEW,
            HIDDEN_COURSES,
            "report/completion:view",
            ALL_GROUPS,
        ),
    ),
    _F(
        "local_openeducat_get_attendance_logs",
        READ,
        "attendance",
        optional=True,
        capabilities=(
            COURSE_VIEW,
            HIDDEN_COURSES,
            "mod/attendance:view",
            TAKE_ATTENDANCE,
            ANY_AVAILABILITY,
        ),
    ),
]

# The plugin's functions, by what they read.
PLUGIN_COMPLETIONS = "local_openeducat_get_course_completions"
PLUGIN_ATTENDANCE_LOGS = "local_openeducat_get_attendance_logs"

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


def role_capabilities(functions=None):
    """Return the capabilities a role needs to call ``functions``.

    :param functions: catalogue entries (default: the whole catalogue)
    :return: ``webservice/rest:use`` first, then each capability once, in
        catalogue order
    """
    found = {REST: None}
    for function in _ALL if functions is None else functions:
        found.update(dict.fromkeys(function.capabilities or ()))
    return list(found)


def capabilities_markdown():
    """Return the README's capability list: which functions check each one."""
    lines = ["| capability | checked by |", "|---|---|"]
    for capability in role_capabilities():
        if capability == REST:
            lines.append(f"| `{REST}` | every call (the REST protocol) |")
            continue
        users = [f for f in _ALL if capability in (f.capabilities or ())]
        names = ", ".join(f"`{f.name}`" for f in users)
        features = {f.feature for f in users}
        if features == {"cleanup"}:
            names += " (deletion functions only)"
        elif features == {"attendance"}:
            names += " (attendance only)"
        lines.append(f"| `{capability}` | {names} |")
    return "\n".join(lines) + "\n"
