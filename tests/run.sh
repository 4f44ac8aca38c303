#!/usr/bin/env bash
# The test command: builds its own virtual environment, runs every test layer
# this machine can run, and ends with a summary naming what was skipped and why.
#
#   tests/run.sh              lint, unit, contract, compose check, Odoo layer
#
# Optional environment:
#   MOODLE_URL, MOODLE_TOKEN  also run the contract suite against a real Moodle
#   ODOO_PYTHON               a Python that can `import odoo` (Odoo 17 with
#                             OpenEduCat 17 and queue_job on its addons path)
#   ODOO_RC, ODOO_DB          that Odoo's configuration file and a database
#                             where openeducat_core and queue_job are installed
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${TEST_VENV:-$ROOT/.venv}
REPORTS=$ROOT/.test-reports
rm -rf "$REPORTS" && mkdir -p "$REPORTS"

summary=()
failed=0
note() { summary+=("$1"); }
fail() { summary+=("$1"); failed=1; }

echo "== virtual environment: $VENV"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" || { echo "cannot create $VENV"; exit 2; }
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
  -r requirements-test.txt || { echo "cannot install requirements-test.txt"; exit 2; }
PY=$VENV/bin/python

echo "== lint: ruff"
if "$VENV/bin/ruff" check . && "$VENV/bin/ruff" format --check .; then
  note "lint ruff: passed"
else
  fail "lint ruff: FAILED"
fi

echo "== lint: pylint-odoo (17.0 checks)"
if "$VENV/bin/pylint" --rcfile=.pylintrc-mandatory openeducat_moodle openeducat_moodle_exam; then
  note "lint pylint-odoo: passed"
else
  fail "lint pylint-odoo: FAILED"
fi
echo "== lint: pylint-odoo, every check (informational, as in OCA's template)"
"$VENV/bin/pylint" --rcfile=.pylintrc --exit-zero openeducat_moodle openeducat_moodle_exam

echo "== README function list matches the client's catalogue"
if "$PY" tests/check_readme.py; then
  note "readme catalogue: current"
else
  fail "readme catalogue: FAILED (regenerate with python -m openeducat_moodle.moodle)"
fi

echo "== unit and contract tests"
if [ -n "${MOODLE_URL:-}" ] && [ -n "${MOODLE_TOKEN:-}" ]; then
  note "contract layer: against the simulator and the real Moodle at MOODLE_URL"
else
  note "contract layer: simulator only (real-Moodle run skipped: MOODLE_URL and MOODLE_TOKEN not set)"
fi
"$PY" -m pytest -q tests/unit tests/contract --junitxml="$REPORTS/core.xml"
case $? in
  0) note "unit+contract tests: passed" ;;
  *) fail "unit+contract tests: FAILED" ;;
esac

echo "== plain-Python suite under every Python Odoo 17 supports (3.10, 3.11, 3.12)"
# The official odoo:17.0 image runs Python 3.10; the suite must not lean on a
# newer interpreter. Each one found gets its own small environment (the
# run-time requirements plus pytest and responses).
find_python() {
  local v=$1 candidate
  for candidate in "python$v" "$HOME/.pyenv/versions/$v"*/bin/python \
      "/root/.pyenv/versions/$v"*/bin/python "/usr/bin/python$v" "/usr/local/bin/python$v"; do
    if command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$v'.split('.'))))" 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}
main_v=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
mkdir -p "$REPORTS/interpreters"
for v in 3.10 3.11 3.12; do
  if [ "$v" = "$main_v" ]; then
    note "python $v: the unit+contract run above"
    continue
  fi
  interp=$(find_python "$v") || { note "python $v: NOT RUN, no such interpreter here (install it, e.g. pyenv install $v)"; continue; }
  venv_v=$ROOT/.venv-py$v
  if [ ! -x "$venv_v/bin/python" ]; then
    "$interp" -m venv "$venv_v" || { fail "python $v: cannot create $venv_v"; continue; }
  fi
  if ! "$venv_v/bin/python" -m pip install --quiet --disable-pip-version-check \
      -r requirements.txt "$(grep '^pytest==' requirements-test.txt)" \
      "$(grep '^responses==' requirements-test.txt)" > "$REPORTS/interpreters/pip-py$v.txt" 2>&1; then
    tail -20 "$REPORTS/interpreters/pip-py$v.txt"
    fail "python $v: cannot install the test requirements"
    continue
  fi
  if "$venv_v/bin/python" -m pytest -q -p no:cacheprovider tests/unit tests/contract \
      > "$REPORTS/interpreters/py$v.txt" 2>&1; then
    note "python $v ($interp): unit+contract passed ($(tail -1 "$REPORTS/interpreters/py$v.txt"))"
  else
    tail -30 "$REPORTS/interpreters/py$v.txt"
    fail "python $v ($interp): unit+contract FAILED"
  fi
done

echo "== benchmark smoke test (small preset, sync core, simulator over loopback HTTP)"
# Targets on calls only: time and memory are judged in the benchmark proper
# (BENCHMARKS.md), never in the test command, where the machine's load varies.
if "$PY" -m bench --preset small --mode core --check counts > "$REPORTS/bench-small.txt" 2>&1; then
  note "benchmark smoke (small preset): passed, call-count targets met (see $REPORTS/bench-small.txt)"
else
  tail -30 "$REPORTS/bench-small.txt"
  fail "benchmark smoke (small preset): FAILED"
fi

echo "== chaos smoke test (small preset, faults at 5 %, seeded: nothing lost, nothing twice)"
# Call counts and object-for-object comparison only, no timing (see BENCHMARKS.md).
if "$PY" -m bench --preset small --mode core --chaos 0.05 --check counts \
    > "$REPORTS/chaos-small.txt" 2>&1; then
  note "chaos smoke (rate 0.05): passed, nothing lost or duplicated (see $REPORTS/chaos-small.txt)"
else
  tail -40 "$REPORTS/chaos-small.txt"
  fail "chaos smoke (rate 0.05): FAILED"
fi

echo "== docker-compose.yml, validated statically"
if ! command -v docker-compose >/dev/null 2>&1 && [ "$(id -u)" = 0 ] \
  && command -v apt-get >/dev/null 2>&1; then
  (apt-get install -y -qq docker-compose >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 \
         && apt-get install -y -qq docker-compose >/dev/null 2>&1; }) || true
fi
if command -v docker-compose >/dev/null 2>&1; then
  if docker-compose --env-file .env.example -f docker-compose.yml config -q; then
    note "compose file: valid (docker-compose config; no container was started)"
  else
    fail "compose file: INVALID"
  fi
else
  note "compose check skipped: docker-compose is not installed and cannot be"
fi

echo "== Odoo layer"
ODOO_PY=${ODOO_PYTHON:-python3}
odoo_version=$("$ODOO_PY" -c 'import odoo.release as r; print(r.version_info[0])' 2>/dev/null || true)
if [ "$odoo_version" != "17" ]; then
  note "odoo layer skipped: Odoo 17 is not importable (set ODOO_PYTHON, ODOO_RC and ODOO_DB)"
elif [ -z "${ODOO_RC:-}" ] || [ -z "${ODOO_DB:-}" ]; then
  note "odoo layer skipped: Odoo 17 is importable but ODOO_RC and ODOO_DB are not set"
else
  # pytest-odoo imports odoo when loaded: it lives only in Odoo's environment.
  "$ODOO_PY" -c 'import pytest_odoo, responses' 2>/dev/null \
    || "$ODOO_PY" -m pip install --quiet pytest-odoo responses
  echo "installing/updating openeducat_moodle and openeducat_moodle_exam in $ODOO_DB"
  if ! "$ODOO_PY" -m odoo -c "$ODOO_RC" -d "$ODOO_DB" --stop-after-init \
      -i openeducat_moodle,openeducat_moodle_exam \
      -u openeducat_moodle,openeducat_moodle_exam --log-level=warn; then
    fail "odoo layer: FAILED (the addon does not install)"
  else
    # The enterprise gradebook path runs apart (below): once openeducat_grading
    # is installed it takes every grade of the database.
    if "$ODOO_PY" -m pytest -q -p no:cacheprovider -c tests/odoo/pytest.ini \
        --odoo-config="$ODOO_RC" --odoo-database="$ODOO_DB" \
        --junitxml="$REPORTS/odoo.xml" --ignore=tests/odoo/test_gradebook.py tests/odoo; then
      note "odoo layer: passed (database $ODOO_DB, grades through the exam writer)"
    else
      fail "odoo layer: FAILED"
    fi

    echo "== Odoo layer, enterprise gradebook path (stand-in openeducat_grading)"
    # A copy of $ODOO_DB (dropped and made again each run) where the stand-in
    # of tests/odoo_addons is installed; only tests/odoo/test_gradebook.py runs
    # there. PostgreSQL is reached with the connection settings of ODOO_RC.
    GRADING_DB="${ODOO_DB}_grading"
    grading_log=$REPORTS/odoo-gradebook-setup.txt
    odoo_addons=$("$ODOO_PY" - "$ODOO_RC" 2>>"$grading_log" <<'PYEOF'
import sys
from odoo.tools import config
config.parse_config(["-c", sys.argv[1]])
print(config["addons_path"])
PYEOF
    )
    grading_addons="$odoo_addons,$ROOT/tests/odoo_addons"
    if [ -z "$odoo_addons" ]; then
      tail -20 "$grading_log"
      fail "odoo layer, gradebook path: FAILED (cannot read the addons path of $ODOO_RC)"
    elif ! "$ODOO_PY" - "$ODOO_RC" "$ODOO_DB" "$GRADING_DB" >>"$grading_log" 2>&1 <<'PYEOF'
import os
import shutil
import sys

import psycopg2
from psycopg2 import sql

from odoo.sql_db import connection_info_for
from odoo.tools import config

rc, source, target = sys.argv[1:4]
config.parse_config(["-c", rc])
_name, params = connection_info_for("postgres")
cnx = psycopg2.connect(**params)
cnx.autocommit = True
try:
    with cnx.cursor() as cr:
        cr.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(target)))
        cr.execute(
            sql.SQL("CREATE DATABASE {} ENCODING 'unicode' TEMPLATE {}").format(
                sql.Identifier(target), sql.Identifier(source)
            )
        )
except psycopg2.Error as err:
    sys.exit(
        f"cannot copy {source} to {target}: {str(err).strip()} "
        "(a copy needs no other session on either database)"
    )
finally:
    cnx.close()
# Attachments (the assets among them) live in the filestore: copy it too.
origin, copy = config.filestore(source), config.filestore(target)
shutil.rmtree(copy, ignore_errors=True)
if os.path.isdir(origin):
    shutil.copytree(origin, copy)
print(f"{source} copied to {target}")
PYEOF
    then
      tail -20 "$grading_log"
      fail "odoo layer, gradebook path: FAILED (cannot create $GRADING_DB from $ODOO_DB)"
    elif ! "$ODOO_PY" -m odoo -c "$ODOO_RC" -d "$GRADING_DB" --stop-after-init \
        --addons-path="$grading_addons" -i openeducat_grading --log-level=warn; then
      fail "odoo layer, gradebook path: FAILED (the stand-in openeducat_grading does not install in $GRADING_DB)"
    else
      "$ODOO_PY" -m pytest -q -p no:cacheprovider -c tests/odoo/pytest.ini \
        --odoo-config="$ODOO_RC" --odoo-addons-path="$grading_addons" \
        --odoo-database="$GRADING_DB" --junitxml="$REPORTS/odoo-gradebook.xml" \
        tests/odoo/test_gradebook.py
      rc=$?
      # Skipped here means the stand-in was not found: that is no pass.
      counts=$("$PY" - "$REPORTS/odoo-gradebook.xml" <<'PYEOF'
import sys, xml.etree.ElementTree as ET
try:
    suites = list(ET.parse(sys.argv[1]).getroot().iter("testsuite"))
except (OSError, ET.ParseError):
    suites = []
tests = sum(int(s.get("tests", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(tests, skipped)
PYEOF
      )
      read -r gb_tests gb_skipped <<<"${counts:-0 0}"
      if [ "$rc" -eq 0 ] && [ "${gb_tests:-0}" -gt 0 ] && [ "${gb_skipped:-0}" -eq 0 ]; then
        note "odoo layer, gradebook path: passed ($gb_tests tests in $GRADING_DB, stand-in openeducat_grading installed, grades through the gradebook writer)"
      elif [ "$rc" -eq 0 ]; then
        fail "odoo layer, gradebook path: FAILED ($gb_skipped of $gb_tests tests skipped in $GRADING_DB: the stand-in is not installed there)"
      else
        fail "odoo layer, gradebook path: FAILED (database $GRADING_DB)"
      fi
    fi
  fi
fi

echo
echo "== summary"
for line in "${summary[@]}"; do echo "  $line"; done
"$PY" - "$REPORTS" <<'PYEOF'
import pathlib, sys, xml.etree.ElementTree as ET
p = f = s = 0
for report in pathlib.Path(sys.argv[1]).glob("*.xml"):
    for suite in ET.parse(report).getroot().iter("testsuite"):
        tests = int(suite.get("tests", 0))
        bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        p += tests - bad - skipped; f += bad; s += skipped
print(f"tests: {p} passed, {f} failed, {s} skipped")
PYEOF
exit $failed
