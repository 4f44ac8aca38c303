"""Gradebook, assignments, quizzes and course completion."""

from .errors import invalid_user, missing_record, moodle_exception

COMPLETION_TITLES = {
    1: ("Self completion", "Marking yourself complete"),
    2: ("Date", "Date"),
    3: ("Unenrolment", "Unenrolment"),
    4: ("Activity completion", "Activity completion"),
    5: ("Duration", "Duration"),
    6: ("Course grade", "Achieving grade"),
    7: ("Manual completion by others", "Marked complete by role"),
    8: ("Course completion", "Completion of other courses"),
}


def _num(value):
    """Floats that are whole numbers are printed like PHP does (``100``)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _fmt(value):
    return f"{value:.2f}"


class GradesMixin:
    # -------------------------------------------------------------- gradebook
    def _create_course_gradebook(self, courseid):
        catid = self._next("grade_category")
        self.grade_categories[catid] = {
            "id": catid,
            "courseid": courseid,
            "fullname": "?",
            "parent": None,
            "itemid": None,
        }
        itemid = self._new_grade_item(
            courseid,
            itemtype="course",
            iteminstance=catid,
            itemname=None,
            idnumber=None,
            itemnumber=None,
            categoryid=None,
        )
        self.grade_categories[catid]["itemid"] = itemid

    def _top_grade_category(self, courseid):
        for cat in self.grade_categories.values():
            if cat["courseid"] == courseid and cat["parent"] is None:
                return cat["id"]
        raise KeyError(courseid)

    def _new_grade_item(self, courseid, **data):
        itemid = self._next("grade_item")
        item = {
            "id": itemid,
            "courseid": courseid,
            "itemname": "",
            "itemtype": "manual",
            "itemmodule": None,
            "iteminstance": None,
            "itemnumber": 0,
            "idnumber": "",
            "categoryid": self._top_grade_category(courseid)
            if data.get("itemtype", "manual") not in {"course"}
            else None,
            "grademin": 0.0,
            "grademax": 100.0,
            "gradepass": 0.0,
            "cmid": None,
            "sortorder": self._next(f"sortorder{courseid}"),
        }
        item.update(data)
        self.grade_items[itemid] = item
        return itemid

    def _new_cm(self, courseid, modname, instance, section=0, visible=1):
        cmid = self._next("cm")
        self.course_modules[cmid] = {
            "id": cmid,
            "courseid": courseid,
            "modname": modname,
            "instance": instance,
            "section": section,
            "visible": visible,
            "contextid": self._next("context"),
        }
        return cmid

    def add_grade_category(self, courseid, name, parent=None):
        """Add a grade category (with its category total item); return its id."""
        with self._lock:
            catid = self._next("grade_category")
            parent = parent or self._top_grade_category(courseid)
            self.grade_categories[catid] = {
                "id": catid,
                "courseid": courseid,
                "fullname": name,
                "parent": parent,
            }
            self.grade_categories[catid]["itemid"] = self._new_grade_item(
                courseid,
                itemtype="category",
                iteminstance=catid,
                itemname=None,
                idnumber=None,
                itemnumber=None,
                categoryid=None,
            )
            return catid

    def add_manual_item(
        self, courseid, name, grademax=100.0, category=None, idnumber=""
    ):
        """Add a manual grade item; return the grade item id."""
        with self._lock:
            data = {"itemname": name, "grademax": float(grademax), "idnumber": idnumber}
            if category:
                data["categoryid"] = category
            return self._new_grade_item(courseid, **data)

    def set_manual_grade(self, item_id, userid, grade):
        """Set (or clear with ``None``) the gradebook grade of any grade item."""
        with self._lock:
            if grade is None:
                self.grades.pop((item_id, userid), None)
            else:
                self.grades[(item_id, userid)] = {
                    "finalgrade": float(grade),
                    "timemodified": self.now(),
                }

    def _child_entries(self, catid):
        entries = [
            (item["sortorder"], "item", item)
            for item in self.grade_items.values()
            if item["categoryid"] == catid
            and item["itemtype"] not in {"course", "category"}
        ]
        for cat in self.grade_categories.values():
            if cat["parent"] == catid:
                item = self.grade_items[cat["itemid"]]
                entries.append((item["sortorder"], "category", cat))
        return sorted(entries, key=lambda e: e[0])

    def _walk_grades(self, catid, userid, rows):
        """Append the rows of ``catid``; return ``(graderaw, grademax)``."""
        total, graded_max, all_max, any_grade = 0.0, 0.0, 0.0, False
        for _sort, kind, entry in self._child_entries(catid):
            if kind == "item":
                grade = self.grades.get((entry["id"], userid))
                raw = grade["finalgrade"] if grade else None
                grademax = entry["grademax"]
                rows.append(self._grade_row(entry, raw, grademax, grade))
            else:
                raw, grademax = self._walk_grades(entry["id"], userid, rows)
                item = self.grade_items[entry["itemid"]]
                rows.append(self._grade_row(item, raw, grademax, None))
            all_max += grademax
            if raw is not None:
                total += raw
                graded_max += grademax
                any_grade = True
        if any_grade:
            return total, graded_max
        return None, all_max

    def _grade_row(self, item, raw, grademax, grade):
        row = {
            "id": item["id"],
            "itemname": item["itemname"],
            "itemtype": item["itemtype"],
            "itemmodule": item["itemmodule"],
            "iteminstance": item["iteminstance"],
            "itemnumber": item["itemnumber"],
            "idnumber": item["idnumber"],
            "categoryid": item["categoryid"],
            "outcomeid": None,
            "scaleid": None,
            "locked": False,
        }
        if item["cmid"]:
            row["cmid"] = item["cmid"]
        percent = None
        if raw is not None and grademax:
            percent = (raw - item["grademin"]) / (grademax - item["grademin"]) * 100
        row.update(
            graderaw=_num(raw) if raw is not None else None,
            gradedatesubmitted=None,
            gradedategraded=grade["timemodified"] if grade else None,
            gradehiddenbydate=False,
            gradeneedsupdate=False,
            gradeishidden=False,
            gradeislocked=False,
            gradeisoverridden=False,
            gradeformatted=_fmt(raw) if raw is not None else "-",
            grademin=_num(item["grademin"]),
            grademax=_num(float(grademax)),
            rangeformatted=f"{_num(item['grademin'])}&ndash;{_num(float(grademax))}",
            percentageformatted=f"{_fmt(percent)} %" if percent is not None else "-",
            feedback="",
            # a grade Moodle has no record of reads as a new grade_grade
            # (FORMAT_MOODLE, 0); stored grades here carry FORMAT_PLAIN (2)
            feedbackformat=2 if grade or raw is not None else 0,
        )
        return row

    def _report_users(self, courseid, userid, groupid):
        if userid:
            user = self.users.get(userid)
            if user is None or user["deleted"]:
                raise missing_record("user")
            return [userid]
        users = self._course_users(courseid, roles={5}, active_only=True)
        if groupid:
            members = self.group_memberships.get(groupid, set())
            users = [u for u in users if u in members]
        return users

    def _maxdepth(self, courseid):
        depth = 1
        for cat in self.grade_categories.values():
            if cat["courseid"] != courseid:
                continue
            level, parent = 1, cat["parent"]
            while parent:
                level += 1
                parent = self.grade_categories[parent]["parent"]
            depth = max(depth, level)
        return depth + 1

    def ws_gradereport_user_get_grade_items(self, courseid, userid, groupid):
        course = self.courses.get(courseid)
        if course is None:
            raise missing_record("course")
        top = self._top_grade_category(courseid)
        usergrades = []
        for uid in self._report_users(courseid, userid, groupid):
            rows = []
            raw, grademax = self._walk_grades(top, uid, rows)
            course_item = self.grade_items[self.grade_categories[top]["itemid"]]
            rows.append(self._grade_row(course_item, raw, grademax, None))
            user = self.users[uid]
            usergrades.append(
                {
                    "courseid": courseid,
                    "courseidnumber": course["idnumber"],
                    "userid": uid,
                    "userfullname": self._fullname(user),
                    "useridnumber": user["idnumber"],
                    "maxdepth": self._maxdepth(courseid),
                    "gradeitems": rows,
                }
            )
        return {"usergrades": usergrades, "warnings": []}

    # ------------------------------------------------------------ assignments
    def add_assignment(self, courseid, name, grademax=100.0, idnumber=""):
        """Add an assignment activity with its grade item; return the instance id."""
        with self._lock:
            assign_id = self._next("assign")
            cmid = self._new_cm(courseid, "assign", assign_id)
            itemid = self._new_grade_item(
                courseid,
                itemtype="mod",
                itemmodule="assign",
                iteminstance=assign_id,
                itemname=name,
                idnumber=idnumber,
                grademax=float(grademax),
                cmid=cmid,
            )
            self.assignments[assign_id] = {
                "id": assign_id,
                "courseid": courseid,
                "name": name,
                "grade": grademax,
                "cmid": cmid,
                "itemid": itemid,
                "timemodified": self.now(),
            }
            return assign_id

    def grade_assignment(self, assign_id, userid, grade, when=None):
        """Grade a user in an assignment (assign table and gradebook)."""
        with self._lock:
            assign = self.assignments[assign_id]
            when = when or self.now()
            key = (assign_id, userid)
            record = self.assign_grades.get(key)
            if record is None:
                record = self.assign_grades[key] = {
                    "id": self._next("assign_grade"),
                    "userid": userid,
                    "attemptnumber": 0,
                    "timecreated": when,
                    "grader": -1,
                }
            record.update(grade=float(grade), timemodified=when)
            self.grades[(assign["itemid"], userid)] = {
                "finalgrade": float(grade),
                "timemodified": when,
            }

    def _assignment_info(self, assign):
        info = {
            "id": assign["id"],
            "cmid": assign["cmid"],
            "course": assign["courseid"],
            "name": assign["name"],
            "nosubmissions": 0,
            "submissiondrafts": 0,
            "sendnotifications": 0,
            "sendlatenotifications": 0,
            "sendstudentnotifications": 1,
            "duedate": 0,
            "allowsubmissionsfromdate": 0,
            "grade": _num(float(assign["grade"])),
            "timemodified": assign["timemodified"],
            "completionsubmit": 0,
            "cutoffdate": 0,
            "gradingduedate": 0,
            "teamsubmission": 0,
            "requireallteammemberssubmit": 0,
            "teamsubmissiongroupingid": 0,
            "blindmarking": 0,
            "hidegrader": 0,
            "revealidentities": 0,
            "attemptreopenmethod": "untilpass",
            "maxattempts": -1,
            "markingworkflow": 0,
            "markingallocation": 0,
            "requiresubmissionstatement": 0,
            "preventsubmissionnotingroup": 0,
            "configs": [],
            "intro": "",
            "introformat": 1,
            "introfiles": [],
            "introattachments": [],
        }
        return info

    def ws_mod_assign_get_assignments(
        self, courseids, capabilities, includenotenrolledcourses
    ):
        mine = sorted(
            {
                e["courseid"]
                for e in self.enrolments.values()
                if e["userid"] == self.ws_userid
            }
        )
        wanted = courseids or mine
        courses, warnings = [], []
        for courseid in wanted:
            course = self.courses.get(courseid)
            allowed = course is not None and (
                courseid in mine or includenotenrolledcourses
            )
            if not allowed:
                warnings.append(
                    {
                        "item": "course",
                        "itemid": courseid,
                        "warningcode": "2",
                        "message": "User is not enrolled or does not have requested "
                        "capability",
                    }
                )
                continue
            courses.append(
                {
                    "id": courseid,
                    "fullname": course["fullname"],
                    "shortname": course["shortname"],
                    "timemodified": course["timemodified"],
                    "assignments": [
                        self._assignment_info(a)
                        for _aid, a in sorted(self.assignments.items())
                        if a["courseid"] == courseid
                    ],
                }
            )
        return {"courses": courses, "warnings": warnings}

    def ws_mod_assign_get_grades(self, assignmentids, since):
        assignments, warnings = [], []
        for assign_id in assignmentids:
            grades = [
                {
                    "id": rec["id"],
                    "userid": rec["userid"],
                    "attemptnumber": rec["attemptnumber"],
                    "timecreated": rec["timecreated"],
                    "timemodified": rec["timemodified"],
                    "grader": rec["grader"],
                    "grade": f"{rec['grade']:.5f}",
                }
                for (aid, _uid), rec in sorted(self.assign_grades.items())
                if aid == assign_id and rec["timemodified"] >= since
            ]
            if assign_id in self.assignments and grades:
                assignments.append({"assignmentid": assign_id, "grades": grades})
            else:
                warnings.append(
                    {
                        "item": "assignment",
                        "itemid": assign_id,
                        "warningcode": "3",
                        "message": "No grades found",
                    }
                )
        return {"assignments": assignments, "warnings": warnings}

    # ---------------------------------------------------------------- quizzes
    def add_quiz(self, courseid, name, grade=10.0, gradetopass=None, idnumber=""):
        """Add a quiz with its grade item; return the quiz instance id."""
        with self._lock:
            quiz_id = self._next("quiz")
            cmid = self._new_cm(courseid, "quiz", quiz_id)
            itemid = self._new_grade_item(
                courseid,
                itemtype="mod",
                itemmodule="quiz",
                iteminstance=quiz_id,
                itemname=name,
                idnumber=idnumber,
                grademax=float(grade),
                gradepass=float(gradetopass or 0),
                cmid=cmid,
            )
            self.quizzes[quiz_id] = {
                "id": quiz_id,
                "courseid": courseid,
                "name": name,
                "grade": float(grade),
                "gradepass": float(gradetopass or 0),
                "cmid": cmid,
                "itemid": itemid,
            }
            return quiz_id

    def add_quiz_attempt(self, quiz_id, userid, grade, when=None):
        """Record a finished attempt; the gradebook keeps the best grade."""
        with self._lock:
            quiz = self.quizzes[quiz_id]
            self.quiz_attempts.append(
                {"quiz": quiz_id, "userid": userid, "grade": float(grade)}
            )
            best = self._best_quiz_grade(quiz_id, userid)
            self.grades[(quiz["itemid"], userid)] = {
                "finalgrade": best,
                "timemodified": when or self.now(),
            }

    def _best_quiz_grade(self, quiz_id, userid):
        grades = [
            a["grade"]
            for a in self.quiz_attempts
            if a["quiz"] == quiz_id and a["userid"] == userid
        ]
        return max(grades) if grades else None

    def ws_mod_quiz_get_quizzes_by_courses(self, courseids):
        mine = sorted(
            {
                e["courseid"]
                for e in self.enrolments.values()
                if e["userid"] == self.ws_userid
            }
        )
        quizzes, warnings = [], []
        for courseid in courseids or mine:
            if courseid not in self.courses:
                warnings.append(
                    {
                        "item": "course",
                        "itemid": courseid,
                        "warningcode": "1",
                        "message": "No access rights in course context",
                    }
                )
                continue
            for quiz_id, quiz in sorted(self.quizzes.items()):
                if quiz["courseid"] == courseid:
                    quizzes.append(self._quiz_info(quiz_id, quiz))
        return {"quizzes": quizzes, "warnings": warnings}

    @staticmethod
    def _quiz_info(quiz_id, quiz):
        return {
            "id": quiz_id,
            "course": quiz["courseid"],
            "coursemodule": quiz["cmid"],
            "name": quiz["name"],
            "intro": "",
            "introformat": 1,
            "introfiles": [],
            "timeopen": 0,
            "timeclose": 0,
            "timelimit": 0,
            "attempts": 0,
            "grademethod": 1,
            "decimalpoints": 2,
            "sumgrades": 0,
            "grade": _num(quiz["grade"]),
            "hasfeedback": 0,
            "hasquestions": 0,
            "visible": True,
            "groupmode": 0,
            "groupingid": 0,
        }

    def ws_mod_quiz_get_user_best_grade(self, quizid, userid):
        quiz = self.quizzes.get(quizid)
        if quiz is None:
            raise missing_record("quiz")
        userid = userid or self.ws_userid
        user = self.users.get(userid)
        if user is None or user["deleted"]:
            raise missing_record("user")
        best = self._best_quiz_grade(quizid, userid)
        if best is None:
            return {"hasgrade": False, "warnings": []}
        result = {"hasgrade": True, "grade": best}
        if quiz["gradepass"]:
            result["gradetopass"] = quiz["gradepass"]
        result["warnings"] = []
        return result

    # ------------------------------------------------------------- completion
    def set_completion_criteria(self, courseid, types=(1,)):
        """Set the course completion criteria types (1 self, 2 date, …)."""
        with self._lock:
            self.completion_criteria[courseid] = list(types)

    def complete_course(self, courseid, userid, when=None):
        """Mark a user as having completed a course."""
        with self._lock:
            self.course_completions[(courseid, userid)] = when or self.now()

    def ws_core_completion_get_course_completion_status(self, courseid, userid):
        if courseid not in self.courses:
            raise missing_record("course")
        user = self.users.get(userid)
        if user is None or user["deleted"]:
            raise invalid_user()
        if 5 not in self.enrolled_roles(courseid, userid):
            raise moodle_exception(
                "usernotenroled", "User is not enrolled in this course"
            )
        criteria = self.completion_criteria.get(courseid)
        if not criteria:
            raise moodle_exception(
                "nocriteriaset", "No completion criteria set for this course"
            )
        done = self.course_completions.get((courseid, userid))
        completions = []
        for ctype in criteria:
            title, requirement = COMPLETION_TITLES.get(ctype, (f"Criteria {ctype}", ""))
            completions.append(
                {
                    "type": ctype,
                    "title": title,
                    "status": "Yes" if done else "No",
                    "complete": bool(done),
                    "timecompleted": done,
                    "details": {
                        "type": title,
                        "criteria": title,
                        "requirement": requirement,
                        "status": "",
                    },
                }
            )
        return {
            "completionstatus": {
                "completed": bool(done),
                "aggregation": 1,
                "completions": completions,
            },
            "warnings": [],
        }
