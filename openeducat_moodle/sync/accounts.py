"""Moodle accounts: usernames, language codes, who is one person, and what an
existing Moodle account may hold before the connector takes it for someone.

Plain functions over plain values (no ``odoo``); :class:`~.push.PushSync`
applies them.

Adoption of an existing account (one without one of our idnumbers) by email
address or username follows the instance's policy:

``never``
    never: a person whose email address an existing account holds is blocked
    with the reason; a username that is taken gets a suffix.
``review`` (the default)
    a Moodle Manager approves each match in the Initial Import wizard; until
    then the person is blocked with the reason.
``auto``
    adopted at once when the match is unambiguous (one account for one person
    in the run, and the account holds the person's email address) and the
    account can do nothing a student cannot (:func:`check_accounts`); any
    other match waits for a review as above.
"""

import re
import unicodedata

from ..moodle.errors import MoodleAccessError, MoodleRecordError

NEVER, REVIEW, AUTO = "never", "review", "auto"
POLICIES = (NEVER, REVIEW, AUTO)

# Moodle's username characters without $CFG->extendedusernamechars
# (clean_param(PARAM_USERNAME)).
_NOT_USERNAME = re.compile(r"[^-.@_a-z0-9]")
# Letters NFKD does not decompose into an ASCII letter and a mark.
_FOLD = str.maketrans(
    {
        "ß": "ss",
        "æ": "ae",
        "œ": "oe",
        "ø": "o",
        "đ": "d",
        "ð": "d",
        "ł": "l",
        "ŀ": "l",
        "þ": "th",
        "ı": "i",
    }
)
# A username Moodle keeps unchanged only when the site allows extended
# characters: a look-up by it is refused otherwise (the value changes when
# cleaned), which tells the two apart without any setting.
EXTENDED_PROBE = "oec.probe.é"
USERNAME_LIMIT = 100

# Moodle's language packs with a region; any other Odoo code is sent as its
# bare language (Odoo's fr_FR, de_DE, es_ES are Moodle's fr, de, es).
REGIONAL_PACKS = frozenset(
    {"pt_br", "zh_cn", "zh_tw", "es_mx", "es_co", "es_ve", "fr_ca", "en_us"}
)
# Odoo codes that are neither: Moodle's name for them.
LANG_EXCEPTIONS = {
    "sr@latin": "sr_lt",
    "sr_rs": "sr_cr",
    "nb_no": "no",
    "zh_hk": "zh_tw",
    "ca_es@valencia": "ca_valencia",
}

# What a student cannot do. An account holding one of these in a course it is
# enrolled in (the role may come from the course or from a category above),
# or anywhere on the site (a role at system level), is never adopted
# automatically.
ABOVE_STUDENT = (
    "moodle/course:update",
    "moodle/grade:viewall",
    "moodle/role:assign",
    "moodle/course:create",
    "moodle/category:manage",
    "moodle/user:update",
)
# The front page: asking it for users with a capability lists every user who
# has it at system level (all users are "enrolled" in the front page).
SITE_COURSE = 1
ROLE_CHECK_FUNCTIONS = (
    "core_enrol_get_users_courses",
    "core_enrol_get_enrolled_users_with_capability",
)
# Courses per capability request (each course costs 6 form fields and more).
_COURSES_PER_CALL = 150


def fold(text):
    """ASCII transliteration: ``josé`` → ``jose``, ``straße`` → ``strasse``;
    what has no ASCII form is dropped."""
    text = unicodedata.normalize("NFKD", (text or "").translate(_FOLD))
    return text.encode("ascii", "ignore").decode("ascii")


def needs_extended(base):
    """True when the username ``base`` has characters outside ASCII."""
    return any(ord(c) > 127 for c in (base or ""))


def username(base, extended=False):
    """A Moodle username from a login or an email address, by Moodle's rules
    (``clean_param(PARAM_USERNAME)``): trimmed and lower case; unless the site
    allows extended characters, only ``a-z 0-9 - . _ @``, other letters
    transliterated (``José@x`` → ``jose@x``), the rest dropped.

    :param str base: the login, else the email address
    :param bool extended: the site allows extended characters
    """
    value = (base or "").strip().lower()
    if extended:
        return value
    return _NOT_USERNAME.sub("", fold(value))


def with_suffix(name, kind, record_id):
    """The username given when ``name`` is taken: a suffix from the person's
    kind and id before the ``@`` (``ann@x.edu`` → ``ann-s30@x.edu``), or at
    the end. Deterministic: the same person always gets the same one."""
    suffix = f"-{kind[:1]}{record_id}"
    local, at, domain = name.partition("@")
    return f"{local}{suffix}@{domain}" if at else f"{name}{suffix}"


def moodle_lang(code):
    """Odoo's language code → Moodle's language pack code.

    ``pt_BR`` → ``pt_br``, ``zh_CN`` → ``zh_cn``, ``fr_FR`` → ``fr``,
    ``es_MX`` → ``es_mx``; English gives ``None`` (the site's default).
    Whether the site has the pack is only known when Moodle refuses it.
    """
    code = (code or "").strip().lower()
    if not code or code.startswith("en"):
        return None
    if code in LANG_EXCEPTIONS:
        return LANG_EXCEPTIONS[code]
    lang, _sep, region = code.partition("_")
    regional = f"{lang}_{region.split('@')[0]}"
    return regional if regional in REGIONAL_PACKS else lang.split("@")[0]


def _same_text(first, second):
    return fold((first or "").strip().casefold()) == fold(
        (second or "").strip().casefold()
    )


def same_person(first, second):
    """A student and a faculty member who are one person: the same partner, or
    the same email address and the same first and last names (letter case and
    accents aside). Two students (or two faculty members) never are.

    :param Person first: a :class:`~.rows.Person`
    :param Person second: another
    """
    if first.kind == second.kind:
        return False
    if first.partner_id and first.partner_id == second.partner_id:
        return True
    return (
        (first.email or "").strip().lower() == (second.email or "").strip().lower()
        and _same_text(first.first_name, second.first_name)
        and _same_text(first.last_name, second.last_name)
    )


def check_accounts(client, userids):
    """What Moodle's web services show of what these accounts can do.

    One ``core_webservice_get_site_info``, one ``core_enrol_get_users_courses``
    per account, and one ``core_enrol_get_enrolled_users_with_capability``
    for all their courses and the front page (which lists the users holding
    a capability at system level). Site administrators have no role to find:
    Moodle itself refuses to let a connector user who is not an administrator
    change them (``usernotupdatedadmin``), so an account is never adopted
    automatically when the connector's user is one.

    Not visible to web services: a role held in a category or a course without
    being enrolled in one of its courses.

    :param client: a :class:`~..moodle.MoodleClient`
    :param userids: Moodle user ids
    :return: ``(problems, rights)``: ``{userid: why it may not be adopted
        automatically}`` (absent: it may), and ``{userid: what it can do, as
        a line for a Moodle Manager}``
    :raise MoodleTransientError: Moodle could not be reached
    """
    userids = sorted(set(userids))
    if not userids:
        return {}, {}
    try:
        info = client.call("core_webservice_get_site_info") or {}
    except (MoodleRecordError, MoodleAccessError) as err:
        return dict.fromkeys(userids, f"its roles could not be checked: {err}"), {}
    have = {f.get("name") for f in info.get("functions") or []}
    missing = [name for name in ROLE_CHECK_FUNCTIONS if name not in have]
    if missing:
        reason = (
            "its roles cannot be checked: add "
            + ", ".join(missing)
            + " to the connector's service in Moodle"
        )
        return dict.fromkeys(userids, reason), {}
    try:
        courses = {
            uid: client.call(
                "core_enrol_get_users_courses", userid=uid, returnusercount=0
            )
            or []
            for uid in userids
        }
        holders = _capability_holders(
            client, {c["id"] for cs in courses.values() for c in cs} | {SITE_COURSE}
        )
    except (MoodleRecordError, MoodleAccessError) as err:
        return dict.fromkeys(userids, f"its roles could not be checked: {err}"), {}
    problems, rights = {}, {}
    for uid in userids:
        names = {
            c["id"]: c.get("shortname") or f"course {c['id']}" for c in courses[uid]
        }
        found = []
        for courseid, capabilities in sorted(holders.get(uid, {}).items()):
            where = "the whole site" if courseid == SITE_COURSE else names.get(courseid)
            found.append(f"{', '.join(sorted(capabilities))} in {where}")
        if found:
            problems[uid] = "it can do more than a student: " + "; ".join(found)
            rights[uid] = "; ".join(found)
        else:
            rights[uid] = (
                "enrolled in " + ", ".join(sorted(names.values())) + " as a student"
                if names
                else "enrolled in no course"
            )
        if info.get("userissiteadmin"):
            problems[uid] = (
                "the connector's Moodle user is a site administrator, so Moodle "
                "would let it change an administrator's account: never automatic"
            )
    return problems, rights


def _capability_holders(client, courseids):
    """``{userid: {courseid: {capability}}}`` for :data:`ABOVE_STUDENT`."""
    holders = {}
    courseids = sorted(courseids)
    for start in range(0, len(courseids), _COURSES_PER_CALL):
        answer = client.call(
            "core_enrol_get_enrolled_users_with_capability",
            coursecapabilities=[
                {"courseid": courseid, "capabilities": list(ABOVE_STUDENT)}
                for courseid in courseids[start : start + _COURSES_PER_CALL]
            ],
            options=[{"name": "userfields", "value": "id"}],
        )
        for entry in answer or []:
            for user in entry.get("users") or []:
                where = holders.setdefault(user["id"], {})
                where.setdefault(entry["courseid"], set()).add(entry["capability"])
    return holders
