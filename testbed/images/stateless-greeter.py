"""The test bed's MCP server that keeps no session: go-sdk everything's `greet` tool ("Hi NAME") over stateless
streamable HTTP on port 8080, served by uvicorn, which on SIGTERM stops taking connections and finishes the requests it
has. Its pods can move under a session without ending it (tests/integration/realpods/test_availability.py).
LISTEN_AFTER_SECONDS makes it wait that long before it listens, as a server that loads for a while does
(tests/integration/realpods/test_backend_readiness.py)."""
import os
import time

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

# WARNING: no line per request (uvicorn logs each one at INFO).
server = MCPServer("stateless-greeter", log_level="WARNING")


@server.tool()
def greet(name: str) -> str:
    """Say hi to NAME."""
    return f"Hi {name}"


if __name__ == "__main__":
    time.sleep(float(os.environ.get("LISTEN_AFTER_SECONDS", "0")))
    # Reached through ToolHive's proxy by its Service's name: the Host header is that name, not localhost.
    server.run("streamable-http", host="0.0.0.0", port=8080, stateless_http=True,
               transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
