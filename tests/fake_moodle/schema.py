"""Parameter descriptions of the simulated functions (Moodle 4.5 / attendance).

``FUNCTIONS`` classifies every implemented function as ``"read"`` or ``"write"``;
``PARAMS`` holds the top-level parameter structure used for validation.
"""

from .params import DEF, OPT, dflt, multi, opt, req, struct

ATTENDANCE = (
    "add_attendance",
    "remove_attendance",
    "add_session",
    "remove_session",
    "get_courses_with_today_sessions",
    "get_session",
    "get_sessions",
    "update_user_status",
)
LEGACY_ATTENDANCE = (
    "get_session",
    "get_sessions",
    "update_user_status",
    "get_courses_with_today_sessions",
)

FUNCTIONS = {
    "core_webservice_get_site_info": "read",
    "core_course_get_categories": "read",
    "core_course_create_categories": "write",
    "core_course_update_categories": "write",
    "core_course_delete_categories": "write",
    "core_course_get_courses_by_field": "read",
    "core_course_create_courses": "write",
    "core_course_update_courses": "write",
    "core_course_delete_courses": "write",
    "core_course_get_contents": "read",
    "core_group_create_groups": "write",
    "core_group_get_course_groups": "read",
    "core_group_update_groups": "write",
    "core_group_delete_groups": "write",
    "core_group_add_group_members": "write",
    "core_group_delete_group_members": "write",
    "core_group_get_group_members": "read",
    "core_user_create_users": "write",
    "core_user_update_users": "write",
    "core_user_get_users_by_field": "read",
    "core_user_delete_users": "write",
    "enrol_manual_enrol_users": "write",
    "enrol_manual_unenrol_users": "write",
    "core_enrol_get_enrolled_users": "read",
    "gradereport_user_get_grade_items": "read",
    "mod_assign_get_assignments": "read",
    "mod_assign_get_grades": "read",
    "mod_quiz_get_quizzes_by_courses": "read",
    "mod_quiz_get_user_best_grade": "read",
    "core_completion_get_course_completion_status": "read",
}
for _name in ATTENDANCE:
    FUNCTIONS[f"mod_attendance_{_name}"] = (
        "read" if _name.startswith("get_") else "write"
    )
for _name in LEGACY_ATTENDANCE:
    FUNCTIONS[f"mod_wsattendance_{_name}"] = FUNCTIONS[f"mod_attendance_{_name}"]

LEGACY_FUNCTIONS = frozenset(f"mod_wsattendance_{n}" for n in LEGACY_ATTENDANCE)
ATTENDANCE_FUNCTIONS = (
    frozenset(f"mod_attendance_{n}" for n in ATTENDANCE) | LEGACY_FUNCTIONS
)


def _p(**fields):
    return struct(**fields)


_NAMEVALUE = struct(name=req("alphanumext"), value=req("raw"))
_TYPEVALUE = struct(type=req("alpha"), value=req("raw"))
_SHORTVALUE = struct(shortname=req("alphanumext"), value=req("raw"))

_COURSE_OPTIONAL = {
    "idnumber": opt("raw"),
    "summary": opt("raw"),
    "summaryformat": dflt("int", 1),
    "format": dflt("plugin", "topics"),
    "showgrades": dflt("int", 1),
    "newsitems": dflt("int", 5),
    "startdate": opt("int"),
    "enddate": opt("int"),
    "numsections": opt("int"),
    "maxbytes": dflt("int", 0),
    "showreports": dflt("int", 0),
    "visible": opt("int"),
    "hiddensections": opt("int"),
    "groupmode": dflt("int", 0),
    "groupmodeforce": dflt("int", 0),
    "defaultgroupingid": dflt("int", 0),
    "enablecompletion": opt("int"),
    "completionnotify": opt("int"),
    "lang": opt("safedir"),
    "forcetheme": opt("plugin"),
    "courseformatoptions": multi(_NAMEVALUE, OPT),
    "customfields": multi(_SHORTVALUE, OPT),
}
_COURSE_UPDATE = {
    key: (opt(desc.ptype) if hasattr(desc, "ptype") else desc)
    for key, desc in _COURSE_OPTIONAL.items()
}

_USER_COMMON = {
    "auth": dflt("auth", "manual"),
    "password": opt("raw"),
    "maildisplay": opt("int"),
    "city": opt("notags"),
    "country": opt("alpha"),
    "timezone": opt("timezone"),
    "description": opt("raw"),
    "firstnamephonetic": opt("notags"),
    "lastnamephonetic": opt("notags"),
    "middlename": opt("notags"),
    "alternatename": opt("notags"),
    "interests": opt("text"),
    "institution": opt("text"),
    "department": opt("text"),
    "phone1": opt("notags"),
    "phone2": opt("notags"),
    "address": opt("text"),
    "idnumber": dflt("raw", ""),
    "lang": dflt("lang", "en"),
    "calendartype": dflt("plugin", "gregorian"),
    "theme": opt("theme"),
    "mailformat": opt("int"),
    "customfields": multi(_TYPEVALUE, OPT),
    "preferences": multi(_TYPEVALUE, OPT),
}
_USER_CREATE = dict(
    createpassword=opt("bool"),
    username=req("username"),
    firstname=req("notags"),
    lastname=req("notags"),
    email=req("raw_trimmed"),
    **_USER_COMMON,
)
_USER_UPDATE = {
    "id": req("int"),
    "username": opt("username"),
    "suspended": opt("bool"),
    "firstname": opt("notags"),
    "lastname": opt("notags"),
    "email": opt("raw_trimmed"),
    "userpicture": opt("int"),
}
_USER_UPDATE.update(
    {
        key: (opt(desc.ptype) if hasattr(desc, "ptype") else desc)
        for key, desc in _USER_COMMON.items()
    }
)

_MEMBERS = _p(members=multi(struct(groupid=req("int"), userid=req("int"))))
_ATT_SESSION = _p(sessionid=req("int"))
_ATT_STATUS = _p(
    sessionid=req("int"),
    studentid=req("int"),
    takenbyid=req("int"),
    statusid=req("int"),
    statusset=req("text"),
)
_ATT_TODAY = _p(userid=dflt("int", 0))

PARAMS = {
    "core_webservice_get_site_info": _p(
        serviceshortnames=multi(req("alphanumext"), DEF, [])
    ),
    "core_course_get_categories": _p(
        criteria=multi(struct(key=req("alpha"), value=req("raw")), DEF, []),
        addsubcategories=dflt("bool", True),
    ),
    "core_course_create_categories": _p(
        categories=multi(
            struct(
                name=req("text"),
                parent=dflt("int", 0),
                idnumber=opt("raw"),
                description=opt("raw"),
                descriptionformat=dflt("int", 1),
                theme=opt("theme"),
            )
        )
    ),
    "core_course_update_categories": _p(
        categories=multi(
            struct(
                id=req("int"),
                name=opt("text"),
                idnumber=opt("raw"),
                parent=opt("int"),
                description=opt("raw"),
                descriptionformat=dflt("int", 1),
                theme=opt("theme"),
            )
        )
    ),
    "core_course_delete_categories": _p(
        categories=multi(
            struct(
                id=req("int"),
                newparent=opt("int"),
                recursive=dflt("bool", False),
            )
        )
    ),
    "core_course_get_courses_by_field": _p(
        field=dflt("alpha", ""), value=dflt("raw", "")
    ),
    "core_course_create_courses": _p(
        courses=multi(
            struct(
                fullname=req("text"),
                shortname=req("text"),
                categoryid=req("int"),
                **_COURSE_OPTIONAL,
            )
        )
    ),
    "core_course_update_courses": _p(
        courses=multi(
            struct(
                id=req("int"),
                fullname=opt("text"),
                shortname=opt("text"),
                categoryid=opt("int"),
                **_COURSE_UPDATE,
            )
        )
    ),
    "core_course_delete_courses": _p(courseids=multi(req("int"))),
    "core_course_get_contents": _p(
        courseid=req("int"),
        options=multi(struct(name=req("alphanum"), value=req("raw")), DEF, []),
    ),
    "core_group_create_groups": _p(
        groups=multi(
            struct(
                courseid=req("int"),
                name=req("text"),
                description=req("raw"),
                descriptionformat=dflt("int", 1),
                enrolmentkey=opt("raw"),
                idnumber=opt("raw"),
                visibility=dflt("int", 0),
                participation=dflt("bool", True),
                customfields=multi(_SHORTVALUE, OPT),
            )
        )
    ),
    "core_group_get_course_groups": _p(courseid=req("int")),
    "core_group_update_groups": _p(
        groups=multi(
            struct(
                id=req("int"),
                name=req("text"),
                description=opt("raw"),
                descriptionformat=dflt("int", 1),
                enrolmentkey=opt("raw"),
                idnumber=opt("raw"),
                visibility=opt("text"),
                participation=opt("bool"),
                customfields=multi(_SHORTVALUE, OPT),
            )
        )
    ),
    "core_group_delete_groups": _p(groupids=multi(req("int"))),
    "core_group_add_group_members": _MEMBERS,
    "core_group_delete_group_members": _MEMBERS,
    "core_group_get_group_members": _p(groupids=multi(req("int"))),
    "core_user_create_users": _p(users=multi(struct(**_USER_CREATE))),
    "core_user_update_users": _p(users=multi(struct(**_USER_UPDATE))),
    "core_user_get_users_by_field": _p(field=req("alpha"), values=multi(req("raw"))),
    "core_user_delete_users": _p(userids=multi(req("int"))),
    "enrol_manual_enrol_users": _p(
        enrolments=multi(
            struct(
                roleid=req("int"),
                userid=req("int"),
                courseid=req("int"),
                timestart=opt("int"),
                timeend=opt("int"),
                suspend=opt("int"),
            )
        )
    ),
    "enrol_manual_unenrol_users": _p(
        enrolments=multi(
            struct(userid=req("int"), courseid=req("int"), roleid=opt("int"))
        )
    ),
    "core_enrol_get_enrolled_users": _p(
        courseid=req("int"),
        options=multi(struct(name=req("alphanumext"), value=req("raw")), DEF, []),
    ),
    "gradereport_user_get_grade_items": _p(
        courseid=req("int"), userid=dflt("int", 0), groupid=dflt("int", 0)
    ),
    "mod_assign_get_assignments": _p(
        courseids=multi(req("int"), DEF, []),
        capabilities=multi(req("text"), DEF, []),
        includenotenrolledcourses=dflt("bool", False),
    ),
    "mod_assign_get_grades": _p(assignmentids=multi(req("int")), since=dflt("int", 0)),
    "mod_quiz_get_quizzes_by_courses": _p(courseids=multi(req("int"), DEF, [])),
    "mod_quiz_get_user_best_grade": _p(quizid=req("int"), userid=dflt("int", 0)),
    "core_completion_get_course_completion_status": _p(
        courseid=req("int"), userid=req("int")
    ),
    "mod_attendance_add_attendance": _p(
        courseid=req("int"),
        name=req("text"),
        intro=dflt("raw", ""),
        groupmode=dflt("int", 0),
    ),
    "mod_attendance_remove_attendance": _p(attendanceid=req("int")),
    "mod_attendance_add_session": _p(
        attendanceid=req("int"),
        description=dflt("raw", ""),
        sessiontime=req("int"),
        duration=dflt("int", 0),
        groupid=dflt("int", 0),
        addcalendarevent=dflt("bool", True),
    ),
    "mod_attendance_remove_session": _ATT_SESSION,
    "mod_attendance_get_courses_with_today_sessions": _ATT_TODAY,
    "mod_attendance_get_session": _ATT_SESSION,
    "mod_attendance_get_sessions": _p(attendanceid=req("int")),
    "mod_attendance_update_user_status": _ATT_STATUS,
}
for _name in LEGACY_ATTENDANCE:
    PARAMS[f"mod_wsattendance_{_name}"] = PARAMS[f"mod_attendance_{_name}"]

assert set(PARAMS) == set(FUNCTIONS)
