"""Print the README's generated lists (``python -m ...moodle [capabilities]``).

Without an argument: the functions the Moodle service needs. With
``capabilities``: the capabilities the web-service user's role needs.
"""

import sys

from .catalogue import capabilities_markdown, markdown

if sys.argv[1:] == ["capabilities"]:
    sys.stdout.write(capabilities_markdown())
elif sys.argv[1:]:
    sys.exit("usage: python -m openeducat_moodle.moodle [capabilities]")
else:
    sys.stdout.write(markdown())
