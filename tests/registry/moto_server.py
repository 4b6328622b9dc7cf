"""moto's S3 as a real HTTP server on 127.0.0.1, for the registry tests.

Requests are served one at a time (a lock around the app), so a conditional
write is atomic the way it is on S3; moto's own threaded server checks and
writes in two steps. Prints the port, then serves until killed.
"""

from __future__ import annotations

import logging
import sys
import threading

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server


class Serialized:
    def __init__(self, app) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            return list(self.app(environ, start_response))


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = make_server("127.0.0.1", 0, Serialized(DomainDispatcherApplication(create_backend_app)), threaded=True)
    print(server.server_address[1], flush=True)
    sys.stdout.close()
    server.serve_forever()


if __name__ == "__main__":
    main()
