"""Constants shared by the Odoo layer."""

CHANNEL = "root.moodle"
