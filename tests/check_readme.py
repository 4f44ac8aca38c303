"""Fail when the README's generated Moodle lists differ from the catalogue.

Two blocks: the functions of the external service (``catalogue``) and the
capabilities of the web-service user's role (``capabilities``).
"""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from openeducat_moodle.moodle.catalogue import capabilities_markdown, markdown

BLOCKS = [
    ("catalogue", "function list", markdown, "python -m openeducat_moodle.moodle"),
    (
        "capabilities",
        "capability list",
        capabilities_markdown,
        "python -m openeducat_moodle.moodle capabilities",
    ),
]


def block(readme, name):
    """Return the text between ``<!-- name:begin -->`` and ``<!-- name:end -->``."""
    begin = f"<!-- {name}:begin -->\n"
    start = readme.index(begin) + len(begin)
    return readme[start : readme.index(f"<!-- {name}:end -->", start)]


def main():
    readme = (ROOT / "README.md").read_text()
    failed = 0
    for name, what, generate, command in BLOCKS:
        try:
            text = block(readme, name)
        except ValueError:
            sys.stderr.write(f"README.md has no <!-- {name}:begin/end --> block\n")
            failed = 1
            continue
        if text != generate():
            sys.stderr.write(
                f"README.md's {what} is out of date; paste the output of\n  {command}\n"
            )
            failed = 1
    return failed


if __name__ == "__main__":
    sys.exit(main())
