"""Print the functions the Moodle service needs (``python -m ...moodle``)."""

import sys

from .catalogue import markdown

sys.stdout.write(markdown())
