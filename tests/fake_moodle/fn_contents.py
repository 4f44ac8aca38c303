"""Course sections and modules: ``core_course_get_contents``.

Every course has sections 0 to ``numsections`` (``topics`` format); the
course modules the simulator already tracks (assignments, quizzes,
attendance instances, and Moodle 5.x question banks) sit in them, in the
order they were added.
"""

import re

from .errors import missing_record, moodle_exception
from .fn_core import _php_int

# modname -> (modplural, purpose) as Moodle 4.5 reports them
MODULE_TYPES = {
    "assign": ("Assignments", "assessment"),
    "quiz": ("Quizzes", "assessment"),
    "attendance": ("Attendance", "administration"),
    "qbank": ("Question banks", "content"),
}
_BOOL_OPTIONS = ("excludemodules", "excludecontents", "includestealthmodules")
_INT_OPTIONS = ("sectionid", "sectionnumber", "cmid", "modid")
_PLUGIN = re.compile(r"^[a-z][a-z0-9_]*$")  # PARAM_PLUGIN, not empty


def _contents_error(name):
    return moodle_exception("errorinvalidparam", f'The param "{name}" is invalid.')


def _php_bool(value):
    """PHP ``clean_param($v, PARAM_BOOL)``."""
    return str(value).strip().lower() not in {"", "0", "false", "no", "off"}


class ContentsMixin:
    # ---------------------------------------------------------------- helpers
    def _add_sections(self, courseid, numsections):
        """Create the sections 0..numsections of a new course."""
        for number in range(numsections + 1):
            secid = self._next("section")
            self.course_sections[secid] = {
                "id": secid,
                "courseid": courseid,
                "section": number,
                "name": "",
                "summary": "",
                "visible": 1,
            }

    def _section_name(self, section):
        if section["name"]:
            return section["name"]
        return "General" if section["section"] == 0 else "New section"

    def _module_name(self, cm):
        table = {
            "assign": self.assignments,
            "quiz": self.quizzes,
            "attendance": self.attendances,
        }.get(cm["modname"], {})
        record = table.get(cm["instance"])
        return record["name"] if record else cm.get("name", "")

    def set_module(self, cmid, section=None, visible=None):
        """Move a course module to another section or hide/show it, as a
        teacher would on the course page."""
        with self._lock:
            cm = self.course_modules[cmid]
            if section is not None:
                cm["section"] = section
            if visible is not None:
                cm["visible"] = int(visible)

    def add_qbank(self, courseid, name=None):
        """Add a Moodle 5.x question bank: a hidden ``qbank`` course module
        (``visible`` 0, ``candisplay`` false) in section 0; return its cmid.

        Only a 5.1 site has them; ``fm.course_qbank = True`` adds one to every
        course created on a 5.1 site.
        """
        if not self.moodle51:
            raise ValueError("question banks are course modules from Moodle 5.0 on")
        with self._lock:
            course = self.courses[courseid]
            instance = self._next("qbank")
            cmid = self._new_cm(courseid, "qbank", instance, visible=0)
            self.course_modules[cmid]["name"] = name or (
                f"{course['fullname']} course question bank"
            )
            return cmid

    def _module_info(self, cm):
        modplural, purpose = MODULE_TYPES.get(
            cm["modname"], (cm["modname"].title(), "other")
        )
        visible = cm.get("visible", 1)
        qbank = cm["modname"] == "qbank"
        info = {
            "id": cm["id"],
            "url": f"{self.base_url}/mod/{cm['modname']}/view.php?id={cm['id']}",
            "name": self._module_name(cm),
            "instance": cm["instance"],
            "contextid": cm.get("contextid", 0),
            "visible": visible,
            # the token's user is a site admin: hidden modules are visible
            "uservisible": True,
            "visibleoncoursepage": 0 if qbank else 1,
            "modicon": f"{self.base_url}/theme/image.php/boost/{cm['modname']}/1/"
            "monologo",
            "modname": cm["modname"],
            "purpose": purpose,
            "branded": False,
            "modplural": modplural,
            "availability": None,
            "indent": 0,
            "onclick": "",
            "afterlink": None,
            "customdata": '""',
            "noviewlink": False,
            "completion": 0,
            "downloadcontent": 1,
            "dates": [],
            "groupmode": 0,
        }
        if self.moodle51:
            info["candisplay"] = not qbank
        return info

    # --------------------------------------------------------------- web api
    def _contents_filters(self, options):
        filters = {}
        for option in options:
            name = option["name"].strip()
            if name in filters:
                continue  # Moodle keeps the first of duplicated options
            value = option["value"]
            if name in _BOOL_OPTIONS:
                filters[name] = _php_bool(value)
            elif name in _INT_OPTIONS:
                filters[name] = _php_int(value)  # never fails in Moodle
            elif name == "modname":
                if not _PLUGIN.match(value):
                    raise _contents_error(name)
                filters[name] = value
            else:
                raise _contents_error(name)
        return filters

    def ws_core_course_get_contents(self, courseid, options):
        filters = self._contents_filters(options)
        if courseid not in self.courses:
            raise missing_record("course")
        sections = sorted(
            (s for s in self.course_sections.values() if s["courseid"] == courseid),
            key=lambda s: s["section"],
        )
        last = max((s["section"] for s in sections), default=0)
        modules = sorted(
            (m for m in self.course_modules.values() if m["courseid"] == courseid),
            key=lambda m: m["id"],
        )
        result = []
        for section in sections:
            if filters.get("sectionid") and section["id"] != filters["sectionid"]:
                continue
            if (
                "sectionnumber" in filters
                and section["section"] != filters["sectionnumber"]
            ):
                continue
            entry = {
                "id": section["id"],
                "name": self._section_name(section),
                "visible": section["visible"],
                "summary": section["summary"],
                "summaryformat": 1,
                "section": section["section"],
                "hiddenbynumsections": 1 if section["section"] > last else 0,
                "uservisible": True,
                "modules": [],
            }
            if self.moodle51:
                entry["component"] = None
                entry["itemid"] = None
            if not filters.get("excludemodules"):
                for cm in modules:
                    if cm.get("section", 0) != section["section"]:
                        continue
                    if filters.get("cmid") and cm["id"] != filters["cmid"]:
                        continue
                    if filters.get("modname"):
                        if cm["modname"] != filters["modname"]:
                            continue
                        if filters.get("modid") and cm["instance"] != filters["modid"]:
                            continue
                    entry["modules"].append(self._module_info(cm))
            result.append(entry)
        return result
