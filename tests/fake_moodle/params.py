"""Form decoding (PHP rules) and Moodle-style parameter validation.

``parse_form`` splits an ``x-www-form-urlencoded`` body and applies PHP's
``max_input_vars`` cut; ``php_decode`` builds the nested arrays PHP builds from
bracket names (``courses[0][fullname]``); ``validate`` checks them against a
function description the way ``external_api::validate_parameters`` does.
"""

import re
from urllib.parse import unquote_plus

from .errors import invalid_parameter

REQ, OPT, DEF = "required", "optional", "default"
_INT_KEY = re.compile(r"^(0|-?[1-9][0-9]{0,17})$")
_FLOAT = re.compile(r"^[+-]?[0-9]*\.?[0-9]*(e[-+]?[0-9]+)?$", re.IGNORECASE)
_TAG = re.compile(r"<[A-Za-z/!?]")


# --------------------------------------------------------------------- decoding
def parse_form(body, max_vars=None):
    """Split a form body into ``(name, value)`` pairs, keeping the first N."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    pairs = []
    for chunk in (body or "").split("&"):
        if not chunk:
            continue
        name, _sep, value = chunk.partition("=")
        name = unquote_plus(name)
        if not name:
            continue
        if max_vars is not None and len(pairs) >= max_vars:
            break  # PHP: "Input variables exceeded N" is only logged
        pairs.append((name, unquote_plus(value)))
    return pairs


def _split_name(name):
    """``a[b][]`` → ``("a", ["b", None])`` following PHP's parser."""
    name = name.lstrip(" ")
    pos = name.find("[")
    if pos == 0:
        return None, []
    if pos < 0 or "]" not in name[pos:]:
        base = name.replace(".", "_").replace(" ", "_")
        return base.replace("[", "_", 1), []
    base = name[:pos].replace(".", "_").replace(" ", "_")
    keys = []
    rest = name[pos:]
    while rest.startswith("["):
        end = rest.find("]")
        if end < 0:
            break
        keys.append(rest[1:end] or None)
        rest = rest[end + 1 :]
    return base, keys


def _key(raw, container):
    if raw is None:
        ints = [k for k in container if isinstance(k, int)]
        return max(ints) + 1 if ints else 0
    return int(raw) if _INT_KEY.match(raw) else raw


def php_decode(pairs):
    """Build PHP's ``$_POST`` array (dicts keep insertion order, int keys)."""
    result = {}
    for name, value in pairs:
        base, keys = _split_name(name)
        if not base:
            continue
        if not keys:
            result[base] = value
            continue
        node = result.get(base)
        if not isinstance(node, dict):
            node = result[base] = {}
        for raw in keys[:-1]:
            key = _key(raw, node)
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[_key(keys[-1], node)] = value
    return result


def to_plain(value):
    """PHP arrays → Python: dicts with only int keys become lists."""
    if isinstance(value, dict):
        if value and all(isinstance(k, int) for k in value):
            return [to_plain(v) for v in value.values()]
        return {k: to_plain(v) for k, v in value.items()}
    return value


# ------------------------------------------------------------------ description
class Val:
    """``external_value``."""

    def __init__(self, ptype, mode=REQ, default=None):
        self.ptype, self.mode, self.default = ptype, mode, default


class Struct:
    """``external_single_structure``."""

    def __init__(self, fields, mode=REQ, default=None):
        self.fields, self.mode, self.default = fields, mode, default


class Multi:
    """``external_multiple_structure``."""

    def __init__(self, item, mode=REQ, default=None):
        self.item, self.mode, self.default = item, mode, default


def req(ptype):
    return Val(ptype)


def opt(ptype):
    return Val(ptype, OPT)


def dflt(ptype, default):
    return Val(ptype, DEF, default)


def struct(mode=REQ, default=None, **fields):
    return Struct(fields, mode, default)


def multi(item, mode=REQ, default=None):
    return Multi(item, mode, default)


# ------------------------------------------------------------------- validation
LANGS = {"en", "fr", "es", "de", "ar", "pt_br", "pt", "it", "nl", "ca", "en_us"}
AUTHS = {"manual", "nologin", "email", "oauth2", "ldap", "db", "cas", "lti"}
AUTHS |= {"shibboleth", "webservice", "none", "saml2"}
THEMES = {"", "boost", "classic"}


def _clean_username(value):
    return re.sub(r"[^-.@_a-z0-9]", "", value.strip().lower())


_CLEANERS = {
    "raw": lambda v: v,
    "raw_trimmed": str.strip,
    "alpha": lambda v: re.sub(r"[^A-Za-z]", "", v),
    "alphanum": lambda v: re.sub(r"[^A-Za-z0-9]", "", v),
    "alphanumext": lambda v: re.sub(r"[^A-Za-z0-9_-]", "", v),
    "safedir": lambda v: re.sub(r"[^A-Za-z0-9_-]", "", v),
    "plugin": lambda v: v if re.match(r"^([a-z][a-z0-9_]*)?$", v) else "",
    "sequence": lambda v: re.sub(r"[^0-9,]", "", v),
    "username": _clean_username,
    "lang": lambda v: v if v in LANGS else "",
    "auth": lambda v: v if v in AUTHS else "",
    "theme": lambda v: v if v in THEMES else "",
    "timezone": lambda v: v if re.match(r"^[A-Za-z0-9_/+.:-]*$", v) else "",
}


def check_value(ptype, value, where=""):
    """Validate one scalar like ``validate_param`` and return it typed."""
    if not isinstance(value, str):
        raise invalid_parameter(f"{where}: scalar expected")
    if ptype == "int":
        if not re.match(r"^-?[0-9]+$", value) or str(int(value)) != value:
            raise invalid_parameter(f"{where}: Invalid external api parameter")
        return int(value)
    if ptype == "float":
        if not value or value in {".", "+", "-"} or not _FLOAT.match(value):
            raise invalid_parameter(f"{where}: Invalid external api parameter")
        return float(value)
    if ptype == "bool":
        if value not in {"0", "1"}:
            raise invalid_parameter(f"{where}: Invalid external api parameter")
        return value == "1"
    if ptype in {"text", "notags"}:
        if _TAG.search(value):
            raise invalid_parameter(f"{where}: Invalid external api parameter")
        return value
    cleaned = _CLEANERS.get(ptype, _CLEANERS["raw"])(value)
    if cleaned != value:
        raise invalid_parameter(f"{where}: Invalid external api parameter")
    return value


def validate(desc, value, where="params"):
    """Validate ``value`` (decoded PHP data) against a description."""
    if isinstance(desc, Val):
        return check_value(desc.ptype, value, where)
    if isinstance(desc, Multi):
        if not isinstance(value, dict):
            raise invalid_parameter(f"{where}: Only arrays accepted.")
        return [
            validate(desc.item, item, f"{where} => {key}")
            for key, item in value.items()
        ]
    if not isinstance(value, dict):
        raise invalid_parameter(f"{where}: Only arrays accepted.")
    result = {}
    for key, sub in desc.fields.items():
        if key not in value:
            if sub.mode == REQ:
                raise invalid_parameter(
                    f"{where}: Missing required key in single structure: {key}"
                )
            if sub.mode == DEF:
                result[key] = _copy_default(sub.default)
            continue
        result[key] = validate(sub, value[key], f"{where} => {key}")
    unknown = [str(k) for k in value if k not in desc.fields]
    if unknown:
        raise invalid_parameter(
            f"{where}: Unexpected keys ({', '.join(unknown)}) detected in "
            "parameter array."
        )
    return result


def _copy_default(default):
    if isinstance(default, list | dict):
        return type(default)(default)
    return default
