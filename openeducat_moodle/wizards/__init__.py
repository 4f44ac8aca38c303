from . import moodle_sync_wizard
from . import moodle_import_wizard
