"""A plain-HTTP front for the real API server, to put faults at exact moments.

Every request is forwarded, with the test cluster's admin credentials, to the
real API server, whose answers come back unchanged. A test adds hooks that run
before a request is forwarded: make a concurrent change (so the real API server
answers 409), or stop answering (as an API server that goes away does). The
module under test points at it with `host: http://127.0.0.1:PORT`.
"""
import base64
import json
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import urllib3
import yaml


def _credentials(kubeconfig):
    config = yaml.safe_load(Path(kubeconfig).read_text())
    context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])

    def path(entry, key):
        if entry.get(key):
            return str((Path(kubeconfig).parent / entry[key]).resolve())
        data = tempfile.NamedTemporaryFile(delete=False, suffix=".pem")
        data.write(base64.b64decode(entry[key + "-data"]))
        data.close()
        return data.name

    return (cluster["server"], path(cluster, "certificate-authority"), path(user, "client-certificate"),
            path(user, "client-key"))


class FaultyAPI:
    def __init__(self, kubeconfig):
        server, ca, cert, key = _credentials(kubeconfig)
        self.upstream = server
        self.pool = urllib3.PoolManager(ca_certs=ca, cert_file=cert, key_file=key, retries=False)
        # hook(method, path) before each forward; returns "cut" to drop this connection, an HTTP status to answer
        # with instead of the API server (a Status object, as the API server's own 429/503 carry), or a dict to
        # answer 200 with (a list as the API server would give it, say before a controller created an object).
        self.hooks = []
        self.log = []  # (method, path, status) of every request answered
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
                cut = [hook(self.command, self.path) for hook in list(proxy.hooks)]
                if "cut" in cut or proxy.gone.is_set():
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                status = next((answer for answer in cut if isinstance(answer, (int, dict))), None)
                if status:
                    body = json.dumps(status if isinstance(status, dict) else {
                        "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": status,
                        "message": "the front answered %d" % status}).encode()
                    status = 200 if isinstance(status, dict) else status
                    proxy.log.append((self.command, self.path.split("?")[0], status))
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept")}
                response = proxy.pool.request(self.command, proxy.upstream + self.path, body=body, headers=headers)
                proxy.log.append((self.command, self.path.split("?")[0], response.status))
                self.send_response(response.status)
                self.send_header("Content-Type", response.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(response.data)))
                self.end_headers()
                self.wfile.write(response.data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

            def log_message(self, *args):
                pass

        self.gone = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def go_away(self):
        """From now on every connection is cut before an answer, as a load balancer does whose API server stopped.
        (The port stays open: Ansible's forked workers hold a copy of the listening socket, so closing it here
        would leave connections hanging in their backlog rather than refused.)"""
        self.gone.set()

    def _close(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._close()
