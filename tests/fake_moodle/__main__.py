"""``python -m tests.fake_moodle --port 8099 --token simtoken [--seed-demo]
[--flavour 5.1 [--course-qbank]]``."""

import argparse
import threading

from .moodle import FakeMoodle
from .seed import seed_demo


def main(argv=None):
    parser = argparse.ArgumentParser(description="Fake Moodle 4.5/5.1 REST server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--token", default="simtoken")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--max-input-vars", type=int, default=5000)
    parser.add_argument("--debug", action="store_true", help="add debuginfo")
    parser.add_argument("--flavour", choices=("4.5", "5.1"), default="4.5")
    parser.add_argument(
        "--course-qbank",
        action="store_true",
        help="5.1: give every new course a hidden question bank module",
    )
    parser.add_argument("--seed-demo", action="store_true")
    args = parser.parse_args(argv)
    fm = FakeMoodle(
        token=args.token, max_input_vars=args.max_input_vars, flavour=args.flavour
    )
    fm.latency = args.latency
    fm.debug = args.debug
    fm.course_qbank = args.course_qbank
    if args.seed_demo:
        seed_demo(fm)
    server, base_url = fm.serve(args.host, args.port)
    print(f"Fake Moodle on {base_url}/webservice/rest/server.php", flush=True)
    try:
        threading.Event().wait()  # the server runs in a daemon thread
    except KeyboardInterrupt:
        server.shutdown()
        server.server_close()


if __name__ == "__main__":
    main()
