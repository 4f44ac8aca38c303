"""Constants shared by the Odoo layer."""

import datetime

CHANNEL = "root.moodle"
# Namespaces of the advisory locks that serialise the runs of one instance
# (pg_try_advisory_xact_lock(namespace, instance id)): push, drift check and
# import; grade and completion pulls; attendance.
PUSH_LOCK = 0x4D4F4F44
PULL_LOCK = 0x4D4F4F45
ATTENDANCE_LOCK = 0x4D4F4F46
# Ordinary jobs start this long after a backoff ends, so that the probe (one
# call to Moodle) goes first.
PROBE_LEAD = datetime.timedelta(seconds=60)
