"""What the benchmark measures per phase: wall time, web-service calls and
the time spent inside them, SQL queries, peak memory.

Imports nothing from Odoo: the Odoo runner hands in its query counter.
"""

import collections
import contextlib
import dataclasses
import os
import resource
import threading
import time


def _status_kib(field):
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_rss():
    """Start a new peak-memory window (Linux: ``clear_refs`` 5 resets VmHWM).

    :return: whether the reset worked (else the peak is the process's
        lifetime peak, ``ru_maxrss``)
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def peak_rss_kib():
    return _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@dataclasses.dataclass
class Phase:
    """One measured phase."""

    name: str
    wall: float = 0.0
    moodle_time: float = 0.0
    calls: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    sql: int | None = None
    peak_rss_kib: int | None = None
    peak_is_window: bool = True
    minimum: dict = dataclasses.field(default_factory=dict)
    summary: str = ""
    notes: list = dataclasses.field(default_factory=list)

    def as_dict(self):
        data = dataclasses.asdict(self)
        data["calls"] = dict(self.calls)
        return data

    @classmethod
    def from_dict(cls, data):
        data = dict(data)
        data["calls"] = collections.Counter(data.get("calls") or {})
        return cls(**data)


class Meter:
    """Counts every ``MoodleClient.call`` of a client class and times its round
    trip (``_exchange``: HTTP, Moodle's work, decoding the answer).

    :param client_cls: the ``MoodleClient`` class whose instances the code
        under test builds (``openeducat_moodle.moodle.client.MoodleClient``,
        or under Odoo ``odoo.addons.openeducat_moodle.moodle.client…``)
    :param sql_counter: a callable returning the process's SQL query count
    """

    def __init__(self, client_cls, sql_counter=None):
        self.sql_counter = sql_counter
        self.moodle_time = 0.0
        self.calls = collections.Counter()
        self.phases = []
        original_call = client_cls.call
        original_exchange = client_cls._exchange
        meter = self
        # Jobs running at once (``--workers``) call Moodle from several
        # threads: "in Moodle" is the time at least one call is under way.
        lock = threading.Lock()
        inflight = [0, 0.0]

        def call(client, wsfunction, **params):
            with lock:
                meter.calls[client.aliases.get(wsfunction, wsfunction)] += 1
            return original_call(client, wsfunction, **params)

        def exchange(client, name, body, fields):
            # Moodle's time: the round trip and decoding its answer. Building
            # the request is the connector's work and counts outside.
            with lock:
                if not inflight[0]:
                    inflight[1] = time.perf_counter()
                inflight[0] += 1
            try:
                return original_exchange(client, name, body, fields)
            finally:
                with lock:
                    inflight[0] -= 1
                    if not inflight[0]:
                        meter.moodle_time += time.perf_counter() - inflight[1]

        self._restore = (client_cls, original_call, original_exchange)
        client_cls.call = call
        client_cls._exchange = exchange

    def close(self):
        client_cls, original_call, original_exchange = self._restore
        client_cls.call = original_call
        client_cls._exchange = original_exchange

    @contextlib.contextmanager
    def phase(self, name, minimum=None):
        """Measure the body as one phase; yields the :class:`Phase`."""
        phase = Phase(name, minimum=dict(minimum or {}))
        calls_before = collections.Counter(self.calls)
        moodle_before = self.moodle_time
        sql_before = self.sql_counter() if self.sql_counter else None
        phase.peak_is_window = reset_peak_rss()
        started = time.perf_counter()
        try:
            yield phase
        finally:
            phase.wall = time.perf_counter() - started
            phase.moodle_time = self.moodle_time - moodle_before
            phase.calls = self.calls - calls_before
            if self.sql_counter:
                phase.sql = self.sql_counter() - sql_before
            phase.peak_rss_kib = peak_rss_kib()
            self.phases.append(phase)


def machine():
    """Where the benchmark ran: CPU model, cores, memory, Python."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) / 1024 / 1024
                    break
    except OSError:
        pass
    text = f"{model}, {os.cpu_count()} cores"
    if mem:
        text += f", {mem:.1f} GiB RAM"
    return text
