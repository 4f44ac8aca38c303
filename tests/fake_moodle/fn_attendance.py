"""The third-party ``mod_attendance`` plugin (and its legacy names)."""

from .errors import invalid_parameter, missing_record

DEFAULT_STATUSES = (  # creation order: ids come out P, A, L, E
    ("P", "Present", 2.0),
    ("A", "Absent", 0.0),
    ("L", "Late", 1.0),
    ("E", "Excused", 1.0),
)


def _num(value):
    return int(value) if float(value).is_integer() else value


class AttendanceMixin:
    # ---------------------------------------------------------------- helpers
    def add_attendance(self, courseid, name, groupmode=0, intro=""):
        """Create an attendance instance (statuses, grade item); return its id."""
        with self._lock:
            att_id = self._next("attendance")
            cmid = self._new_cm(courseid, "attendance", att_id)
            itemid = self._new_grade_item(
                courseid,
                itemtype="mod",
                itemmodule="attendance",
                iteminstance=att_id,
                itemname=name,
                grademax=100.0,
                cmid=cmid,
            )
            self.attendances[att_id] = {
                "id": att_id,
                "courseid": courseid,
                "name": name,
                "intro": intro,
                "groupmode": groupmode,
                "cmid": cmid,
                "itemid": itemid,
                "grade": 100,
            }
            for acronym, description, grade in DEFAULT_STATUSES:
                self.add_attendance_status(att_id, acronym, description, grade)
            return att_id

    def add_attendance_status(self, attendance_id, acronym, description, grade=0.0):
        """Add a status to an instance (status ids are one global sequence)."""
        with self._lock:
            status_id = self._next("att_status")
            self.attendance_statuses[status_id] = {
                "id": status_id,
                "attendanceid": attendance_id,
                "acronym": acronym,
                "description": description,
                "grade": float(grade),
                "visible": 1,
                "deleted": 0,
                "setnumber": 0,
            }
            return status_id

    def add_attendance_session(self, attendance_id, sessiontime, duration=0, **data):
        """Create a session without a web-service call; return its id."""
        with self._lock:
            session_id = self._next("att_session")
            self.attendance_sessions[session_id] = {
                "id": session_id,
                "attendanceid": attendance_id,
                "groupid": data.get("groupid", 0),
                "sessdate": sessiontime,
                "duration": duration,
                "lasttaken": None,
                "lasttakenby": 0,
                "timemodified": self.now(),
                "description": data.get("description", ""),
                "descriptionformat": 1,
                "studentscanmark": 0,
                "absenteereport": 1,
                "autoassignstatus": 0,
                "preventsharedip": 0,
                "preventsharediptime": None,
                "statusset": 0,
                "includeqrcode": 0,
                "studentsearlyopentime": 0,
            }
            return session_id

    def set_attendance_status_by_acronym(self, session_id, userid, acronym, when=None):
        """Record a status for a student, as a teacher would in the UI."""
        with self._lock:
            session = self.attendance_sessions[session_id]
            status = next(
                s for s in self._session_statuses(session) if s["acronym"] == acronym
            )
            self._take(session, userid, status["id"], self.ws_userid, "", when)

    def _session_statuses(self, session):
        statuses = [
            s
            for s in self.attendance_statuses.values()
            if s["attendanceid"] == session["attendanceid"]
            and not s["deleted"]
            and s["setnumber"] == session["statusset"]
        ]
        return sorted(statuses, key=lambda s: (-s["grade"], s["id"]))

    def _take(self, session, studentid, statusid, takenby, statusset, when=None):
        when = when or self.now()
        for log in self.attendance_logs.values():
            if log["sessionid"] == session["id"] and log["studentid"] == studentid:
                break
        else:
            log_id = self._next("att_log")
            log = self.attendance_logs[log_id] = {
                "id": log_id,
                "sessionid": session["id"],
                "studentid": studentid,
                "remarks": None,
            }
        log.update(
            statusid=statusid, statusset=statusset, timetaken=when, takenby=takenby
        )
        session.update(lasttaken=when, lasttakenby=takenby, timemodified=when)

    def _delete_attendance(self, att_id):
        att = self.attendances.pop(att_id)
        for sid in [
            s
            for s, v in self.attendance_sessions.items()
            if v["attendanceid"] == att_id
        ]:
            self._delete_session(sid)
        for sid in [
            s
            for s, v in self.attendance_statuses.items()
            if v["attendanceid"] == att_id
        ]:
            self.attendance_statuses.pop(sid)
        self.grade_items.pop(att["itemid"], None)
        for key in [k for k in self.grades if k[0] == att["itemid"]]:
            self.grades.pop(key)
        self.course_modules.pop(att["cmid"], None)

    def _delete_session(self, session_id):
        self.attendance_sessions.pop(session_id)
        for log_id in [
            k for k, v in self.attendance_logs.items() if v["sessionid"] == session_id
        ]:
            self.attendance_logs.pop(log_id)

    def _recalculate_attendance_grades(self, att_id):
        att = self.attendances[att_id]
        statuses = {s["id"]: s for s in self.attendance_statuses.values()}
        best = max(
            (s["grade"] for s in statuses.values() if s["attendanceid"] == att_id),
            default=0,
        )
        sessions = {
            sid
            for sid, s in self.attendance_sessions.items()
            if s["attendanceid"] == att_id
        }
        per_user = {}
        for log in self.attendance_logs.values():
            if log["sessionid"] in sessions and log["statusid"] in statuses:
                points = statuses[log["statusid"]]["grade"]
                got, total = per_user.get(log["studentid"], (0.0, 0.0))
                per_user[log["studentid"]] = (got + points, total + best)
        for key in [k for k in self.grades if k[0] == att["itemid"]]:
            self.grades.pop(key)
        for userid, (got, total) in per_user.items():
            if total:
                self.grades[(att["itemid"], userid)] = {
                    "finalgrade": round(got / total * att["grade"], 5),
                    "timemodified": self.now(),
                }

    def _session_info(self, session):
        att = self.attendances[session["attendanceid"]]
        courseid = att["courseid"]
        students = self._course_users(courseid, roles={5})
        if session["groupid"]:
            members = self.group_memberships.get(session["groupid"], set())
            students = [u for u in students if u in members]
        users = sorted(
            (self.users[u] for u in students),
            key=lambda u: (u["lastname"], u["firstname"], u["id"]),
        )
        info = dict(session)
        info["courseid"] = courseid
        info["statuses"] = [
            {**s, "grade": _num(s["grade"])} for s in self._session_statuses(session)
        ]
        info["attendance_log"] = [
            {
                "studentid": log["studentid"],
                "statusid": str(log["statusid"]),
                "remarks": log["remarks"],
                "id": str(log["id"]),
            }
            for _lid, log in sorted(self.attendance_logs.items())
            if log["sessionid"] == session["id"]
        ]
        info["users"] = [
            {"id": u["id"], "firstname": u["firstname"], "lastname": u["lastname"]}
            for u in users
        ]
        return info

    # --------------------------------------------------------------- web api
    def ws_mod_attendance_add_attendance(self, courseid, name, intro, groupmode):
        if courseid not in self.courses:
            raise missing_record("course")
        return {"attendanceid": self.add_attendance(courseid, name, groupmode, intro)}

    def ws_mod_attendance_remove_attendance(self, attendanceid):
        if attendanceid not in self.attendances:
            raise missing_record("attendance")
        self._delete_attendance(attendanceid)
        return True

    def ws_mod_attendance_add_session(
        self,
        attendanceid,
        description,
        sessiontime,
        duration,
        groupid,
        addcalendarevent,
    ):
        att = self.attendances.get(attendanceid)
        if att is None:
            raise missing_record("attendance")
        if groupid:
            group = self.groups.get(groupid)
            if (
                not att["groupmode"]
                or group is None
                or group["courseid"] != att["courseid"]
            ):
                raise invalid_parameter("Invalid group id")
        session_id = self.add_attendance_session(
            attendanceid,
            sessiontime,
            duration,
            groupid=groupid,
            description=description,
        )
        return {"sessionid": session_id}

    def ws_mod_attendance_remove_session(self, sessionid):
        session = self.attendance_sessions.get(sessionid)
        if session is None:
            raise missing_record("attendance_sessions")
        self._delete_session(sessionid)
        self._recalculate_attendance_grades(session["attendanceid"])
        return True

    def ws_mod_attendance_get_session(self, sessionid):
        session = self.attendance_sessions.get(sessionid)
        if session is None:
            raise missing_record("attendance_sessions")
        return self._session_info(session)

    def ws_mod_attendance_get_sessions(self, attendanceid):
        if attendanceid not in self.attendances:
            raise missing_record("attendance")
        return [
            self._session_info(s)
            for _sid, s in sorted(self.attendance_sessions.items())
            if s["attendanceid"] == attendanceid
        ]

    def ws_mod_attendance_update_user_status(
        self, sessionid, studentid, takenbyid, statusid, statusset
    ):
        session = self.attendance_sessions.get(sessionid)
        if session is None:
            raise missing_record("attendance_sessions")
        self._take(session, studentid, statusid, takenbyid, statusset)

    def ws_mod_attendance_get_courses_with_today_sessions(self, userid):
        userid = userid or self.ws_userid
        if userid not in self.users:
            raise missing_record("user")
        now = self.now()
        start = now - now % 86400  # today, UTC
        result = []
        for courseid in sorted(
            {e["courseid"] for e in self.enrolments.values() if e["userid"] == userid}
        ):
            instances = []
            for att_id, att in sorted(self.attendances.items()):
                if att["courseid"] != courseid:
                    continue
                today = [
                    dict(s)
                    for _sid, s in sorted(self.attendance_sessions.items())
                    if s["attendanceid"] == att_id
                    and start <= s["sessdate"] < start + 86400
                ]
                if today:
                    instances.append({"name": att["name"], "today_sessions": today})
            if instances:
                course = self.courses[courseid]
                result.append(
                    {
                        "shortname": course["shortname"],
                        "fullname": course["fullname"],
                        "attendance_instances": instances,
                    }
                )
        return result
