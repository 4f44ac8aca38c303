"""The catalogue's Moodle capabilities: one exact list, for the README and the
role the compose set-up creates (docker/moodle/functions.py)."""

import pathlib
import re
import subprocess
import sys

import pytest

from openeducat_moodle.moodle.catalogue import (
    FUNCTIONS,
    REST,
    capabilities_markdown,
    functions_for,
    role_capabilities,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]

# component/name:capability, as Moodle's db/access.php files spell them
CAPABILITY = re.compile(r"^[a-z]+/[a-z0-9_]+:[a-z0-9_]+$")


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_function_has_an_entry(name):
    capabilities = FUNCTIONS[name].capabilities
    assert capabilities is not None, f"{name}: no capabilities entry"
    assert isinstance(capabilities, tuple)
    assert len(set(capabilities)) == len(capabilities), f"{name}: duplicates"
    for capability in capabilities:
        assert CAPABILITY.match(capability), capability
        assert capability != REST, "webservice/rest:use is added for every function"


def test_role_list_has_no_duplicates_and_rest_first():
    capabilities = role_capabilities()
    assert capabilities[0] == REST
    assert len(set(capabilities)) == len(capabilities)
    assert set(capabilities) == {REST} | {
        c for f in FUNCTIONS.values() for c in f.capabilities
    }


def test_role_list_of_some_functions():
    assert role_capabilities(functions_for("connection")) == [REST]
    groups = role_capabilities(functions_for("groups"))
    assert groups == [
        REST,
        "moodle/course:view",
        "moodle/course:viewhiddencourses",
        "moodle/course:managegroups",
    ]


def test_what_a_real_moodle_45_checked():
    """Capabilities a Moodle 4.5 site refused calls without."""
    needs = {
        "enrol_manual_enrol_users": {"moodle/course:view", "enrol/manual:enrol"},
        "core_enrol_get_enrolled_users": {"moodle/course:viewparticipants"},
        "core_user_get_users_by_field": {"moodle/user:viewalldetails"},
        "mod_attendance_add_attendance": {
            "moodle/course:manageactivities",
            "mod/attendance:addinstance",
        },
    }
    for name, capabilities in needs.items():
        assert capabilities <= set(FUNCTIONS[name].capabilities), name


def test_deletion_capabilities_are_marked():
    table = capabilities_markdown()
    assert "| `moodle/user:delete` | `core_user_delete_users` (deletion" in table
    assert table.count("\n") == len(role_capabilities()) + 2


def test_module_prints_both_lists():
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "openeducat_moodle.moodle", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    assert run().startswith("| function | read/write | needed for |")
    assert run("capabilities") == capabilities_markdown()
