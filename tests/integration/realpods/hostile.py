"""A hostile MCP server for the check's bounds, run by the mcp-server-time image's python3 as an
MCPServer's backend (container `mcp`). It answers initialize and ping like a server, and then, by
HOSTILE_MODE, answers tools/list: `slow` (after 10 minutes), `huge` (a 64 MiB JSON reply), `malformed`
(a text that is not JSON, declared application/json), `drip` (one byte every 2 seconds, forever).
Each initialize gets a session ID of its own, as a real server's: ToolHive's proxy runner (v0.47.0) keeps a
closed session's ID closed, so a constant one would be "Session not found" after the check's first DELETE."""
import http.server
import json
import os
import time
import uuid

MODE = os.environ.get("HOSTILE_MODE", "slow")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", content_type="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.reply(405)

    def do_DELETE(self):
        self.reply(204)

    def do_POST(self):
        message = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if "id" not in message:
            self.reply(202)
            return
        method = message.get("method")
        if method == "initialize":
            result = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                      "serverInfo": {"name": "hostile-" + MODE, "version": "1"}}
            self.reply(200, json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode(),
                       headers=[("Mcp-Session-Id", uuid.uuid4().hex)])
            return
        if method != "tools/list":
            self.reply(200, json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": {}}).encode())
            return
        if MODE == "slow":
            time.sleep(600)
        elif MODE == "malformed":
            self.reply(200, b"<html>this is not JSON-RPC</html>")
        elif MODE == "huge":
            size = 64 << 20
            head = b'{"jsonrpc":"2.0","id":%d,"result":{"tools":[],"pad":"' % message["id"]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(head) + size + 3))
            self.end_headers()
            self.wfile.write(head)
            chunk = b"x" * 65536
            for _chunk in range(size // len(chunk)):
                self.wfile.write(chunk)
            self.wfile.write(b'"}}')
        elif MODE == "drip":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            while True:
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(2)


http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
