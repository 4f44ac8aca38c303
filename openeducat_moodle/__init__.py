# Odoo imports the addon as ``odoo.addons.openeducat_moodle``; the plain-Python
# layers (``moodle/``, ``sync/``) are also imported without Odoo, by the unit
# and contract tests and the benchmark, where the ORM layer must stay out.
if __name__.startswith("odoo.addons."):
    from . import models
    from . import services
    from . import wizards
