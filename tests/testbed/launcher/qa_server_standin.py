"""qa_server as the authorities reload sees it, for one bed ECS task (see ``ecs.py``).

Run by the launcher with the venv's python: ``qa_server_standin.py FD AUTHORITIES_DIR PARENT_PID``,
FD a listening socket on the task's host port, RELOAD_TOKEN in the environment (the
container's variables, as ECS sets them from the env file). It answers as questioning_authority
5.10 does (app/controllers/qa/linked_data_terms_controller.rb, lib/qa/linked_data/authority_service.rb):
- ``GET /authorities/list/linked_data/authorities``: the sorted names of the loaded authorities,
  ``File.basename(fn, '.json').upcase`` of each ``<authorities dir>/linked_data/*.json`` plus the
  engine's own (the gem ships getty_aac, loc and oclc_fast). They are loaded at start too, as
  qa's initializer does: a file that is not JSON stops the stand-in, as it stops the app booting.
- ``GET /authorities/reload/linked_data/authorities?auth_token=T``: with the token (not blank),
  loads the files again and answers the list; a file that is not JSON fails the reload (500)
  and the old set stays, as qa assigns the set only once every file parsed. Otherwise 401 with
  qa's message, which echoes the token it got.
- ``GET /``: 200, the health check.
Bed-only: ``POST /testbed/ignore-reload`` makes reload answer 200 with the old list without
loading (a task that does not take a reload); ``GET /testbed/state``: ``{"names", "reloads"}``.
It exits when its parent (moto) is gone.
"""

import glob
import http.server
import json
import os
import socket
import sys
import threading
import time
import urllib.parse

ENGINE_AUTHORITIES = ("GETTY_AAC", "LOC", "OCLC_FAST")
LIST = "/authorities/list/linked_data/authorities"
RELOAD = "/authorities/reload/linked_data/authorities"


def load(directory):
    names = set(ENGINE_AUTHORITIES)
    for path in glob.glob(os.path.join(glob.escape(directory), "linked_data", "*.json")):
        with open(path, encoding="utf-8") as file:
            json.load(file)
        names.add(os.path.basename(path)[: -len(".json")].upper())
    return sorted(names)


class App:
    def __init__(self, directory, token):
        self.directory, self.token = directory, token
        self.lock = threading.Lock()
        self.names = load(directory)
        self.reloads = 0
        self.ignore_reload = False

    def answer(self, method, target):
        url = urllib.parse.urlsplit(target)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        with self.lock:
            if method == "GET" and url.path == "/":
                return 200, "qa_server stand-in"
            if method == "GET" and url.path == LIST:
                return 200, self.names
            if method == "GET" and url.path == RELOAD:
                token = query.get("auth_token", [""])[0]
                if not self.token.strip() or token != self.token:
                    message = f"Invalid token ({token}) does not match expected token."
                    return 401, {"errors": f"FAIL: unable to reload authorities; error_msg: {message}"}
                if not self.ignore_reload:
                    try:
                        self.names = load(self.directory)
                    except (OSError, ValueError) as error:
                        return 500, {"errors": str(error)}
                    self.reloads += 1
                return 200, self.names
            if method == "POST" and url.path == "/testbed/ignore-reload":
                self.ignore_reload = True
                return 200, {}
            if method == "GET" and url.path == "/testbed/state":
                return 200, {"names": self.names, "reloads": self.reloads}
        return 404, {"errors": "not found"}


def serve(listener, app):
    class Handler(http.server.BaseHTTPRequestHandler):
        def respond(self, method):
            status, body = app.answer(method, self.path)
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.respond("GET")

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.respond("POST")

    server = http.server.ThreadingHTTPServer(listener.getsockname(), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = listener  # the launcher bound it: the port is the one ECS reported
    server.serve_forever()


def exit_with(parent):
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


if __name__ == "__main__":
    fd, directory, parent = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    threading.Thread(target=exit_with, args=(parent,), daemon=True).start()
    app = App(directory, os.environ.get("RELOAD_TOKEN", ""))
    serve(socket.socket(fileno=fd), app)
