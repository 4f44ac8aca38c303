"""Moodle unreachable, and a reply lost after Moodle did the work.

On the simulator these use its fault modes (``fm.outage``, ``lost_reply``);
on a real Moodle the same happens for real: the client is pointed at a port
nobody listens on, or talks to Moodle through a proxy that forwards the
request, waits for Moodle's whole answer, then closes the connection without
passing it on. Both sides must look the same to the client.
"""

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from openeducat_moodle.moodle import MoodleTransientError


class _Clock:
    def __init__(self):
        self.now = 1_790_000_000.0

    def __call__(self):
        return self.now


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Dropper(BaseHTTPRequestHandler):
    """Forwards a request to Moodle, then hangs up instead of answering."""

    def log_message(self, format, *args):
        return

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        upstream = self.server.upstream + self.path
        requests.post(
            upstream,
            data=body,
            headers={"Content-Type": self.headers.get("Content-Type", "")},
            timeout=60,
        )  # Moodle's whole answer has arrived: Moodle did the work
        self.server.dropped += 1
        self.close_connection = True  # and the client never gets it


@contextlib.contextmanager
def _reply_dropping_proxy(upstream):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Dropper)
    server.daemon_threads = True
    server.upstream = upstream.rstrip("/")
    server.dropped = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_unreachable_moodle_is_transient_and_writes_nothing(moodle):
    record = moodle.category_record()
    if moodle.fm is not None:
        clock = moodle.fm.clock = _Clock()
        moodle.fm.outage(60)
        client = moodle.make_client()
    else:
        client = moodle.make_client(base_url=f"http://127.0.0.1:{_closed_port()}")

    result = client.create_categories([record])

    assert isinstance(result.aborted, MoodleTransientError)
    assert result.aborted.errorcode == "connectionerror"
    assert [o.status for o in result.outcomes] == ["pending"]
    if moodle.fm is not None:
        clock.now += 60  # Moodle is back
    assert moodle.client.get_categories(idnumber=record["idnumber"]) == []


def test_a_lost_reply_leaves_the_record_written_once(moodle):
    category = moodle.new_category()
    record = moodle.course_record(category["id"])
    with contextlib.ExitStack() as stack:
        if moodle.fm is not None:
            moodle.fm.inject("lost_reply", function="core_course_create_courses")
            client = moodle.make_client()
        else:
            proxy, url = stack.enter_context(_reply_dropping_proxy(moodle.base_url))
            client = moodle.make_client(base_url=url)

        result = client.create_courses([record])

    assert isinstance(result.aborted, MoodleTransientError)
    assert result.aborted.errorcode == "connectionerror"
    assert [o.status for o in result.outcomes] == ["pending"]
    # Moodle did the work: the course is there, once
    found = moodle.client.get_courses_by_field("idnumber", record["idnumber"])
    moodle.cleanup.courses.extend(c["id"] for c in found)
    assert [c["shortname"] for c in found] == [record["shortname"]]
    if moodle.fm is None:
        assert proxy.dropped == 1
    # sending it again is Moodle's uniqueness error, not a second course
    again = moodle.track("courses", moodle.client.create_courses([record]))
    assert again.outcomes[0].status == "failed"
    assert again.outcomes[0].error.errorcode == "shortnametaken"
