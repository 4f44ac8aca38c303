"""Site info, course categories and courses."""

from .errors import (
    MoodleError,
    course_context_error,
    invalid_parameter,
    missing_record,
    moodle_exception,
)
from .locking import locked

_COURSE_FIELDS = (
    "idnumber",
    "summary",
    "summaryformat",
    "format",
    "showgrades",
    "newsitems",
    "startdate",
    "enddate",
    "numsections",
    "maxbytes",
    "showreports",
    "visible",
    "hiddensections",
    "groupmode",
    "groupmodeforce",
    "defaultgroupingid",
    "enablecompletion",
    "completionnotify",
    "lang",
    "forcetheme",
)


def _unknown_category():
    return moodle_exception("unknowcategory", "Category does not exist")


def _unknown_category_get():
    return moodle_exception("unknowncategory", "Category does not exist")


class CoreMixin:
    # Moodle's course defaults (moodlecourse | courseenddateenabled,
    # courseduration): a course created without an end date ends a year after
    # its start.
    courseenddateenabled = True
    courseduration = 365 * 86400

    # ------------------------------------------------------------- site info
    def ws_core_webservice_get_site_info(self, serviceshortnames):
        user = self.users[self.ws_userid]
        return {
            "sitename": self.sitename,
            "username": user["username"],
            "firstname": user["firstname"],
            "lastname": user["lastname"],
            "fullname": self._fullname(user),
            "lang": "en",
            "userid": user["id"],
            "siteurl": self.base_url,
            "userpictureurl": f"{self.base_url}/theme/image.php/boost/core/1/u/f1",
            "functions": [
                {"name": name, "version": self.function_version(name)}
                for name in sorted(self.service_functions & self.registered_functions)
            ],
            "downloadfiles": 1,
            "uploadfiles": 1,
            "release": self.release,
            "version": self.version,
            "mobilecssurl": "",
            "advancedfeatures": [
                {"name": "usecomments", "value": 1},
                {"name": "usetags", "value": 1},
                {"name": "enablenotes", "value": 1},
                {"name": "messaging", "value": 1},
                {"name": "enableblogs", "value": 1},
                {"name": "enablecompletion", "value": 1},
                {"name": "enablebadges", "value": 1},
                {"name": "mnet_dispatcher_mode", "value": 0},
            ],
            "usercanmanageownfiles": True,
            "userquota": 104857600,
            "usermaxuploadfilesize": 104857600,
            "userhomepage": 1,
            "userprivateaccesskey": "simulatorPrivateAccessKeyNotReal",
            "siteid": 1,
            "sitecalendartype": "gregorian",
            "usercalendartype": "gregorian",
            "userissiteadmin": user["id"] in self.site_admins,
            "theme": "boost",
            "limitconcurrentlogins": 0,
            "policyagreed": 0,
        }

    # ------------------------------------------------------------ categories
    def _category_path(self, catid):
        ids = []
        while catid:
            ids.append(catid)
            catid = self.categories[catid]["parent"]
        return list(reversed(ids))

    def _category_descendants(self, catid):
        found = []
        for cat in self.categories.values():
            if catid in self._category_path(cat["id"])[:-1]:
                found.append(cat["id"])
        return found

    def _category_order(self):
        """Category ids in tree order (parents first, siblings by id)."""
        order = []

        def walk(parent):
            for cid in sorted(
                c for c, v in self.categories.items() if v["parent"] == parent
            ):
                order.append(cid)
                walk(cid)

        walk(0)
        return order

    def _category_info(self, catid, sortorder):
        cat = self.categories[catid]
        path = self._category_path(catid)
        return {
            "id": catid,
            "name": cat["name"],
            "idnumber": cat["idnumber"],
            "description": cat["description"],
            "descriptionformat": cat["descriptionformat"],
            "parent": cat["parent"],
            "sortorder": sortorder,
            "coursecount": sum(
                1 for c in self.courses.values() if c["categoryid"] == catid
            ),
            "visible": cat["visible"],
            "visibleold": cat["visibleold"],
            "timemodified": cat["timemodified"],
            "depth": len(path),
            "path": "/" + "/".join(str(i) for i in path),
            "theme": cat["theme"],
        }

    def _category_matches(self, cat, conditions):
        for key, value in conditions.items():
            if key == "ids":
                wanted = {v.strip() for v in value.split(",")}
                if str(cat["id"]) not in wanted:
                    return False
            elif str(cat[key]) != value:
                return False
        return True

    def ws_core_course_get_categories(self, criteria, addsubcategories):
        conditions = {}
        for crit in criteria:
            key = crit["key"].strip()
            if key not in {
                "id",
                "ids",
                "name",
                "parent",
                "idnumber",
                "visible",
                "theme",
            }:
                raise moodle_exception(
                    "criteriaerror",
                    "Missing permissions to search on a criterion.",
                    f"You can not search on this criteria: {key}",
                )
            conditions.setdefault(key, crit["value"])
        if conditions:
            found = [
                cid
                for cid, cat in self.categories.items()
                if self._category_matches(cat, conditions)
            ]
            if found and addsubcategories:
                for cid in list(found):
                    found += self._category_descendants(cid)
            selected = set(found)
        else:
            selected = set(self.categories)
        return [
            self._category_info(cid, 10000 * (pos + 1))
            for pos, cid in enumerate(self._category_order())
            if cid in selected
        ]

    def _check_category_idnumber(self, idnumber, own_id=None, taken=()):
        if not idnumber:
            return
        if len(idnumber) > 100:
            raise moodle_exception("idnumbertoolong", "ID number is too long")
        used = {c["idnumber"] for c in self.categories.values() if c["id"] != own_id}
        if idnumber in used or idnumber in taken:
            raise moodle_exception(
                "categoryidnumbertaken",
                "ID number is already used for another category",
            )

    def ws_core_course_create_categories(self, categories):
        batch_idnumbers = set()
        for cat in categories:  # validate the whole batch first (transaction)
            if cat["parent"] and cat["parent"] not in self.categories:
                raise _unknown_category()
            if not cat["name"].strip():
                raise moodle_exception(
                    "categorynamerequired", "Category name is required"
                )
            self._check_category_columns(cat)
            self._check_category_idnumber(
                cat.get("idnumber", ""), taken=batch_idnumbers
            )
            batch_idnumbers.add(cat.get("idnumber") or None)
        return [
            {"id": self.add_category(**cat), "name": cat["name"]} for cat in categories
        ]

    @locked
    def add_category(self, name, parent=0, idnumber="", description="", **extra):
        """Create a category without a web-service call; return its id."""
        catid = self._next("category")
        self.categories[catid] = {
            "id": catid,
            "name": name,
            "idnumber": idnumber or "",
            "description": description or "",
            "descriptionformat": extra.get("descriptionformat", 1),
            "parent": parent,
            "visible": 1,
            "visibleold": 1,
            "timemodified": self.now(),
            "theme": extra.get("theme", ""),
        }
        return catid

    def ws_core_course_update_categories(self, categories):
        snapshot = {cid: dict(cat) for cid, cat in self.categories.items()}
        try:
            for change in categories:
                self._update_category(change)
        except Exception:
            self.categories = snapshot
            raise

    def _update_category(self, change):
        cat = self.categories.get(change["id"])
        if cat is None:
            raise _unknown_category_get()
        if "idnumber" in change and change["idnumber"] != cat["idnumber"]:
            self._check_category_idnumber(change["idnumber"], own_id=cat["id"])
        if "parent" in change and change["parent"] != cat["parent"]:
            parent = change["parent"]
            if parent and parent not in self.categories:
                raise _unknown_category_get()
            if parent == cat["id"] or (
                parent and cat["id"] in self._category_path(parent)
            ):
                raise moodle_exception("cannotmovecategory", "Cannot move category")
        if "name" in change and not change["name"].strip():
            raise moodle_exception("categorynamerequired", "Category name is required")
        self._check_category_columns(change)
        for key in ("name", "idnumber", "parent", "description", "theme"):
            if key in change:
                cat[key] = change[key]
        cat["descriptionformat"] = change["descriptionformat"]
        cat["timemodified"] = self.now()

    def ws_core_course_delete_categories(self, categories):
        for item in categories:  # validate first: the call is one transaction
            cat = self.categories.get(item["id"])
            if cat is None:
                raise _unknown_category_get()
            if item["recursive"]:
                continue
            target = item.get("newparent") or cat["parent"]
            if target and target not in self.categories:
                raise _unknown_category_get()
            if not target:
                raise moodle_exception(
                    "movecatcontentstoroot",
                    "Moving the category content to root is not allowed",
                )
            if target == cat["id"] or cat["id"] in self._category_path(target):
                raise moodle_exception(
                    "youcannotdeletecategory",
                    f"You cannot delete category '{cat['name']}' because you can "
                    "neither delete the contents, nor move them elsewhere",
                )
        for item in categories:
            if item["id"] not in self.categories:
                continue
            if item["recursive"]:
                self._delete_category_full(item["id"])
            else:
                target = item.get("newparent") or self.categories[item["id"]]["parent"]
                self._delete_category_move(item["id"], target)

    def _delete_category_full(self, catid):
        for sub in self._category_descendants(catid) + [catid]:
            for course in [c for c in self.courses.values() if c["categoryid"] == sub]:
                self._delete_course(course["id"])
            self.categories.pop(sub, None)

    def _delete_category_move(self, catid, target):
        for cat in self.categories.values():
            if cat["parent"] == catid:
                cat["parent"] = target
        for course in self.courses.values():
            if course["categoryid"] == catid:
                course["categoryid"] = target
        del self.categories[catid]

    def find_category(self, idnumber=None, name=None):
        for cat in self.categories.values():
            if idnumber is not None and cat["idnumber"] == idnumber:
                return cat
            if name is not None and cat["name"] == name:
                return cat
        return None

    # --------------------------------------------------------------- courses
    def _course_defaults(self, courseid, data):
        now = self.now()
        course = {
            "id": courseid,
            "fullname": data["fullname"],
            "shortname": data["shortname"],
            "categoryid": data["categoryid"],
            "idnumber": "",
            "summary": "",
            "summaryformat": 1,
            "format": "topics",
            "showgrades": 1,
            "newsitems": 5,
            "startdate": now - now % 86400,
            "enddate": 0,
            "numsections": 4,
            "maxbytes": 0,
            "showreports": 0,
            "visible": 1,
            "hiddensections": 0,
            "groupmode": 0,
            "groupmodeforce": 0,
            "defaultgroupingid": 0,
            "enablecompletion": 1,
            "completionnotify": 0,
            "lang": "",
            "forcetheme": "",
            "timecreated": now,
            "timemodified": now,
            "customfields": [],
            "courseformatoptions": [],
        }
        for key in _COURSE_FIELDS:
            if key in data:
                course[key] = data[key]
        for key in ("customfields", "courseformatoptions"):
            if key in data:
                course[key] = [dict(item) for item in data[key]]
        return course

    def _check_course_unique(self, data, own_id=None, batch=None):
        batch = batch or {"shortname": set(), "idnumber": set()}
        shortname = data.get("shortname")
        if shortname:
            used = {c["shortname"] for c in self.courses.values() if c["id"] != own_id}
            if shortname in used or shortname in batch["shortname"]:
                raise moodle_exception(
                    "shortnametaken",
                    f"Short name is already used for another course ({shortname})",
                )
        idnumber = data.get("idnumber")
        if idnumber:
            used = {c["idnumber"] for c in self.courses.values() if c["id"] != own_id}
            if idnumber in used or idnumber in batch["idnumber"]:
                raise moodle_exception(
                    "courseidnumbertaken",
                    f"ID number is already used for another course ({idnumber})",
                )

    @staticmethod
    def _check_course_dates(data):
        """``course_validate_dates()``: judges the dates in ``data`` only (an
        update is not compared with the dates the course has)."""
        startdate, enddate = data.get("startdate"), data.get("enddate")
        if enddate and startdate and enddate < startdate:
            raise moodle_exception(
                "enddatebeforestartdate",
                "The course end date must be after the start date.",
            )
        if enddate and not startdate:
            raise moodle_exception(
                "nostartdatenoenddate",
                "A course end date can only be set if a start date is also set.",
            )

    def _course_dates_defaults(self, data):
        """``core_course_create_courses``: no start date is today's midnight,
        no end date a year after the start (when end dates are enabled)."""
        data = dict(data)
        if "startdate" not in data:
            now = self.now()
            data["startdate"] = now - now % 86400
        if "enddate" not in data and self.courseenddateenabled:
            data["enddate"] = data["startdate"] + self.courseduration
        return data

    def ws_core_course_create_courses(self, courses):
        batch = {"shortname": set(), "idnumber": set()}
        courses = [self._course_dates_defaults(data) for data in courses]
        for data in courses:  # one transaction: validate everything first
            if data["categoryid"] not in self.categories:
                raise moodle_exception(
                    "errorcatcontextnotvalid",
                    "You cannot execute functions in the category context (category"
                    f" id:{data['categoryid']}). The context error message was: "
                    "Invalid parameter value detected",
                )
            self._check_course_unique(data, batch=batch)
            self._check_course_dates(data)
            self._check_columns("course", data)
            batch["shortname"].add(data["shortname"])
            if data.get("idnumber"):
                batch["idnumber"].add(data["idnumber"])
        return [
            {"id": self.add_course(**data), "shortname": data["shortname"]}
            for data in courses
        ]

    @locked
    def add_course(self, fullname, shortname, categoryid=1, **data):
        """Create a course (manual enrolment + gradebook) without a WS call."""
        courseid = self._next("course")
        data.update(fullname=fullname, shortname=shortname, categoryid=categoryid)
        self.courses[courseid] = self._course_defaults(courseid, data)
        for method, status in (("manual", 0), ("guest", 1), ("self", 1)):
            iid = self._next("enrol")
            self.enrol_instances[iid] = {
                "id": iid,
                "courseid": courseid,
                "enrol": method,
                "status": status,
                "send_welcome": True,
            }
        self._create_course_gradebook(courseid)
        self._add_sections(courseid, self.courses[courseid]["numsections"] or 0)
        if self.course_qbank and self.moodle51:
            self.add_qbank(courseid)
        return courseid

    def ws_core_course_update_courses(self, courses):
        warnings = []
        for data in courses:
            try:
                self._update_course(data)
            except MoodleError as err:  # Moodle turns each failure into a warning
                err = self._flavoured(err)
                code = err.errorcode
                warnings.append(
                    {
                        "item": "course",
                        "itemid": data["id"],
                        "warningcode": code,
                        "message": err.message,
                    }
                )
        return {"warnings": warnings}

    def _update_course(self, data):
        course = self.courses.get(data["id"])
        if course is None:
            raise missing_record("course")
        if "categoryid" in data and data["categoryid"] not in self.categories:
            raise missing_record("course_categories")
        self._check_course_unique(data, own_id=course["id"])
        self._check_course_dates(data)
        self._check_columns("course", data, "UPDATE")
        for key, value in data.items():
            if key != "id":
                course[key] = value
        course["timemodified"] = self.now()

    def ws_core_course_delete_courses(self, courseids):
        warnings = []
        for courseid in courseids:
            if courseid not in self.courses:
                warnings.append(
                    {
                        "item": "course",
                        "itemid": courseid,
                        "warningcode": "unknowncourseidnumber",
                        "message": f"Unknown course ID {courseid}",
                    }
                )
            elif courseid == 1:
                warnings.append(
                    {
                        "item": "course",
                        "itemid": courseid,
                        "warningcode": "cannotdeletecourse",
                        "message": "You do not have the permission to delete this "
                        f"course{courseid}",
                    }
                )
            else:
                self._delete_course(courseid)
        return {"warnings": warnings}

    def _delete_course(self, courseid):
        """Remove a course and everything in it."""
        self.courses.pop(courseid, None)
        for gid in [g for g, v in self.groups.items() if v["courseid"] == courseid]:
            self.groups.pop(gid)
            self.group_memberships.pop(gid, None)
        for table in (self.enrol_instances, self.enrolments):
            for key in [k for k, v in table.items() if v["courseid"] == courseid]:
                table.pop(key)
        for item in [
            i for i, v in self.grade_items.items() if v["courseid"] == courseid
        ]:
            self.grade_items.pop(item)
            for key in [k for k in self.grades if k[0] == item]:
                self.grades.pop(key)
        for table in (
            self.grade_categories,
            self.course_sections,
            self.course_modules,
            self.assignments,
            self.quizzes,
        ):
            for key in [k for k, v in table.items() if v["courseid"] == courseid]:
                table.pop(key)
        for attid in [
            a for a, v in self.attendances.items() if v["courseid"] == courseid
        ]:
            self._delete_attendance(attid)
        self.completion_criteria.pop(courseid, None)
        for key in [k for k in self.course_completions if k[0] == courseid]:
            self.course_completions.pop(key)

    def delete_course_outside_connector(self, courseid):
        """Delete a course as an admin would in the Moodle UI."""
        with self._lock:
            self._delete_course(courseid)

    def delete_category_outside_connector(self, catid):
        with self._lock:
            self._delete_category_full(catid)

    def find_course(self, idnumber=None, shortname=None):
        for course in self.courses.values():
            if idnumber is not None and course["idnumber"] == idnumber:
                return course
            if shortname is not None and course["shortname"] == shortname:
                return course
        return None

    def _course_or_error(self, courseid):
        course = self.courses.get(courseid)
        if course is None:
            raise course_context_error(courseid)
        return course

    def _course_info(self, course):
        cat = self.categories.get(course["categoryid"])
        contacts = [
            {"id": uid, "fullname": self._fullname(self.users[uid])}
            for uid in self._course_users(course["id"], self.course_contact_roles)
        ]
        info = {
            "id": course["id"],
            "fullname": course["fullname"],
            "displayname": course["fullname"],
            "shortname": course["shortname"],
            "courseimage": "",
            "categoryid": course["categoryid"],
            "categoryname": cat["name"] if cat else "",
            "sortorder": 10000 + course["id"],
            "summary": course["summary"],
            "summaryformat": course["summaryformat"],
            "summaryfiles": [],
            "overviewfiles": [],
            "showactivitydates": True,
            "showcompletionconditions": True,
            "contacts": contacts,
            "enrollmentmethods": sorted(
                {
                    i["enrol"]
                    for i in self.enrol_instances.values()
                    if i["courseid"] == course["id"] and i["status"] == 0
                }
            ),
            "filters": [],
            "courseformatoptions": [dict(o) for o in course["courseformatoptions"]],
        }
        for key in (
            "idnumber",
            "format",
            "showgrades",
            "newsitems",
            "startdate",
            "enddate",
            "maxbytes",
            "showreports",
            "visible",
            "groupmode",
            "groupmodeforce",
            "defaultgroupingid",
            "enablecompletion",
            "completionnotify",
            "lang",
            "timecreated",
            "timemodified",
        ):
            info[key] = course[key]
        if course["customfields"]:  # absent when the course has none
            info["customfields"] = [
                {
                    "name": cf["shortname"],
                    "shortname": cf["shortname"],
                    "type": "text",
                    "valueraw": cf["value"],
                    "value": cf["value"],
                }
                for cf in course["customfields"]
            ]
        info["legacyfiles"] = 0
        info["requested"] = 0
        info["theme"] = course["forcetheme"]
        info["marker"] = 0
        info["calendartype"] = ""
        info["cacherev"] = course["timemodified"]
        return info

    def ws_core_course_get_courses_by_field(self, field, value):
        if field == "":
            selected = list(self.courses.values())
        elif field in {"id", "category"}:
            key = "id" if field == "id" else "categoryid"
            wanted = _php_int(value)
            selected = [c for c in self.courses.values() if c[key] == wanted]
        elif field == "ids":
            wanted = {_php_int(v) for v in value.split(",") if v.strip()}
            selected = [c for c in self.courses.values() if c["id"] in wanted]
        elif field in {"shortname", "idnumber"}:
            selected = [c for c in self.courses.values() if c[field] == value]
        elif field == "sectionid":
            selected = []
        else:
            raise invalid_parameter("Invalid field name")
        if field != "":
            selected = [c for c in selected if c["id"] != 1]
        selected.sort(key=lambda c: c["id"])
        return {"courses": [self._course_info(c) for c in selected], "warnings": []}


def _php_int(value):
    """PHP ``clean_param($v, PARAM_INT)``: leading integer or 0."""
    value = value.strip()
    digits = ""
    for pos, char in enumerate(value):
        if char.isdigit() or (pos == 0 and char == "-"):
            digits += char
        else:
            break
    try:
        return int(digits)
    except ValueError:
        return 0
