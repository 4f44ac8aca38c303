"""The compose Moodle installs the companion plugin local_openeducat and sets
the web services up with it.

The image copies the repository's ``local_openeducat/`` into Moodle's
``local/openeducat`` (so Moodle's install/upgrade CLI installs it), and
``docker/moodle/entrypoint.sh`` then runs the plugin's ``cli/setup.php`` with
the token taken from ``MOODLE_SYNC_TOKEN`` by name; ``configure_ws.php`` stays
the fallback (no plugin in Moodle's code tree, or ``MOODLE_WS_PLUGIN=false``).
The entrypoint runs here with stand-ins for ``php``, ``runuser`` and ``chown``
that record each command instead of running it.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MOODLE = ROOT / "docker" / "moodle"
# Not a Moodle token: any 32 letters and digits pass the entrypoint's check.
FAKE_TOKEN = "NotAToken" * 3 + "Fake0"

PHP_STUB = """#!{python}
import json, os, sys
with open(os.environ["CALLS"], "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1].endswith("dbstate.php"):
    print(os.environ["DBSTATE"])
"""
RUNUSER_STUB = """#!/bin/bash
while [ "$1" != "--" ]; do shift; done
shift
exec "$@"
"""


def _run_entrypoint(tmp_path, dbstate="installed", plugin=True, **env):
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name, text in (
        ("php", PHP_STUB.format(python=sys.executable)),
        ("runuser", RUNUSER_STUB),
        ("chown", "#!/bin/bash\nexit 0\n"),
    ):
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    moodle = tmp_path / "moodle"
    if plugin:
        (moodle / "local" / "openeducat" / "cli").mkdir(parents=True)
        (moodle / "local" / "openeducat" / "cli" / "setup.php").write_text("<?php\n")
    else:
        moodle.mkdir()
    calls = tmp_path / "calls.jsonl"
    environ = {
        "PATH": f"{stubs}{os.pathsep}{os.environ.get('PATH', '')}",
        "CALLS": str(calls),
        "DBSTATE": dbstate,
        "MOODLE_DIR": str(moodle),
        "MOODLE_DATAROOT": str(tmp_path / "data"),
        "OEC_LIB": "/oec",
        "MOODLE_CRON": "false",
        "MOODLE_DB_PASSWORD": "db",
        "MOODLE_ADMIN_PASSWORD": "admin",
        "MOODLE_SYNC_TOKEN": FAKE_TOKEN,
        **env,
    }
    done = subprocess.run(
        ["bash", str(MOODLE / "entrypoint.sh"), "true"],
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert FAKE_TOKEN not in done.stdout + done.stderr
    lines = calls.read_text().splitlines() if calls.exists() else []
    return [json.loads(line) for line in lines], str(moodle)


def _scripts(calls):
    return [call[0] for call in calls]


def test_installed_site_upgrades_then_runs_the_plugin_setup(tmp_path):
    calls, moodle = _run_entrypoint(tmp_path)
    setup = f"{moodle}/local/openeducat/cli/setup.php"
    assert _scripts(calls) == [
        "/oec/dbstate.php",
        f"{moodle}/admin/cli/upgrade.php",
        "/oec/admin_password.php",
        setup,
        f"{moodle}/admin/cli/cfg.php",
    ]
    assert calls[3] == [setup, "--token-env=MOODLE_SYNC_TOKEN"]
    # The token goes by the variable's name, never on a command line.
    assert not any(FAKE_TOKEN in arg for call in calls for arg in call)


def test_new_site_installs_moodle_and_the_plugin_before_the_setup(tmp_path):
    calls, moodle = _run_entrypoint(tmp_path, dbstate="empty")
    scripts = _scripts(calls)
    assert scripts[1] == f"{moodle}/admin/cli/install_database.php"
    assert scripts.index(f"{moodle}/local/openeducat/cli/setup.php") > 1
    assert "/oec/configure_ws.php" not in scripts


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes"])
def test_cleanup_functions_only_on_request(tmp_path, value):
    calls, _ = _run_entrypoint(tmp_path, MOODLE_WS_CLEANUP=value)
    setup = [c for c in calls if c[0].endswith("/local/openeducat/cli/setup.php")]
    assert setup == [[setup[0][0], "--token-env=MOODLE_SYNC_TOKEN", "--with-cleanup"]]


def test_no_cleanup_functions_by_default(tmp_path):
    calls, _ = _run_entrypoint(tmp_path, MOODLE_WS_CLEANUP="false")
    assert not any("--with-cleanup" in call for call in calls)


@pytest.mark.parametrize(
    ("plugin", "env"),
    [(False, {}), (True, {"MOODLE_WS_PLUGIN": "false"})],
    ids=["no-plugin", "MOODLE_WS_PLUGIN=false"],
)
def test_configure_ws_is_the_fallback(tmp_path, plugin, env):
    calls, moodle = _run_entrypoint(tmp_path, plugin=plugin, **env)
    assert _scripts(calls)[-1] == "/oec/configure_ws.php"
    assert calls[-1] == [
        "/oec/configure_ws.php",
        f"--moodledir={moodle}",
        "--functions=/oec/functions.tsv",
    ]
    assert not any("openeducat/cli/setup.php" in call[0] for call in calls)


def test_the_image_holds_the_plugin_in_local_openeducat():
    dockerfile = (MOODLE / "Dockerfile").read_text()
    # one logical line per instruction
    instructions = re.sub(r"\\\n", " ", dockerfile).splitlines()
    assert "COPY local_openeducat /var/www/html/local/openeducat" in instructions
    # ... and the build context sends the folder: the last matching line wins.
    ignore = (MOODLE / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in ignore
    assert "!local_openeducat" in ignore[ignore.index("*") + 1 :]
    compose = (ROOT / "docker-compose.yml").read_text()
    assert re.search(r"context: \.\n\s+dockerfile: docker/moodle/Dockerfile\n", compose)
    assert (ROOT / "local_openeducat" / "cli" / "setup.php").is_file()


def test_configure_ws_builds_the_role_with_the_plugin_code():
    """One role builder: configure_ws.php calls the plugin's setup class."""
    script = (MOODLE / "configure_ws.php").read_text()
    assert "local_openeducat\\local\\setup" in script
    assert "->grant(" in script
    for own in ("create_role(", "assign_capability(", "core_role_set_assign_allowed("):
        assert own not in script, f"configure_ws.php builds the role itself: {own}"
