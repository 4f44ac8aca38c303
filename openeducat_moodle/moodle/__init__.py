"""The Moodle side of the connector: plain Python, no ``odoo`` import.

``MoodleClient`` is the only object that talks HTTP to Moodle. Everything it
raises is a :class:`~.errors.MoodleError` of one of three kinds (transient,
access, record), so that callers can handle each kind one way.
"""

from .catalogue import FEATURES, FUNCTIONS, WsFunction
from .capabilities import Capabilities, SiteInfo
from .client import BatchResult, MoodleClient, RecordOutcome
from .errors import (
    MoodleAccessError,
    MoodleError,
    MoodleRecordError,
    MoodleTransientError,
)
