"""Serve the example project for the OpenAPI tests: ``python serve_example.py PORT``.

``manage.py runserver`` with one difference: Nagle's algorithm is off on the accepted sockets.
Django's development server writes a response's headers and body in two sends; on a
keep-alive connection (which schemathesis' HTTP session uses) the second waits for the
client's delayed ACK, adding ~40 ms to every request. Static files are served, like
``runserver --insecure``, so Swagger UI and Redoc load their (offline) assets.

``ARC_SERVE_TIMING=1`` logs each request's duration (``TIMING method path ms query``).
"""

from __future__ import annotations

import os
import socketserver
import sys
import time
from typing import Any


def main(port: int) -> None:
    import django

    django.setup()
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer
    from django.core.wsgi import get_wsgi_application

    class Handler(WSGIRequestHandler):
        disable_nagle_algorithm = True

    class Server(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True

    app: Any = StaticFilesHandler(get_wsgi_application())
    if os.environ.get("ARC_SERVE_TIMING"):
        app = _timed(app)
    httpd = Server(("127.0.0.1", port), Handler)
    httpd.set_app(app)
    httpd.serve_forever()


def _timed(app: Any) -> Any:
    def wrapper(environ: dict[str, Any], start_response: Any) -> Any:
        started = time.perf_counter()
        try:
            return app(environ, start_response)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
            query = environ.get("QUERY_STRING", "")[:300]
            sys.stderr.write(f"TIMING {method} {path} {elapsed:.1f} {query}\n")

    return wrapper


if __name__ == "__main__":
    main(int(sys.argv[1]))
