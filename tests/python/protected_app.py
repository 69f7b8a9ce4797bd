"""A tiny WSGI service protected by keystonemiddleware's auth_token, as an
OpenStack service would deploy it, for tests/tests/keystonemiddleware.rs.

    python protected_app.py IDENTITY_URL PORT

IDENTITY_URL is the identity server's base URL (a shard or a gateway,
http://127.0.0.1:NNNN); PORT 0 picks a free port. The service user and its
project (domain Default) are KEYFED_SERVICE_USER and KEYFED_SERVICE_PROJECT
(default: the bootstrap admin, project admin); its password comes from the
KEYFED_SERVICE_PASSWORD environment variable, never the command line. Once listening, prints one line
"listening on http://127.0.0.1:PORT" to stdout.

Every request that passes auth_token is answered 200 with a JSON body of the
identity headers auth_token set; the rest get auth_token's own 401.
"""

import json
import logging
import os
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from keystonemiddleware import auth_token


def app(environ, start_response):
    body = json.dumps(
        {
            "identity_status": environ.get("HTTP_X_IDENTITY_STATUS"),
            "user_id": environ.get("HTTP_X_USER_ID"),
            "user_name": environ.get("HTTP_X_USER_NAME"),
            "project_id": environ.get("HTTP_X_PROJECT_ID"),
            "project_name": environ.get("HTTP_X_PROJECT_NAME"),
            "roles": environ.get("HTTP_X_ROLES"),
        }
    ).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
        logging.getLogger("protected_app").info(format, *args)


def main():
    identity_url, port = sys.argv[1].rstrip("/"), int(sys.argv[2])
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # What an [keystone_authtoken] section (or api-paste.ini filter) holds.
    conf = {
        "www_authenticate_uri": identity_url,
        "auth_url": identity_url,
        "auth_type": "password",
        "username": os.environ.get("KEYFED_SERVICE_USER", "admin"),
        "password": os.environ["KEYFED_SERVICE_PASSWORD"],
        "project_name": os.environ.get("KEYFED_SERVICE_PROJECT", "admin"),
        "user_domain_name": "Default",
        "project_domain_name": "Default",
        "region_name": "RegionOne",
        "delay_auth_decision": "false",
        # -1 disables the token cache, so a revocation is seen at once.
        "token_cache_time": "-1",
        "http_request_max_retries": "0",
    }
    protected = auth_token.AuthProtocol(app, conf)
    server = make_server("127.0.0.1", port, protected, handler_class=QuietHandler)
    print(f"listening on http://127.0.0.1:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
