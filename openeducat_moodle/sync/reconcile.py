"""Compare OpenEduCat's plan with what Moodle holds, without writing to Moodle.

:class:`Importer` rebuilds the mapping table from Moodle's idnumbers and
reports the gaps on both sides; existing accounts that match a person by email
address or username are listed for a Moodle Manager's review, never mapped by
the import itself. :class:`DriftCheck`
finds mapped objects changed or deleted in Moodle outside the connector, so
that the next push restores them (OpenEduCat wins for the data it owns).

Both reuse :class:`~.push.PushSync`'s planning, so they judge Moodle against
exactly the payloads a push would send.
"""

import collections
import html
import re

from ..moodle.errors import MoodleRecordError
from . import accounts, idnumbers
from .hashing import payload_hash
from .push import CATEGORY, COURSE, ENROLMENT, GROUP, SHARED, USER, PushSync
from .store import Mapping

_DELETED_EMAIL = re.compile(r"^[0-9a-f]{32}$")
# Fields a push sets once and never updates, so they are not drift.
NOT_COMPARED = frozenset({"username", "createpassword", "password"})


def _norm(value):
    if isinstance(value, bool):
        return str(int(value))
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    # Moodle returns names through format_string(): "R&D" comes back as
    # "R&amp;D". Compared unescaped on both sides, so only a real change counts.
    return html.unescape(str(value)).strip()


def differences(payload, moodle_object):
    """The payload's fields whose value Moodle holds otherwise (fields Moodle
    did not return are not judged: a user's phone is returned only to a site
    administrator or where the site shows it among identity fields, and empty
    profile fields are left out).

    A course's title, summary and dates, a person's names, email, city,
    country and address are compared as the push sends them.

    :rtype: list[str]
    """
    return [
        key
        for key, want in payload.items()
        if key not in NOT_COMPARED
        and key in moodle_object
        and _norm(moodle_object[key]) != _norm(want)
    ]


def matches(payload, moodle_object):
    """True when Moodle holds what the payload says (see :func:`differences`)."""
    return not differences(payload, moodle_object)


def _record(item, reason):
    return {
        "side": "openeducat",
        "kind": item.kind,
        "key": item.key,
        "res_model": item.res_model,
        "res_id": item.res_id,
        "label": item.label,
        "moodle_id": None,
        "reason": reason,
    }


class _Reader(PushSync):
    """A PushSync that looks instead of writing."""

    def __init__(self, client, store, settings, now=None):
        super().__init__(client, store, settings, dry_run=False, now=now)
        self._groups_by_course = {}
        self._enrolled = {}

    def _block(self, item, reason, result):
        """Looking only: a blocked record is reported, never stored."""
        result.blocked += 1

    def _find_groups(self, items):
        found = {}
        for item in items:
            courseid = item.payload["courseid"]
            if courseid not in self._groups_by_course:
                self._groups_by_course[courseid] = self.client.get_course_groups(
                    courseid
                )
            for group in self._groups_by_course[courseid]:
                if group.get("idnumber") == item.idnumber:
                    found[item.key] = group
        return found

    def _enrolled_users(self, courseid):
        if courseid not in self._enrolled:
            users = self.client.get_enrolled_users(
                courseid, userfields="id,roles,groups"
            )
            self._enrolled[courseid] = {u["id"]: u for u in users}
        return self._enrolled[courseid]

    def _find_enrolments(self, items):
        """``{key: {"groupid": ...}}`` for the enrolments Moodle holds with the
        right role."""
        found = {}
        for item in items:
            user = self._enrolled_users(item.payload["courseid"]).get(
                item.payload["userid"]
            )
            roles = {r.get("roleid") for r in (user or {}).get("roles") or []}
            if user and item.payload["roleid"] in roles:
                groups = {g.get("id") for g in user.get("groups") or []}
                groupid = item.payload.get("groupid")
                found[item.key] = {
                    "id": None,
                    "groupid": groupid if groupid in groups else None,
                }
        return found


class Importer(_Reader):
    """Rebuild ``moodle.mapping`` from Moodle, and report the gaps.

    :ivar list gaps: OpenEduCat records with no Moodle match, then Moodle
        objects with one of our idnumbers and no OpenEduCat record
    :ivar collections.Counter matched: matched objects per kind
    :ivar list candidates: existing accounts (without one of our idnumbers)
        that match a person by email address or username, for a Moodle
        Manager's review (see :attr:`.push.PushSync.candidates`), with what
        Moodle shows of their rights (``rights``) and why they would not be
        adopted automatically (``problem``)
    """

    def __init__(self, client, store, settings, now=None):
        super().__init__(client, store, settings, now=now)
        self.gaps = []
        self.matched = collections.Counter()

    def run(self, snapshot, phases=None, scope=None):
        result = super().run(snapshot, phases=phases, scope=scope)
        self._moodle_side_gaps(snapshot)
        self._candidate_rights()
        return result

    def _choose(self, item, match, policy, claims):
        """Importing adopts nothing by email address or username: an approved
        account, or one the policy would adopt automatically, is taken by the
        next push."""
        choice = super()._choose(item, match, policy, claims)
        if not choice or choice[0] not in ("adopt", "auto"):
            return choice
        account = choice[1]
        what = f"Moodle account {account['id']} ({account.get('username')})"
        if choice[0] == "adopt":
            why = f"{what} is approved for this person: the next push adopts it"
        else:
            why = (
                f"{what} has this person's email address: the next push adopts it "
                "if Moodle shows no role above student"
            )
        return ("block", why)

    def _free_usernames(self, items, matches):
        """Importing creates nothing: no username to choose."""

    def _courses_to_ask_alone(self, items, found):
        """Importing: a course of ours that is not in its program's category
        (moved in Moodle) is asked for by idnumber, one call each."""
        return [item for item in items if not found.get(item.key)]

    def _our_courses(self):
        """The courses of our program categories (one call each, those the
        course look-ups did not read): where a course with one of our
        idnumbers lives. Courses elsewhere on the site are not read."""
        for category in (self._moodle_categories or {}).values():
            parsed = idnumbers.parse(category.get("idnumber"))
            if not parsed or parsed[0] != "program":
                continue
            if category["id"] in self._course_categories:
                continue
            try:
                courses = self.client.get_courses_in_category(category["id"])
            except MoodleRecordError:
                continue  # being deleted: its courses are not reported
            self._course_categories.add(category["id"])
            if self._moodle_courses is None:
                self._moodle_courses = {}
            self._moodle_courses.update(
                {c["idnumber"]: c for c in courses if c.get("idnumber")}
            )
        return (self._moodle_courses or {}).values()

    def _keep_login(self, item, mapping, account):
        """An account of ours keeps its username; one that logs in otherwise
        than the instance's new accounts was adopted keeping its login (or
        changed in Moodle): it keeps it, as the push would have."""
        if account.get("username"):
            mapping.extra["username"] = account["username"]
            item.payload = dict(item.payload, username=account["username"])
        auth = account.get("auth")
        if self.settings.adopt_keep_auth and auth and auth != self.settings.auth:
            mapping.extra["adopted"] = "login kept"
            item.payload = {k: v for k, v in item.payload.items() if k != "auth"}

    def _candidate_rights(self):
        """What Moodle shows of each candidate account's rights."""
        unique = {}
        for candidate in self.candidates:
            unique.setdefault((candidate["key"], candidate["moodle_id"]), candidate)
        self.candidates = sorted(
            unique.values(), key=lambda c: (c["key"], c["moodle_id"])
        )
        if not self.candidates:
            return
        problems, rights = accounts.check_accounts(
            self.client, {c["moodle_id"] for c in self.candidates}
        )
        for candidate in self.candidates:
            candidate["rights"] = rights.get(candidate["moodle_id"]) or ""
            candidate["problem"] = problems.get(candidate["moodle_id"]) or ""

    def _block(self, item, reason, result):
        self.gaps.append(_record(item, reason))

    def _phase_enrolments(self, result):
        # No unenrolment when importing: only match what exists.
        self._sync(list(self._enrolment_items()), result)
        self.result.phases[result.phase] = result

    def _sync(self, items, result):
        candidates = []
        for item in items:
            if item.blocked:
                self.gaps.append(_record(item, item.blocked))
            else:
                candidates.append(item)
        if not candidates:
            return
        kind = candidates[0].kind
        if kind == ENROLMENT:
            found = self._find_enrolments(candidates)
        else:
            found = self._find(kind, candidates)
        saved = []
        for item in candidates:
            moodle_object = found.get(item.key)
            problem = self._problems.pop(item.key, None)
            if problem and problem[0] == SHARED:
                self._link_aliases([item], {item.key: problem[1]}, result)
                continue
            if problem:
                # Moodle refused the lookup (e.g. an email address it rejects).
                self.gaps.append(_record(item, str(problem[1])))
                continue
            if not moodle_object:
                self.gaps.append(_record(item, "no Moodle object matches"))
                continue
            mapping = self._map(kind).get(item.key) or Mapping(
                kind, item.key, item.res_model, item.res_id
            )
            mapping.res_model, mapping.res_id = item.res_model, item.res_id
            mapping.moodle_id = moodle_object.get("id")
            mapping.idnumber = item.idnumber
            mapping.state = "synced"
            mapping.retry_count, mapping.next_retry, mapping.last_error = 0, None, None
            mapping.last_sync = self.now
            if kind == ENROLMENT:
                mapping.extra["groupid"] = moodle_object.get("groupid")
                same = moodle_object.get("groupid") == item.payload.get("groupid")
            else:
                if kind == USER:
                    self._keep_login(item, mapping, moodle_object)
                same = matches(item.payload, moodle_object)
            # Unequal: no hash, so the next push sends OpenEduCat's version.
            mapping.sync_hash = payload_hash(item.payload) if same else None
            saved.append(mapping)
            self.matched[kind] += 1
            result.unchanged += 1
        self._save(saved)

    def _moodle_side_gaps(self, snapshot):
        """Moodle objects carrying one of our idnumbers for which OpenEduCat
        has no record (users cannot be listed by idnumber pattern in Moodle,
        so only categories, courses and groups are checked)."""
        exists = {
            "department": lambda ids: ids[0] in snapshot.departments,
            "program": lambda ids: ids[0] in snapshot.programs,
            "subject_course": lambda ids: (
                ids[1] in snapshot.programs
                and ids[0] in snapshot.programs[ids[1]].subject_ids
            ),
            "batch": lambda ids: ids[0] in snapshot.batches,
        }
        objects = []
        objects += [(CATEGORY, c) for c in (self._moodle_categories or {}).values()]
        objects += [(COURSE, c) for c in self._our_courses()]
        for groups in self._groups_by_course.values():
            objects += [(GROUP, g) for g in groups]
        for kind, moodle_object in objects:
            parsed = idnumbers.parse(moodle_object.get("idnumber"))
            if parsed and not exists[parsed[0]](parsed[1]):
                self.gaps.append(
                    {
                        "side": "moodle",
                        "kind": kind,
                        "key": moodle_object["idnumber"],
                        "res_model": None,
                        "res_id": None,
                        "label": moodle_object.get("fullname")
                        or moodle_object.get("name")
                        or "",
                        "moodle_id": moodle_object.get("id"),
                        "reason": "no OpenEduCat record has this id",
                    }
                )


class DriftCheck(_Reader):
    """Find mapped objects that Moodle changed or lost.

    Drifted objects lose their hash (the next push sends OpenEduCat's
    version); deleted ones lose their mapping (the next push recreates them,
    since only active OpenEduCat records are planned).

    :ivar list drifted: records of the objects changed in Moodle
    :ivar list deleted: records of the objects deleted in Moodle
    """

    def __init__(self, client, store, settings, now=None):
        super().__init__(client, store, settings, now=now)
        self.drifted = []
        self.deleted = []

    def _link_aliases(self, items, aliases, result):
        """A person sharing another's account has no account of its own to
        check."""

    def _phase_enrolments(self, result):
        self._sync(list(self._enrolment_items()), result)
        self.result.phases[result.phase] = result

    def _by_id(self, kind, mappings, items):
        if kind == CATEGORY:
            if self._moodle_categories is None:
                self._moodle_categories = {
                    c["idnumber"] or f"#{c['id']}": c
                    for c in self.client.get_categories()
                }
            return {c["id"]: c for c in self._moodle_categories.values()}
        if kind == COURSE:
            # By the ids we mapped, a few hundred a call: never the whole site.
            courses = self.client.get_courses_by_ids([m.moodle_id for m in mappings])
            return {c["id"]: c for c in courses}
        if kind == USER:
            ids = [m.moodle_id for m in mappings]
            users = self.client.get_users_by_field("id", ids)
            # Moodle still returns deleted users by id, renamed and with an
            # md5 hash for an email: those are gone.
            return {
                u["id"]: u
                for u in users
                if not _DELETED_EMAIL.match(u.get("email") or "")
            }
        if kind == GROUP:
            self._find_groups(items)  # fills the per-course cache
            return {g["id"]: g for gs in self._groups_by_course.values() for g in gs}
        return {}

    def _sync(self, items, result):
        kind = items[0].kind if items else None
        pairs = []
        for item in items:
            mapping = self._map(item.kind).get(item.key)
            if not mapping or mapping.state != "synced":
                continue
            if kind != ENROLMENT and not mapping.moodle_id:
                continue
            if item.blocked and kind in (ENROLMENT, GROUP):
                continue
            pairs.append((item, mapping))
        if not pairs:
            return
        if kind == ENROLMENT:
            found = self._find_enrolments([i for i, _ in pairs])
        else:
            by_id = self._by_id(kind, [m for _, m in pairs], [i for i, _ in pairs])
            found = {i.key: by_id.get(m.moodle_id) for i, m in pairs}
        changed, gone = [], []
        for item, mapping in pairs:
            moodle_object = found.get(item.key)
            if moodle_object is None:
                gone.append(mapping)
                self.deleted.append(_record(item, "deleted in Moodle"))
            elif item.blocked:
                # Its parent is gone from Moodle: it exists, but will move.
                mapping.sync_hash = None
                changed.append(mapping)
            elif kind == ENROLMENT:
                if moodle_object.get("groupid") != item.payload.get("groupid"):
                    mapping.sync_hash = None
                    mapping.extra["groupid"] = moodle_object.get("groupid")
                    changed.append(mapping)
                    self.drifted.append(_record(item, "group membership changed"))
                else:
                    result.unchanged += 1
            elif changed_fields := differences(item.payload, moodle_object):
                mapping.sync_hash = None
                changed.append(mapping)
                self.drifted.append(
                    _record(item, f"changed in Moodle: {', '.join(changed_fields)}")
                )
            else:
                result.unchanged += 1
        self._save(changed)
        self._forget(gone)
