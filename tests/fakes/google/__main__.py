"""Run the fake in the foreground: python -m tests.fakes.google --port 8765 --key-file fake-key.json"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import DEFAULT_CLIENT_EMAIL, FakeGoogle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.google", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--key-file", default="fake-key.json", help="where to write the service-account key")
    parser.add_argument("--client-email", default=DEFAULT_CLIENT_EMAIL)
    parser.add_argument("--meet-delay", type=float, default=None, help="seconds before a Meet link exists (default: on the next read)")
    parser.add_argument("--chaos", type=float, default=0.0, help="rate of random faults on API calls")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    google = FakeGoogle(args.host, args.port, meet_delay=args.meet_delay, verbose=args.verbose)
    google.start()
    key = google.service_account_file(args.key_file, args.client_email)
    if args.chaos:
        google.chaos(args.chaos, seed=args.seed)
    print(f"MENTORSHIP_GOOGLE_ENDPOINT={google.url}")
    print(f"service-account key: {key.resolve()} (client_email {args.client_email}, token_uri {google.url}/token)")
    print(f"calendar api_endpoint: {google.api_endpoint('calendar')}   batch: {google.batch_uri('calendar')}")
    print(f"gmail api_endpoint:    {google.api_endpoint('gmail')}   batch: {google.batch_uri('gmail')}")
    print("Ctrl-C to stop.", flush=True)

    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a background job inherits it ignored
        signal.signal(signum, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        google.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
