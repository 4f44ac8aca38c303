"""``python -m openeducat_moodle.moodle``: print the functions Moodle's service needs."""

import sys

from .catalogue import markdown

sys.stdout.write(markdown())
