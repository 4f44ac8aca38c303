"""Constants shared by the Odoo layer."""

CHANNEL = "root.moodle"
# Namespace of the advisory lock that serialises the pushes of one instance.
PUSH_LOCK = 0x4D4F4F44
