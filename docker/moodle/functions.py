"""Print the connector's web-service functions for configure_ws.php.

One line per function, tab-separated: name, feature, older name (or empty).
The list is the client's catalogue, the same one ``python -m
openeducat_moodle.moodle`` prints for the README.
"""

import sys

from openeducat_moodle.moodle.catalogue import FUNCTIONS

for function in FUNCTIONS.values():
    sys.stdout.write(f"{function.name}\t{function.feature}\t{function.legacy or ''}\n")
