"""Transports: a ``responses`` callback and a threaded HTTP server."""

import re
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from .errors import TransportFault


def install(fm, rsps, base_url="https://moodle.test"):
    """Register ``fm`` on a ``responses.RequestsMock`` for every URL of the host.

    POST (or GET) ``{base_url}/webservice/rest/server.php`` is answered by
    :meth:`FakeMoodle.handle`; any other path of the host (another folder in
    front of ``/webservice`` included) gets a 404 HTML page, like the web
    server in front of a real Moodle.
    """

    base_url = base_url.rstrip("/")
    fm.base_url = base_url
    parts = urlsplit(base_url)
    host = f"{parts.scheme}://{parts.netloc}"
    pattern = re.compile(re.escape(host) + r"([/?].*)?$")

    def callback(request):
        parts = urlsplit(request.url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        body = request.body or b""
        try:
            status, headers, payload = fm.handle(body, path)
        except TransportFault as fault:
            raise _requests_error(fault.kind, request) from None
        return status, headers, payload

    for method in ("GET", "POST"):
        rsps.add_callback(method, pattern, callback=callback)
    return rsps


def _requests_error(kind, request):
    """The ``requests`` exception a client meets for a transport fault."""
    import requests

    if kind in ("timeout", "slow_reply"):
        return requests.exceptions.ReadTimeout(
            "Read timed out. (simulated)", request=request
        )
    if kind == "refused":
        return requests.exceptions.ConnectionError(
            "Failed to establish a new connection: [Errno 111] Connection "
            "refused (simulated)",
            request=request,
        )
    return requests.exceptions.ConnectionError(
        "Connection aborted: RemoteDisconnected (simulated)", request=request
    )


def _reset(sock):
    """Close with a TCP reset (SO_LINGER 0), as a stopped server does."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass


class _Handler(BaseHTTPRequestHandler):
    server_version = "Apache"
    sys_version = ""

    def log_message(self, format, *args):
        return

    def _serve(self, body):
        fm = self.server.fake_moodle
        try:
            status, headers, payload = fm.handle(body, self.path)
        except TransportFault as fault:
            if fault.kind in ("drop", "lost_reply", "refused"):
                # lost_reply: Moodle did the work; the answer never leaves
                if fault.kind == "refused":
                    _reset(self.connection)
                self.close_connection = True
                return
            # timeout: late, then processed; slow_reply: processed, then late
            time.sleep(fm.timeout_sleep)
            status, headers, payload = fault.resume()
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. timeout)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self._serve(self.rfile.read(length) if length else b"")

    def do_GET(self):
        self._serve(b"")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        """Stay quiet when a client disconnects early (timeouts, drops)."""
        return

    def verify_request(self, request, client_address):
        """During an outage (:meth:`FakeMoodle.outage`) new connections are
        reset at once; requests on an open keep-alive connection are reset by
        the handler."""
        fm = self.fake_moodle
        if fm.refusing():
            with fm._lock:
                fm.fault_counts["refused"] += 1
            _reset(request)
            return False
        return True


def serve(fm, host="127.0.0.1", port=0):
    """Serve ``fm`` in a daemon thread; return ``(server, base_url)``.

    Stop with ``server.shutdown()`` (and ``server.server_close()``).
    """
    server = _Server((host, port), _Handler)
    server.fake_moodle = fm
    base_url = f"http://{host}:{server.server_address[1]}"
    fm.base_url = base_url
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, base_url
