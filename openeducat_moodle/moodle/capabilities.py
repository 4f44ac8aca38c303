"""What a token can do on a Moodle site, read from ``core_webservice_get_site_info``.

Moodle has no web-service function that lists installed plugins; the list of
functions in the token's service is the practical detector.
"""

import dataclasses

from .catalogue import FEATURES, functions_for


def _int_or_none(value):
    """Moodle's version: ``"2024100706"`` on 4.5, ``"2025100603.04"`` on 5.1."""
    try:
        return int(str(value).split(".", 1)[0])
    except (TypeError, ValueError):
        return None


@dataclasses.dataclass
class SiteInfo:
    """The parts of ``core_webservice_get_site_info`` the connector uses."""

    sitename: str = ""
    siteurl: str = ""
    release: str = ""
    version: int | None = None
    userid: int | None = None
    username: str = ""
    functions: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_payload(cls, data):
        """Build from Moodle's answer (``version`` is a string there)."""
        return cls(
            sitename=data.get("sitename") or "",
            siteurl=data.get("siteurl") or "",
            release=data.get("release") or "",
            version=_int_or_none(data.get("version")),
            userid=_int_or_none(data.get("userid")),
            username=data.get("username") or "",
            functions={
                f["name"]: str(f.get("version") or "")
                for f in data.get("functions") or []
                if f.get("name")
            },
        )


@dataclasses.dataclass
class Capabilities:
    """Which connector features the token can serve on this site.

    :ivar SiteInfo site: the site's identity and function list
    :ivar dict available: feature → bool
    :ivar dict missing: feature → list of function names to add to the service
    :ivar dict aliases: catalogue name → the name this site has (legacy
        ``mod_wsattendance_*`` names where only those exist)
    """

    site: SiteInfo
    available: dict
    missing: dict
    aliases: dict

    @classmethod
    def detect(cls, site):
        """Compare the site's functions with the catalogue, feature by feature."""
        have = set(site.functions)
        available, missing, aliases = {}, {}, {}
        for feature in FEATURES:
            lacking = []
            for function in functions_for(feature):
                if function.name in have:
                    continue
                if function.legacy and function.legacy in have:
                    aliases[function.name] = function.legacy
                    continue
                if not function.optional:
                    lacking.append(function.name)
            available[feature] = not lacking
            missing[feature] = lacking
        return cls(site=site, available=available, missing=missing, aliases=aliases)

    def detect_installed_modules(self):
        """Return the Moodle plugins the function list reveals.

        :return: e.g. ``{"mod_attendance": "2024020500"}``; the legacy
            attendance names appear as ``"mod_wsattendance"``
        :rtype: dict
        """
        modules = {}
        for name, version in self.site.functions.items():
            for prefix in ("mod_attendance_", "mod_wsattendance_"):
                if name.startswith(prefix):
                    modules.setdefault(prefix[:-1], version)
        return modules

    def missing_for(self, features):
        """Return the functions missing for the given features, without repeats."""
        seen = []
        for feature in features:
            for name in self.missing.get(feature, []):
                if name not in seen:
                    seen.append(name)
        return seen

    def summary(self, features=None):
        """One line per feature, for the instance form and the logs."""
        lines = [f"Moodle {self.site.release or '?'} at {self.site.siteurl or '?'}"]
        for feature in features or FEATURES:
            if self.available.get(feature):
                lines.append(f"OK       {FEATURES[feature]}")
            else:
                names = ", ".join(self.missing.get(feature, []))
                lines.append(f"MISSING  {FEATURES[feature]}: add {names}")
        return "\n".join(lines)
