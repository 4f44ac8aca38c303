"""Per-record retries: 5 min, 30 min, 4 h, 24 h, then permanently failed."""

import datetime

RETRY_DELAYS = (
    datetime.timedelta(minutes=5),
    datetime.timedelta(minutes=30),
    datetime.timedelta(hours=4),
    datetime.timedelta(hours=24),
)


def next_attempt(retry_count, now):
    """Schedule the next attempt after a failure.

    :param int retry_count: failures so far, this one included
    :param datetime.datetime now: the time of this failure
    :return: ``("error", when)`` while retries remain, ``("failed", None)``
        once the schedule is spent
    """
    if retry_count <= len(RETRY_DELAYS):
        return "error", now + RETRY_DELAYS[retry_count - 1]
    return "failed", None
