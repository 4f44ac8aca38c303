from . import moodle_instance
from . import moodle_mapping
