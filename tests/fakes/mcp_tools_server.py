"""A small stdio MCP server (official SDK) whose tools tests call from sandbox code."""

import os

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("test-tools")
PRICES = {"apple": 3, "pear": 5}


@server.tool()
def price(item: str) -> int:
    """The price of one item in cents."""
    if item not in PRICES:
        raise ToolError(f"unknown item {item!r}")
    return PRICES[item]


@server.tool()
def shout(text: str, times: int = 1) -> str:
    """The text in upper case, repeated."""
    return text.upper() * times


@server.tool()
def huge() -> str:
    """A reply far larger than any REPL should receive."""
    return "x" * 1_000_000


@server.tool()
def die() -> str:
    """Ends the server process abruptly."""
    os._exit(3)


if __name__ == "__main__":
    server.run()
