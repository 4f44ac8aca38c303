"""Users, enrolments and groups."""

import hashlib
import re

from .errors import (
    MoodleError,
    coding_error,
    invalid_parameter,
    invalid_user,
    missing_record,
    moodle_exception,
    user_deleted,
)
from .locking import locked
from .params import AUTHS, LANGS, THEMES

_PICTURE = "/theme/image.php/boost/core/1/u/"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_NOT_USERNAME = re.compile(r"[^-.@_a-z0-9]")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
ROLE_SHORTNAMES = {
    1: "manager",
    2: "coursecreator",
    3: "editingteacher",
    4: "teacher",
    5: "student",
    6: "guest",
    7: "user",
    8: "frontpage",
}
_USER_FIELDS = (
    "username",
    "firstname",
    "lastname",
    "email",
    "auth",
    "idnumber",
    "lang",
    "calendartype",
    "theme",
    "city",
    "country",
    "timezone",
    "description",
    "firstnamephonetic",
    "lastnamephonetic",
    "middlename",
    "alternatename",
    "interests",
    "institution",
    "department",
    "phone1",
    "phone2",
    "address",
    "maildisplay",
    "mailformat",
    "password",
)


def _clean_country(user):
    """``core_user::clean_field()``: a country that is not one of the site's
    choices becomes the site default (none), never a database error."""
    country = user.get("country")
    if country and not _COUNTRY.match(country):
        user["country"] = ""


def _group_info(group):
    return {
        key: group[key]
        for key in (
            "id",
            "courseid",
            "name",
            "description",
            "descriptionformat",
            "enrolmentkey",
            "idnumber",
            "visibility",
            "participation",
        )
    }


class PeopleMixin:
    # ----------------------------------------------------------------- users
    @staticmethod
    def _fullname(user):
        return f"{user['firstname']} {user['lastname']}"

    def _user_defaults(self, userid, data):
        user = {
            "id": userid,
            "idnumber": "",
            "auth": "manual",
            "lang": "en",
            "calendartype": "gregorian",
            "theme": "",
            "city": "",
            "country": "",
            "timezone": "99",
            "description": None,  # NULL in the database until set
            "institution": "",
            "department": "",
            "phone1": "",
            "phone2": "",
            "address": "",
            "maildisplay": 2,
            "mailformat": 1,
            "trackforums": 0,
            "suspended": 0,
            "confirmed": 1,
            "deleted": 0,
            "password": "",
            "customfields": [],
            "preferences": [],
            "timecreated": self.now(),
        }
        for key in _USER_FIELDS:
            if key in data:
                user[key] = data[key]
        for key in ("customfields", "preferences"):
            if key in data:
                user[key] = [dict(item) for item in data[key]]
        return user

    def _live_users(self):
        return (u for u in self.users.values() if not u["deleted"])

    def _email_taken(self, email, own_id=None):
        email = email.lower()
        return any(
            u["email"].lower() == email and u["id"] != own_id
            for u in self._live_users()
        )

    def _check_password(self, password):
        if len(password) < self.password_min_length:
            rule = (
                f"<div>Passwords must be at least {self.password_min_length} "
                "characters long.</div>"
            )
            raise moodle_exception(rule, f"error/{rule}")

    def _check_new_user(self, user, batch_usernames, batch_emails):
        for field in ("username", "firstname", "lastname"):
            if user[field].strip() == "":
                raise invalid_parameter(f"The field {field} cannot be blank")
        username = user["username"]
        if username in batch_usernames or any(
            u["username"] == username for u in self.users.values()
        ):
            raise invalid_parameter(f"Username already exists: {username}")
        if user["auth"] not in AUTHS:
            raise invalid_parameter(f"Invalid authentication type: {user['auth']}")
        if user["lang"] not in LANGS:
            raise invalid_parameter(f"Invalid language code: {user['lang']}")
        if user.get("theme") and user["theme"] not in THEMES:
            raise invalid_parameter(f"Invalid theme: {user['theme']}")
        if (
            user["auth"] == "manual"
            and not user.get("password")
            and not user.get("createpassword")
        ):
            raise invalid_parameter(
                "Invalid password: you must provide a password, or set createpassword."
            )
        email = user["email"]
        if not _EMAIL.match(email):
            raise invalid_parameter(f"Email address is invalid: {email}")
        if not self.allow_accounts_same_email and (
            self._email_taken(email) or email.lower() in batch_emails
        ):
            raise invalid_parameter(f"Email address already exists: {email}")
        if user.get("password"):
            self._check_password(user["password"])

    def ws_core_user_create_users(self, users):
        usernames, emails = set(), set()
        for user in users:  # one transaction: nothing is created on error
            self._check_new_user(user, usernames, emails)
            _clean_country(user)
            self._check_columns("user", user)
            usernames.add(user["username"])
            emails.add(user["email"].lower())
        return [
            {"id": self.add_user(**user), "username": user["username"]}
            for user in users
        ]

    @locked
    def add_user(self, username, firstname="Test", lastname="User", email=None, **data):
        """Create a user without a web-service call; return the id."""
        userid = self._next("user")
        data.update(
            username=username,
            firstname=firstname,
            lastname=lastname,
            email=email or f"{username}@example.com",
        )
        if data.pop("createpassword", False) and not data.get("password"):
            data["password"] = "Generated-1"
        self.users[userid] = self._user_defaults(userid, data)
        return userid

    def _user_update_warning(self, data):
        user = self.users.get(data["id"])
        code = message = None
        if user is None:
            code, message = "invaliduserid", "Invalid user ID"
        elif user["id"] in self.site_admins and user["id"] != self.ws_userid:
            code, message = "usernotupdatedadmin", "Cannot update admin accounts"
        elif user["deleted"]:
            code = "usernotupdateddeleted"
            message = f"error/{code}"  # the string is missing from Moodle's lang
        elif user["id"] == 1:
            code, message = "usernotupdatedguest", "Cannot update guest account"
        elif "email" in data and data["email"] != user["email"]:
            if not _EMAIL.match(data["email"]):
                code, message = "useremailinvalid", "Invalid email address"
            elif not self.allow_accounts_same_email and self._email_taken(
                data["email"], own_id=user["id"]
            ):
                code, message = "useremailduplicate", "Duplicate address"
        if code is None:
            return None
        return {
            "item": "user",
            "itemid": data["id"],
            "warningcode": code,
            "message": message,
        }

    def ws_core_user_update_users(self, users):
        warnings, undo = [], []
        try:
            for data in users:
                warning = self._user_update_warning(data)
                if warning is None:
                    # Moodle updates each user in a transaction of its own:
                    # a database error is that user's warning.
                    _clean_country(data)
                    warning = self._column_warning("user", data)
                if warning:
                    warnings.append(warning)
                    continue
                user = self.users[data["id"]]
                if "username" in data and any(
                    u["username"] == data["username"] and u["id"] != user["id"]
                    for u in self.users.values()
                ):
                    raise MoodleError(
                        "dml_write_exception",
                        "dmlwriteexception",
                        "Error writing to database",
                    )
                undo.append(dict(user))
                for key, value in data.items():
                    if key == "suspended":
                        value = int(value)
                    if key != "id":
                        user[key] = value
        except MoodleError:
            for old in reversed(undo):  # the call runs in one transaction
                self.users[old["id"]] = old
            raise
        return {"warnings": warnings}

    def _user_info(self, user):
        """``user_get_user_details()`` as the site admin sees it.

        Like Moodle, empty optional fields (``idnumber``, ``city``,
        ``country``, ``institution``, phones, address, a never-set
        ``description`` with its format, custom fields) are left out.
        """
        info = {
            "id": user["id"],
            "username": user["username"],
            "firstname": user["firstname"],
            "lastname": user["lastname"],
            "fullname": self._fullname(user),
            "email": user["email"],
            "department": user["department"],
        }
        for key in ("idnumber", "institution", "address", "phone1", "phone2"):
            if user.get(key):
                info[key] = user[key]
        info.update(
            firstaccess=0,
            lastaccess=0,
            auth=user["auth"],
            suspended=bool(user["suspended"]),
            confirmed=bool(user["confirmed"]),
            lang=user["lang"],
            theme=user["theme"],
            mailformat=user["mailformat"],
            trackforums=user["trackforums"],
        )
        if user["timezone"]:
            info["timezone"] = user["timezone"]
        if user["description"] is not None:
            info["description"] = user["description"]
            info["descriptionformat"] = 1
        for key in ("city", "country"):
            if user[key]:
                info[key] = user[key]
        info["profileimageurlsmall"] = f"{self.base_url}{_PICTURE}f2"
        info["profileimageurl"] = f"{self.base_url}{_PICTURE}f1"
        if user["customfields"]:
            info["customfields"] = [
                {
                    "type": "text",
                    "value": cf["value"],
                    "displayvalue": cf["value"],
                    "name": cf["type"],
                    "shortname": cf["type"],
                }
                for cf in user["customfields"]
            ]
        return info

    def ws_core_user_get_users_by_field(self, field, values):
        if field not in {"id", "idnumber", "username", "email"}:
            raise coding_error("invalid field parameter")
        cleaned = []
        for value in values:
            if field == "id":
                ok = re.match(r"^\s*-?[0-9]+\s*$", value) is not None
                clean = int(value) if ok else None
            elif field == "username":
                clean = re.sub(r"[^-.@_a-z0-9]", "", value.strip().lower())
                ok = clean == value
            elif field == "email":
                clean = value.strip()
                ok = clean == value
            else:
                clean, ok = value, True
            if not ok:
                raise invalid_parameter(
                    f"The field '{field}' value is invalid: {value}(cleaned value: "
                    f"{clean})"
                )
            cleaned.append(clean)
        # a plain query on the user table: deleted users are still there,
        # under their mangled username/email (see _delete_user); MariaDB's
        # collation ignores letter case, PostgreSQL compares it
        if field in ("email", "idnumber") and getattr(self, "db", "") != "pgsql":
            wanted = {v.lower() for v in cleaned}
            found = [u for u in self.users.values() if u[field].lower() in wanted]
        else:
            wanted = set(cleaned)
            found = [u for u in self.users.values() if u[field] in wanted]
        return [self._user_info(u) for u in sorted(found, key=lambda u: u["id"])]

    def ws_core_user_delete_users(self, userids):
        for userid in userids:  # one transaction: check everything first
            user = self.users.get(userid)
            if user is None or user["deleted"]:
                raise missing_record("user")
            if userid in self.site_admins:
                raise moodle_exception(
                    "useradminodelete", "Administrator accounts cannot be deleted"
                )
            if userid == 1:
                raise moodle_exception(
                    "guestnodeleteaccount", "Guest account cannot be deleted"
                )
        for userid in userids:
            self._delete_user(userid)

    def _delete_user(self, userid):
        """Soft-delete like Moodle's ``delete_user()``: the row stays, renamed.

        ``username`` becomes the old email plus ``.`` and the time (cleaned
        as a username, made unique by counting up), ``email`` the md5 hex of
        the old username, ``idnumber`` is cleared; profile data goes.
        """
        user = self.users[userid]
        delname = _NOT_USERNAME.sub("", f"{user['email']}.{self.now()}".lower())
        taken = {u["username"] for u in self.users.values()}
        while delname in taken:  # PHP's $delname++ on the trailing number
            head, digits = re.match(r"^(.*?)(\d*)$", delname).groups()
            delname = f"{head}{int(digits or 0) + 1}"
        user["deleted"] = 1
        user["email"] = hashlib.md5(user["username"].encode()).hexdigest()
        user["username"] = delname
        user["idnumber"] = ""
        user["customfields"] = []
        user["preferences"] = []
        for eid in [e for e, v in self.enrolments.items() if v["userid"] == userid]:
            self.enrolments.pop(eid)
        for members in self.group_memberships.values():
            members.discard(userid)

    @locked
    def find_user(self, username=None, idnumber=None, email=None):
        for user in self._live_users():
            if username is not None and user["username"] == username:
                return user
            if idnumber is not None and user["idnumber"] == idnumber:
                return user
            if email is not None and user["email"].lower() == email.lower():
                return user
        return None

    def _user_or_invalid(self, userid):
        user = self.users.get(userid)
        if user is None or user["deleted"]:
            raise invalid_user()
        return user

    # ------------------------------------------------------------ enrolments
    def _manual_instance(self, courseid, enabled_only=True):
        for inst in self.enrol_instances.values():
            if (
                inst["courseid"] == courseid
                and inst["enrol"] == "manual"
                and (inst["status"] == 0 or not enabled_only)
            ):
                return inst
        return None

    def _enrolment(self, courseid, userid):
        for enrolment in self.enrolments.values():
            if enrolment["courseid"] == courseid and enrolment["userid"] == userid:
                return enrolment
        return None

    @locked
    def enrolled_roles(self, courseid, userid):
        enrolment = self._enrolment(courseid, userid)
        return set(enrolment["roles"]) if enrolment else set()

    def _course_users(self, courseid, roles=None, active_only=False):
        """User ids enrolled in a course (optionally with one of ``roles``)."""
        found = []
        for enrolment in self.enrolments.values():
            if enrolment["courseid"] != courseid:
                continue
            if active_only and enrolment["status"]:
                continue
            if roles is None or set(enrolment["roles"]) & set(roles):
                found.append(enrolment["userid"])
        return sorted(found)

    def _check_enrolment(self, item):
        if item["courseid"] not in self.courses:
            raise invalid_parameter("Context does not exist")
        user = self.users.get(item["userid"])
        if user is None:
            raise invalid_user()
        if user["deleted"]:  # core_user::require_active_user()
            raise user_deleted()
        if item["roleid"] not in self.assignable_roles:
            raise moodle_exception(
                "wsusercannotassign",
                "You don't have the permission to assign this role "
                f"({item['roleid']}) to this user ({item['userid']}) in this course "
                f"({item['courseid']}).",
            )
        if self._manual_instance(item["courseid"]) is None:
            raise moodle_exception(
                "wsnoinstance",
                "Manual enrolment plugin instance doesn't exist or is disabled for the "
                f"course (id = {item['courseid']})",
            )

    def ws_enrol_manual_enrol_users(self, enrolments):
        for item in enrolments:  # one transaction: validate first
            self._check_enrolment(item)
        for item in enrolments:
            self.enrol(
                item["courseid"],
                item["userid"],
                item["roleid"],
                timestart=item.get("timestart", 0),
                timeend=item.get("timeend", 0),
                suspend=bool(item.get("suspend")),
            )
        if self.welcome_message_fails:
            for courseid in {item["courseid"] for item in enrolments}:
                inst = self._manual_instance(courseid)
                if inst["send_welcome"] and self._course_users(
                    courseid, self.course_contact_roles
                ):
                    # sent after commit: the enrolments above are kept
                    raise moodle_exception(
                        "Message was not sent.", "error/Message was not sent."
                    )

    @locked
    def enrol(self, courseid, userid, roleid=5, timestart=0, timeend=0, suspend=False):
        """Enrol (or re-enrol) a user with the manual method, adding ``roleid``."""
        inst = self._manual_instance(courseid, enabled_only=False)
        enrolment = self._enrolment(courseid, userid)
        if enrolment is None:
            eid = self._next("enrolment")
            enrolment = self.enrolments[eid] = {
                "id": eid,
                "courseid": courseid,
                "userid": userid,
                "instanceid": inst["id"] if inst else None,
                "roles": [],
                "timecreated": self.now(),
            }
        enrolment.update(
            status=1 if suspend else 0, timestart=timestart, timeend=timeend
        )
        if roleid and roleid not in enrolment["roles"]:
            enrolment["roles"].append(roleid)
            enrolment["roles"].sort()
        return enrolment["id"]

    def ws_enrol_manual_unenrol_users(self, enrolments):
        for item in enrolments:
            if item["courseid"] not in self.courses:
                raise missing_record("course")
            if self._manual_instance(item["courseid"], enabled_only=False) is None:
                raise moodle_exception(
                    "wsnoinstance",
                    "Manual enrolment plugin instance doesn't exist or is disabled "
                    f"for the course (id = {item['courseid']})",
                )
            self._user_or_invalid(item["userid"])
        for item in enrolments:  # roleid is ignored, like Moodle
            self.unenrol(item["courseid"], item["userid"])

    @locked
    def unenrol(self, courseid, userid):
        enrolment = self._enrolment(courseid, userid)
        if enrolment:
            self.enrolments.pop(enrolment["id"])
        for gid, group in self.groups.items():
            if group["courseid"] == courseid:
                self.group_memberships[gid].discard(userid)

    @locked
    def disable_manual_enrol(self, courseid, remove=False):
        """Disable (or delete) the manual enrolment instance of a course."""
        for iid, inst in list(self.enrol_instances.items()):
            if inst["courseid"] == courseid and inst["enrol"] == "manual":
                if remove:
                    self.enrol_instances.pop(iid)
                else:
                    inst["status"] = 1

    @locked
    def set_welcome_message(self, courseid, enabled):
        for inst in self.enrol_instances.values():
            if inst["courseid"] == courseid and inst["enrol"] == "manual":
                inst["send_welcome"] = enabled

    def _enrolled_options(self, options):
        opts = {"onlyactive": False, "groupid": 0, "userfields": None}
        for option in options:
            name, value = option["name"], option["value"]
            if name == "onlyactive":
                opts["onlyactive"] = value.strip() not in {"", "0", "false"}
            elif name == "onlysuspended":
                opts["onlysuspended"] = value.strip() not in {"", "0", "false"}
            elif name == "groupid":
                opts["groupid"] = int(value) if value.strip().isdigit() else 0
            elif name == "userfields":
                opts["userfields"] = {f.strip() for f in value.split(",") if f.strip()}
            elif name in {
                "withcapability",
                "limitfrom",
                "limitnumber",
                "sortby",
                "sortdirection",
            }:
                opts[name] = value
            else:
                raise moodle_exception(
                    "invalidextparam", f"Invalid extra parameter: {name}"
                )
        return opts

    def _enrolled_user_info(self, courseid, enrolment):
        user = self.users[enrolment["userid"]]
        info = self._user_info(user)
        for key in (
            "auth",
            "suspended",
            "confirmed",
            "lang",
            "theme",
            "timezone",
            "mailformat",
            "trackforums",
        ):
            info.pop(key, None)
        info["lastcourseaccess"] = 0
        info["groups"] = [
            {
                "id": gid,
                "name": group["name"],
                "description": group["description"],
                "descriptionformat": group["descriptionformat"],
            }
            for gid, group in sorted(self.groups.items())
            if group["courseid"] == courseid
            and user["id"] in self.group_memberships[gid]
        ]
        info["roles"] = [
            {
                "roleid": roleid,
                "name": "",
                "shortname": ROLE_SHORTNAMES.get(roleid, f"role{roleid}"),
                "sortorder": 0,
            }
            for roleid in enrolment["roles"]
        ]
        course = self.courses[courseid]
        info["enrolledcourses"] = [
            {
                "id": courseid,
                "fullname": course["fullname"],
                "shortname": course["shortname"],
            }
        ]
        return info

    def ws_core_enrol_get_enrolled_users(self, courseid, options):
        if courseid not in self.courses:
            raise missing_record("course")
        opts = self._enrolled_options(options)
        result = []
        for enrolment in sorted(self.enrolments.values(), key=lambda e: e["userid"]):
            if enrolment["courseid"] != courseid:
                continue
            if opts["onlyactive"] and enrolment["status"]:
                continue
            if opts.get("onlysuspended") and not enrolment["status"]:
                continue
            gid = opts["groupid"]
            if gid and enrolment["userid"] not in self.group_memberships.get(gid, ()):
                continue
            info = self._enrolled_user_info(courseid, enrolment)
            if opts["userfields"] is not None:
                keep = opts["userfields"] | {"id", "fullname"}
                info = {k: v for k, v in info.items() if k in keep}
            result.append(info)
        return result

    # ---------------------------------------------------------------- groups
    def _check_new_group(self, group, batch):
        course = self._course_or_error(group["courseid"])
        names = {
            g["name"] for g in self.groups.values() if g["courseid"] == course["id"]
        }
        if group["name"] in names or (course["id"], group["name"]) in batch:
            raise invalid_parameter(
                "Group with the same name already exists in the course"
            )
        idnumber = group.get("idnumber")
        if idnumber:
            taken = {
                g["idnumber"]
                for g in self.groups.values()
                if g["courseid"] == course["id"]
            }
            if idnumber in taken or (course["id"], "#" + idnumber) in batch:
                raise moodle_exception(
                    "idnumbertaken", "This ID number is already in use"
                )
            batch.add((course["id"], "#" + idnumber))
        batch.add((course["id"], group["name"]))

    def ws_core_group_create_groups(self, groups):
        batch = set()
        for group in groups:  # one transaction: validate first
            self._check_new_group(group, batch)
            self._check_columns("groups", group)
        created = []
        for group in groups:
            gid = self.add_group(**group)
            created.append(_group_info(self.groups[gid]))
        return created

    @locked
    def add_group(self, courseid, name, description="", idnumber="", **data):
        """Create a group without a web-service call; return its id."""
        gid = self._next("group")
        self.groups[gid] = {
            "id": gid,
            "courseid": courseid,
            "name": name,
            "description": description,
            "descriptionformat": data.get("descriptionformat", 1),
            "enrolmentkey": data.get("enrolmentkey", ""),
            "idnumber": idnumber or "",
            "visibility": data.get("visibility", 0),
            "participation": data.get("participation", True),
            "timecreated": self.now(),
        }
        self.group_memberships[gid] = set()
        return gid

    def ws_core_group_get_course_groups(self, courseid):
        self._course_or_error(courseid)
        return [
            _group_info(g)
            for _gid, g in sorted(self.groups.items())
            if g["courseid"] == courseid
        ]

    def _check_group_update(self, data, pending):
        group = self.groups.get(data["id"])
        if group is None:
            raise missing_record("groups")
        current = {**group, **pending.get(group["id"], {})}
        others = [
            {**g, **pending.get(g["id"], {})}
            for g in self.groups.values()
            if g["courseid"] == group["courseid"] and g["id"] != group["id"]
        ]
        if data["name"] != current["name"] and any(
            g["name"] == data["name"] for g in others
        ):
            raise invalid_parameter(
                "A different group with the same name already exists in the course"
            )
        if data.get("idnumber") and any(
            g["idnumber"] == data["idnumber"] for g in others
        ):
            raise moodle_exception("idnumbertaken", "This ID number is already in use")

    def ws_core_group_update_groups(self, groups):
        pending = {}
        for data in groups:  # one transaction: validate against pending changes
            self._check_group_update(data, pending)
            self._check_columns("groups", data, "UPDATE")
            change = {k: v for k, v in data.items() if k not in {"id", "customfields"}}
            if "visibility" in change:
                change["visibility"] = int(change["visibility"] or 0)
            pending.setdefault(data["id"], {}).update(change)
        for gid, change in pending.items():
            self.groups[gid].update(change)

    def ws_core_group_delete_groups(self, groupids):
        for gid in groupids:
            if gid in self.groups:  # Moodle silently ignores unknown groups
                self.groups.pop(gid)
                self.group_memberships.pop(gid, None)

    def _check_member(self, member):
        group = self.groups.get(member["groupid"])
        if group is None:
            raise missing_record("groups")
        user = self.users.get(member["userid"])
        if user is None or user["deleted"]:
            raise missing_record("user")
        return group

    def ws_core_group_add_group_members(self, members):
        for member in members:  # one transaction: validate first
            group = self._check_member(member)
            if self._enrolment(group["courseid"], member["userid"]) is None:
                raise invalid_parameter("Only enrolled users may be members of groups")
        for member in members:
            self.group_memberships[member["groupid"]].add(member["userid"])

    def ws_core_group_delete_group_members(self, members):
        for member in members:
            self._check_member(member)
        for member in members:
            self.group_memberships[member["groupid"]].discard(member["userid"])

    def ws_core_group_get_group_members(self, groupids):
        result = []
        for gid in groupids:
            if gid not in self.groups:
                raise missing_record("groups")
            result.append(
                {"groupid": gid, "userids": sorted(self.group_memberships[gid])}
            )
        return result

    @locked
    def group_members(self, groupid):
        return set(self.group_memberships.get(groupid, ()))

    @locked
    def add_group_member(self, groupid, userid):
        self.group_memberships[groupid].add(userid)
