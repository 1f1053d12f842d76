"""The gateway as an MCP server (official `mcp` SDK), over stdio or streamable HTTP with bearer-token auth.

No `from __future__ import annotations` here: the SDK reads the tool functions' annotations at registration, and
they name `Context`, which is imported lazily so that `rlm_plugins.mcp` imports without the `mcp` extra.
"""

import asyncio
import hmac
import json
from collections.abc import Sequence
from typing import Any

from rlm_plugins.errors import ConfigurationError
from rlm_plugins.mcp.gateway import Gateway, GatewayConfig, _bridge, client_id
from rlm_plugins.mcp.workspace import MAX_READ_LINES

PROVENANCE_URI = "rlm://provenance"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def build_server(config: GatewayConfig) -> Any:
    """An `mcp.server.MCPServer` exposing the gateway's tools and its provenance log."""
    from mcp.server import MCPServer
    from mcp.server.mcpserver import Context

    gateway = Gateway(config)
    server = MCPServer(
        "rlm-plugins",
        instructions=(
            "A read-only workspace. open() a path or glob to get handles, then list/read/search them in bounded "
            "pieces; for questions over large files call rlm_query(question, handles): a Recursive Language "
            "Model reads them in a sandboxed REPL, so they never enter your prompt."
        ),
    )

    def run(ctx: Context, tool: str, **arguments: Any) -> dict[str, Any]:
        return json.loads(gateway.call(client_id(ctx.headers), tool, arguments))

    @server.tool(name="open")
    def open_(path_or_glob: str, ctx: Context) -> dict[str, Any]:
        """Open a workspace file, or every file a glob such as 'src/**/*.py' matches; returns opaque handles."""
        return run(ctx, "open", path_or_glob=path_or_glob)

    @server.tool(name="list")
    def list_(ctx: Context, handle_or_dir: str = ".") -> dict[str, Any]:
        """List a workspace directory (names relative to the workspace, kinds and sizes)."""
        return run(ctx, "list", handle_or_dir=handle_or_dir)

    @server.tool()
    def read(handle: str, ctx: Context, start_line: int = 1, n_lines: int = MAX_READ_LINES) -> dict[str, Any]:
        """Read lines of an opened file: at most 200 lines and 8 KB per call."""
        return run(ctx, "read", handle=handle, start_line=start_line, n_lines=n_lines)

    @server.tool()
    def search(handle_or_dir: str, pattern: str, ctx: Context, max_hits: int = 50) -> dict[str, Any]:
        """Regex search in an opened file or a workspace directory; returns at most max_hits (<= 200) lines."""
        return run(ctx, "search", handle_or_dir=handle_or_dir, pattern=pattern, max_hits=max_hits)

    @server.tool()
    async def rlm_query(
        question: str, handles: list[str], ctx: Context, budget: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Answer a question over the opened files with a Recursive Language Model (files stay out of prompts).

        budget may set max_iterations, max_llm_calls, max_time (s) and max_cost (USD), capped by the server."""
        loop = asyncio.get_running_loop()

        async def send(progress: float, message: str) -> None:
            await ctx.report_progress(progress, float(gateway.config.budget["max_iterations"]), message)

        text = await gateway.rlm_query(client_id(ctx.headers), question, handles, budget, _bridge(loop, send))
        return json.loads(text)

    @server.resource(PROVENANCE_URI, mime_type="application/x-ndjson")
    def provenance() -> str:
        """The provenance log: one JSON line per gateway operation (the latest 256 KB)."""
        return gateway.provenance.tail()

    server.gateway = gateway  # type: ignore[attr-defined]
    return server


class BearerAuth:
    """ASGI middleware: every HTTP request must carry `Authorization: Bearer <one of tokens>` (constant time)."""

    def __init__(self, app: Any, tokens: Sequence[str]) -> None:
        self.app = app
        self.tokens = [t.encode() for t in tokens]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self._allowed(scope):
            body = json.dumps({"error": "missing or wrong bearer token"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: dict[str, Any]) -> bool:
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            return False
        return any(hmac.compare_digest(token.strip(), known) for known in self.tokens)


def http_app(config: GatewayConfig, tokens: Sequence[str], host: str = "127.0.0.1") -> Any:
    """The streamable-HTTP ASGI app at /mcp, behind bearer auth."""
    if not tokens:
        raise ConfigurationError("the HTTP gateway needs a bearer token: pass --token (or RLM_MCP_TOKEN)")
    server = build_server(config)
    return BearerAuth(server.streamable_http_app(host=host), tokens)


def serve_http(config: GatewayConfig, tokens: Sequence[str], host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the gateway over streamable HTTP until interrupted."""
    import uvicorn

    uvicorn.run(http_app(config, tokens, host), host=host, port=port, log_level="warning")


def serve_stdio(config: GatewayConfig) -> None:
    """Serve the gateway over stdio (what IDE agents launch) until the client closes it."""
    build_server(config).run("stdio")
