"""Print the connector's web-service functions for configure_ws.php.

One line per function, tab-separated: name, feature, older name (or empty),
and the Moodle capabilities the function checks, comma-separated (or empty).
The list is the client's catalogue, the same one ``python -m
openeducat_moodle.moodle`` prints for the README; configure_ws.php gives the
web-service role exactly the capabilities of the functions it puts in the
service, plus ``webservice/rest:use``.
"""

import sys

from openeducat_moodle.moodle.catalogue import FUNCTIONS

for function in FUNCTIONS.values():
    capabilities = ",".join(function.capabilities or ())
    sys.stdout.write(
        f"{function.name}\t{function.feature}\t{function.legacy or ''}"
        f"\t{capabilities}\n"
    )
