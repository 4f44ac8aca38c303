"""Fail when the README's Moodle function list differs from the catalogue."""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openeducat_moodle.moodle.catalogue import markdown

BEGIN = "<!-- catalogue:begin -->\n"
END = "<!-- catalogue:end -->"


def main():
    readme = (ROOT / "README.md").read_text()
    start = readme.index(BEGIN) + len(BEGIN)
    stop = readme.index(END)
    if readme[start:stop] != markdown():
        sys.stderr.write(
            "README.md's function list is out of date; paste the output of\n"
            "  python -m openeducat_moodle.moodle\n"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
