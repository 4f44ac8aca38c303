"""Serialise access to the simulator state (the HTTP server is threaded)."""

import functools


def locked(method):
    """Run ``method`` while holding the instance's re-entrant lock."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper
