"""The compose set-up's files survive any checkout: LF line endings.

A CRLF checkout (Windows with core.autocrlf) turns a shell script's first line
into ``#!/bin/bash\\r`` ("bad interpreter"): odoo-init would fail and the
Moodle container restart in a loop. ``.gitattributes`` pins LF for every file
under ``docker/`` and for the other scripts; these tests check that it covers
each of them (as git reads it) and that none holds a CR byte now.
"""

import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _scripts():
    """Every file under docker/, and the scripts run outside containers."""
    found = [p for p in sorted((ROOT / "docker").rglob("*")) if p.is_file()]
    found += [
        ROOT / "docker-compose.yml",
        ROOT / ".env.example",
        ROOT / ".ci" / "run",
    ]
    found += sorted(ROOT.glob("tests/**/*.sh"))
    return [
        p
        for p in found
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    ]


def _relative(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def test_the_scripts_are_found():
    names = _relative(_scripts())
    for expected in (
        "docker/odoo/init.sh",
        "docker/moodle/entrypoint.sh",
        "docker/moodle/Dockerfile",
        "docker/moodle/configure_ws.php",
    ):
        assert expected in names


@pytest.mark.parametrize("path", _relative(_scripts()))
def test_no_carriage_return(path):
    assert b"\r" not in (ROOT / path).read_bytes(), f"{path} has CR bytes"


def test_gitattributes_keeps_every_script_lf():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: git check-attr cannot read .gitattributes")
    paths = _relative(_scripts())
    answer = subprocess.run(
        ["git", "check-attr", "eol", "--", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    eol = dict(line.rpartition(": eol: ")[::2] for line in answer.splitlines())
    missing = [p for p in paths if eol.get(p) != "lf"]
    assert not missing, f".gitattributes does not pin eol=lf for {missing}"
