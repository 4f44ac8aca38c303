"""The scale benchmark of openeducat_moodle: ``python -m bench --help``.

Core mode imports only the plain-Python layers (``openeducat_moodle.moodle``
and ``openeducat_moodle.sync``) and the simulator; Odoo mode runs a worker
under Odoo's own Python (``bench/odoo_worker.py``).
"""
