"""MCP both ways: `rlm-plugins mcp`, a gateway for IDE agents, and MCP servers' tools inside the REPL."""

from rlm_plugins.mcp.gateway import Gateway, GatewayConfig
from rlm_plugins.mcp.provenance import ProvenanceLog
from rlm_plugins.mcp.server import build_server, http_app, serve_http, serve_stdio
from rlm_plugins.mcp.tools import McpServerSpec, McpToolset
from rlm_plugins.mcp.workspace import Workspace

__all__ = [
    "Gateway",
    "GatewayConfig",
    "McpServerSpec",
    "McpToolset",
    "ProvenanceLog",
    "Workspace",
    "build_server",
    "http_app",
    "serve_http",
    "serve_stdio",
]
