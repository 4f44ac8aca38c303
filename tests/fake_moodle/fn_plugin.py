"""The companion plugin ``local_openeducat`` (this repository's
``local_openeducat/``), off until :meth:`PluginMixin.install_plugin`.

Its two paged reads, as ``local_openeducat/classes/external/*.php`` answers
them (``tests/contract/test_plugin.py`` proves this copy against the real
plugin):

* ``local_openeducat_get_course_completions``: the course completion of every
  tracked user (active student enrolment, active account) of many courses,
  changed at or after ``since``; a course without criteria is one row, user 0;
* ``local_openeducat_get_attendance_logs``: the attendance records of the
  activities asked (by id or by course) taken or changed at or after
  ``since``, with their sessions.

"Changed" is kept here as the plugin keeps it: a change time per course and
user, set when the user is enrolled, meets a criterion or completes the
course (whatever the completion's own date), and one per course, set when its
criteria change (every user of the course is listed again). An attendance
record is changed when it was written (``timetaken``) or its session taken or
edited since (``lasttaken``, ``timemodified``): ``mod_attendance_update_user_
status`` sets all three to the current time, as the real plugin does.
"""

from .errors import invalid_parameter, moodle_exception
from .params import DEF, dflt, multi, req, struct
from .schema import ATTENDANCE_FUNCTIONS, PARAMS

COMPLETIONS = "local_openeducat_get_course_completions"
LOGS = "local_openeducat_get_attendance_logs"
PLUGIN_FUNCTIONS = (COMPLETIONS, LOGS)
PLUGIN_VERSION = "2026113000"
MAX_PERPAGE = 5000
DEFAULT_PERPAGE = 1000
MAX_IDS = 1000
SITEID = 1

PARAMS[COMPLETIONS] = struct(
    courseids=multi(req("int"), DEF, []),
    since=dflt("int", 0),
    page=dflt("int", 0),
    perpage=dflt("int", DEFAULT_PERPAGE),
)
PARAMS[LOGS] = struct(
    attendanceids=multi(req("int"), DEF, []),
    courseids=multi(req("int"), DEF, []),
    since=dflt("int", 0),
    page=dflt("int", 0),
    perpage=dflt("int", DEFAULT_PERPAGE),
)


def _warning(item, itemid, code, message):
    return {"item": item, "itemid": itemid, "warningcode": code, "message": message}


def _check_paging(since, page, perpage):
    """The plugin's ``paging::check``."""
    if since < 0 or page < 0 or not 1 <= perpage <= MAX_PERPAGE:
        raise invalid_parameter(
            f"since >= 0, page >= 0 and perpage from 1 to {MAX_PERPAGE}"
        )


def _page(rows, page, perpage):
    start = page * perpage
    return rows[start : start + perpage], len(rows) > start + perpage


class PluginMixin:
    """``local_openeducat``'s functions (mixed in before the core mixins: it
    notes the changes their helpers make)."""

    # ------------------------------------------------------------ install
    def install_plugin(self, service=True):
        """Install the plugin: its functions exist on the site and (with
        ``service``) are in the token's service, listed by site info."""
        with self._lock:
            self.registered_functions |= set(PLUGIN_FUNCTIONS)
            if service:
                self.service_functions |= set(PLUGIN_FUNCTIONS)

    def uninstall_plugin(self):
        with self._lock:
            self.registered_functions -= set(PLUGIN_FUNCTIONS)
            self.service_functions -= set(PLUGIN_FUNCTIONS)

    @property
    def plugin_installed(self):
        return set(PLUGIN_FUNCTIONS) <= self.registered_functions

    def ws_core_webservice_get_site_info(self, serviceshortnames):
        info = super().ws_core_webservice_get_site_info(serviceshortnames)
        for function in info["functions"]:
            if function["name"] in PLUGIN_FUNCTIONS:
                function["version"] = PLUGIN_VERSION
        return info

    # ----------------------------------------------------- change times
    def _changes(self):
        """``(per (course, user), per course)`` change times (created on
        first use: the state of a fresh site is empty)."""
        if not hasattr(self, "_completion_changed"):
            self._completion_changed = {}
            self._completion_course_changed = {}
            self._criteria_pending = {}
        return self._completion_changed, self._completion_course_changed

    def _note_change(self, courseid, userid=0):
        users, courses = self._changes()
        if userid:
            users[courseid, userid] = self.now()
        else:
            courses[courseid] = self.now()

    def enrol(self, courseid, userid, roleid=5, timestart=0, timeend=0, suspend=False):
        with self._lock:
            enrolment = super().enrol(
                courseid, userid, roleid, timestart, timeend, suspend
            )
            self._note_change(courseid, userid)
            return enrolment

    def set_completion_criteria(self, courseid, types=(1,)):
        """Criteria (and completion tracking, as Moodle's form turns it on)."""
        with self._lock:
            super().set_completion_criteria(courseid, types)
            if courseid in self.courses:
                self.courses[courseid]["enablecompletion"] = 1
            self._note_change(courseid)

    def complete_course(self, courseid, userid, when=None):
        """The course completed at ``when`` (default now), noted now."""
        with self._lock:
            super().complete_course(courseid, userid, when)
            self._criteria_pending.pop((courseid, userid), None)
            self._note_change(courseid, userid)

    def complete_criterion(self, courseid, userid, when=None):
        """The user meets the course's criterion at ``when`` (default now);
        the course is completed by :meth:`aggregate_completion` (Moodle's
        cron), dated ``when``."""
        with self._lock:
            self._changes()
            self._criteria_pending[courseid, userid] = when or self.now()
            self._note_change(courseid, userid)

    def aggregate_completion(self, courseid, userid):
        """Moodle's cron: a met criterion completes the course, at its time."""
        with self._lock:
            self._changes()
            when = self._criteria_pending.get((courseid, userid))
            if when is not None:
                self.complete_course(courseid, userid, when)
            return self.course_completions.get((courseid, userid))

    def completion_fixture(self, command, *args):
        """What the contract tests' PHP fixture does on a real Moodle
        (``MOODLE_COMPLETION_FIXTURE``), with the same arguments and answer:
        ``criteria --course=ID``, ``complete --course=ID --user=ID [--time=T]
        [--no-aggregate]``, ``aggregate --course=ID --user=ID``."""
        options = {}
        for arg in map(str, args):
            name, _sep, value = arg.lstrip("-").partition("=")
            options[name] = value
        courseid = int(options["course"])
        if command == "criteria":
            self.set_completion_criteria(courseid, (1,))
            return {"course": courseid, "criteria": 1}
        userid = int(options["user"])
        if command == "complete":
            when = int(options["time"]) if options.get("time") else None
            self.complete_criterion(courseid, userid, when)
            if "no-aggregate" not in options:
                self.aggregate_completion(courseid, userid)
        elif command == "aggregate":
            self.aggregate_completion(courseid, userid)
        else:
            raise ValueError(f"unknown fixture command {command!r}")
        return {
            "course": courseid,
            "user": userid,
            "timecompleted": self.course_completions.get((courseid, userid)),
            "reaggregate": None,
        }

    # ----------------------------------------------- last access (core's)
    def access_course(self, courseid, userid, when=None):
        """The user goes into the course (Moodle's ``user_lastaccess``), as
        ``core_enrol_get_enrolled_users`` reports it (``lastcourseaccess``;
        0 for a user who never did). Core's, kept here with the other times
        the connector reads changes by."""
        with self._lock:
            if not hasattr(self, "_course_access"):
                self._course_access = {}
            self._course_access[courseid, userid] = when or self.now()

    def _enrolled_user_info(self, courseid, enrolment):
        info = super()._enrolled_user_info(courseid, enrolment)
        access = getattr(self, "_course_access", {})
        info["lastcourseaccess"] = access.get((courseid, enrolment["userid"]), 0)
        return info

    # -------------------------------------------------------- completions
    def _tracked_users(self, courseid):
        """Active student enrolments of active accounts, by user id."""
        now = self.now()
        found = []
        for userid in self._course_users(courseid, roles={5}, active_only=True):
            user = self.users.get(userid)
            if user is None or user["deleted"] or user["suspended"]:
                continue
            enrolment = self._enrolment(courseid, userid)
            start, end = enrolment.get("timestart") or 0, enrolment.get("timeend") or 0
            if start > now or (end and end <= now):
                continue
            found.append(userid)
        return found

    def ws_local_openeducat_get_course_completions(
        self, courseids, since, page, perpage
    ):
        courseids = sorted(set(courseids))
        if len(courseids) > MAX_IDS:
            raise invalid_parameter(f"At most {MAX_IDS} courses per call")
        _check_paging(since, page, perpage)
        timenow = self.now()
        allrows = since == 0
        users_changed, courses_changed = self._changes()
        warnings = [
            _warning("course", c, "1", "No access rights in course context")
            for c in courseids
            if c not in self.courses
        ]
        rows = []
        for courseid in courseids:
            course = self.courses.get(courseid)
            if course is None:
                continue
            if courseid == SITEID:
                warnings.append(
                    _warning(
                        "course",
                        courseid,
                        "sitecourse",
                        "The site home page is not a course",
                    )
                )
                continue
            if not self.completion_criteria.get(courseid) or (
                course.get("enablecompletion") != 1
            ):
                rows.append(
                    {
                        "courseid": courseid,
                        "userid": 0,
                        "hascriteria": False,
                        "completed": False,
                        "timecompleted": None,
                    }
                )
                continue
            whole = allrows or courses_changed.get(courseid, -1) >= since
            for userid in self._tracked_users(courseid):
                if not whole and users_changed.get((courseid, userid), -1) < since:
                    continue
                done = self.course_completions.get((courseid, userid))
                rows.append(
                    {
                        "courseid": courseid,
                        "userid": userid,
                        "hascriteria": True,
                        "completed": bool(done),
                        "timecompleted": int(done) if done else None,
                    }
                )
        completions, hasmore = _page(rows, page, perpage)
        return {
            "completions": completions,
            "page": page,
            "perpage": perpage,
            "hasmore": hasmore,
            "timenow": timenow,
            "allrows": allrows,
            "warnings": warnings,
        }

    # ---------------------------------------------------------- attendance
    def ws_local_openeducat_get_attendance_logs(
        self, attendanceids, courseids, since, page, perpage
    ):
        attendanceids = list(dict.fromkeys(attendanceids))
        courseids = list(dict.fromkeys(courseids))
        if not attendanceids and not courseids:
            raise invalid_parameter("Give attendanceids or courseids")
        if len(attendanceids) > MAX_IDS or len(courseids) > MAX_IDS:
            raise invalid_parameter(
                f"At most {MAX_IDS} attendanceids and courseids per call"
            )
        _check_paging(since, page, perpage)
        if not ATTENDANCE_FUNCTIONS & self.registered_functions:
            raise moodle_exception(
                "attendancenotinstalled",
                "The attendance activity (mod_attendance) is not installed on "
                "this site.",
            )
        timenow = self.now()
        warnings = []
        instances = set()
        for attid in attendanceids:
            if attid in self.attendances:
                instances.add(attid)
            else:
                warnings.append(
                    _warning(
                        "attendance",
                        attid,
                        "invalidattendanceid",
                        "No attendance activity with this id",
                    )
                )
        for courseid in courseids:
            if courseid not in self.courses:
                warnings.append(
                    _warning(
                        "course", courseid, "invalidcourseid", "No course with this id"
                    )
                )
                continue
            instances |= {
                attid
                for attid, att in self.attendances.items()
                if att["courseid"] == courseid
            }
        rows = []
        for logid, log in sorted(self.attendance_logs.items()):
            session = self.attendance_sessions.get(log["sessionid"])
            if session is None or session["attendanceid"] not in instances:
                continue
            if since > 0 and not (
                log["timetaken"] >= since
                or (session["lasttaken"] or 0) >= since
                or session["timemodified"] >= since
            ):
                continue
            status = self.attendance_statuses.get(log["statusid"])
            rows.append(
                {
                    "id": logid,
                    "courseid": self.attendances[session["attendanceid"]]["courseid"],
                    "attendanceid": session["attendanceid"],
                    "sessionid": session["id"],
                    "groupid": session["groupid"],
                    "sessdate": session["sessdate"],
                    "duration": session["duration"],
                    "lasttaken": session["lasttaken"],
                    "studentid": log["studentid"],
                    "statusid": log["statusid"],
                    "statusacronym": status["acronym"] if status else None,
                    "timetaken": log["timetaken"],
                    "takenby": log["takenby"],
                    "remarks": log["remarks"],
                }
            )
        logs, hasmore = _page(rows, page, perpage)
        return {
            "logs": logs,
            "page": page,
            "perpage": perpage,
            "hasmore": hasmore,
            "timenow": timenow,
            "warnings": warnings,
        }
