"""In-memory simulator of Moodle 4.5 REST web services (test support).

>>> fm = FakeMoodle(token="simtoken")
>>> fm.install(responses_mock)            # or: server, url = fm.serve()
"""

from .errors import MoodleError, TransportFault
from .moodle import FakeMoodle
from .schema import FUNCTIONS
from .server import install, serve

__all__ = [
    "FUNCTIONS",
    "FakeMoodle",
    "MoodleError",
    "TransportFault",
    "install",
    "serve",
]
