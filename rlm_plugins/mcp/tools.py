"""MCP servers as REPL tools: each tool of each server becomes a host function that sandbox code calls by name.

The connections live on one background event loop owned by `McpToolset`, so the same callables serve sync and
async runs on every sandbox kind (the sandbox only sees host tools). A server that dies is reconnected on the
next call; if that fails, the call raises `McpToolError` inside the REPL code, and the run goes on.
"""

from __future__ import annotations

import asyncio
import atexit
import inspect
import json
import shlex
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rlm_plugins.errors import ConfigurationError, McpToolError

MAX_RESULT_CHARS = 100_000
_TYPES = {"string": str, "integer": int, "number": float, "boolean": bool, "array": list, "object": dict}
_LIVE: weakref.WeakSet[McpToolset] = weakref.WeakSet()


@dataclass
class McpServerSpec:
    """One server: a stdio command (`command`, `args`, `env`) or a streamable-HTTP `url` (with `headers`)."""

    name: str
    command: str | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    prefix: str = ""

    @classmethod
    def parse(cls, spec: str | Mapping[str, Any], index: int) -> McpServerSpec:
        """From a URL, a command line ('python server.py'), or a dict in the `mcpServers` JSON shape."""
        if isinstance(spec, McpServerSpec):
            return spec
        if isinstance(spec, str):
            if spec.startswith(("http://", "https://")):
                return cls(name=f"mcp{index}", url=spec)
            argv = shlex.split(spec)
            if not argv:
                raise ConfigurationError("an empty MCP server command; give a command line or a URL")
            return cls(name=f"mcp{index}", command=argv[0], args=argv[1:])
        if isinstance(spec, Mapping):
            known = {"name", "command", "args", "env", "url", "headers", "prefix"}
            unknown = sorted(set(spec) - known)
            if unknown or not (spec.get("command") or spec.get("url")):
                msg = f"MCP server entries take 'command' (+ 'args', 'env') or 'url' (+ 'headers'); got {sorted(spec)}"
                raise ConfigurationError(msg)
            return cls(**{"name": f"mcp{index}", **dict(spec)})
        raise ConfigurationError(f"mcp_servers entries are URLs, command lines or dicts, not {type(spec).__name__}")


class McpToolset:
    """Connects to MCP servers and exposes their tools as plain callables (`tools()`), until `close()`.

    Args:
        servers: URLs, command lines, or dicts (`{"command": "python", "args": ["srv.py"]}` / `{"url": ...}`).
        call_timeout: seconds one tool call may take.
        max_result_chars: longer results are cut, with a note saying so.

    Raises:
        McpToolError: a server could not be started or listed when the toolset was created.

    Examples:
        >>> with McpToolset(["python my_server.py"]) as mcp:  # doctest: +SKIP
        ...     RLM(model="openai/gpt-5-mini", tools=mcp.tools())
    """

    def __init__(
        self,
        servers: Sequence[str | Mapping[str, Any]],
        *,
        call_timeout: float = 60.0,
        max_result_chars: int = MAX_RESULT_CHARS,
        connect_timeout: float = 30.0,
    ) -> None:
        self.specs = [McpServerSpec.parse(spec, i) for i, spec in enumerate(servers)]
        self.call_timeout = call_timeout
        self.max_result_chars = max_result_chars
        self.connect_timeout = connect_timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="rlm-mcp", daemon=True)
        self._thread.start()
        self._links: dict[str, _Link] = {}
        self._tools: dict[str, Callable[..., Any]] = {}
        self._closed = False
        _LIVE.add(self)
        try:
            for spec in self.specs:
                link = _Link(spec)
                self._links[spec.name] = link
                listed = self._submit(link.connect(), self.connect_timeout)
                for tool in listed:
                    name = spec.prefix + tool.name
                    if not name.isidentifier():
                        name = "".join(ch if ch.isalnum() else "_" for ch in name)
                    if name in self._tools:
                        msg = f"MCP tool {name!r} is offered by two servers; give one a 'prefix'"
                        raise ConfigurationError(msg)
                    self._tools[name] = self._callable(name, link, tool)
        except BaseException:
            self.close()
            raise

    def tools(self) -> dict[str, Callable[..., Any]]:
        """Name → callable for every tool of every server (descriptions as docstrings, schemas as signatures)."""
        return dict(self._tools)

    def _submit(self, coro: Any, timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise McpToolError(f"the MCP server did not answer within {timeout:.0f} s") from None

    def _callable(self, name: str, link: _Link, tool: Any) -> Callable[..., Any]:
        schema = tool.input_schema or {}
        properties: dict[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or [])
        order = [p for p in properties if p in required] + [p for p in properties if p not in required]
        toolset = self

        def call(*args: Any, **kwargs: Any) -> Any:
            if len(args) > len(order):
                raise TypeError(f"{name}() takes at most {len(order)} positional arguments")
            arguments = {**dict(zip(order, args, strict=False)), **kwargs}
            missing = sorted(required - set(arguments))
            if missing:
                raise TypeError(f"{name}() is missing required arguments {missing}")
            if toolset._closed:
                raise McpToolError(f"MCP tool {name!r} is closed (its toolset was closed)")
            result = toolset._submit(link.call(tool.name, arguments), toolset.call_timeout)
            return toolset._convert(name, result)

        params = []
        for prop in order:
            annotation = _TYPES.get(str((properties[prop] or {}).get("type")), Any)
            default = inspect.Parameter.empty if prop in required else (properties[prop] or {}).get("default")
            params.append(
                inspect.Parameter(prop, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=annotation)
            )
        call.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        call.__annotations__ = {p.name: p.annotation for p in params}
        call.__name__ = name
        call.__doc__ = (tool.description or f"The MCP tool {tool.name} of server {link.spec.name}.").strip()
        return call

    def _convert(self, name: str, result: Any) -> Any:
        texts = [getattr(item, "text", "") for item in result.content or [] if getattr(item, "text", None)]
        text = "\n".join(texts)
        if result.is_error:
            raise McpToolError(f"MCP tool {name!r} failed: {text[:2000] or 'no message'}")
        value: Any = text
        structured = result.structured_content
        if structured is not None:
            value = structured["result"] if set(structured) == {"result"} else structured
        size = len(value) if isinstance(value, str) else len(json.dumps(value, default=str))
        if size > self.max_result_chars:
            as_text = value if isinstance(value, str) else json.dumps(value, default=str)
            value = as_text[: self.max_result_chars] + (
                f"\n[truncated: the MCP tool returned {size:,} characters; showing {self.max_result_chars:,}]"
            )
        return value

    def close(self) -> None:
        """Disconnect every server and stop the background loop; idempotent."""
        if self._closed:
            return
        self._closed = True
        for link in self._links.values():
            try:
                asyncio.run_coroutine_threadsafe(link.close(), self._loop).result(10)
            except Exception:
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __deepcopy__(self, memo: dict[int, Any]) -> McpToolset:
        """Copies of a program (DSPy optimizers deep-copy modules) share the live connections."""
        return self

    def __enter__(self) -> McpToolset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Link:
    """One server's connection, held open by a task on the toolset's loop; reconnected after the server dies."""

    def __init__(self, spec: McpServerSpec) -> None:
        self.spec = spec
        self.session: Any = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self) -> list[Any]:
        ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._hold(ready, self._stop))
        try:
            session = await ready
        except Exception as exc:
            raise McpToolError(f"MCP server {self.spec.name!r} could not be started: {exc}") from None
        self.session = session
        return (await session.list_tools()).tools

    async def _hold(self, ready: asyncio.Future[Any], stop: asyncio.Event) -> None:
        from mcp import ClientSession

        try:
            async with self._transport() as streams, ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                ready.set_result(session)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
        finally:
            self.session = None

    def _transport(self) -> Any:
        if self.spec.url:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            client = httpx2.AsyncClient(headers=self.spec.headers, timeout=httpx2.Timeout(30, read=300))
            return streamable_http_client(self.spec.url, http_client=client)
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        params = StdioServerParameters(command=str(self.spec.command), args=list(self.spec.args), env=self.spec.env)
        return stdio_client(params)

    async def call(self, tool: str, arguments: dict[str, Any]) -> Any:
        if self.session is None or (self._task is not None and self._task.done()):
            await self.connect()
        try:
            return await self.session.call_tool(tool, arguments)
        except McpToolError:
            raise
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            await self.close()
            self.session = None
            msg = (
                f"MCP tool {tool!r} of server {self.spec.name!r} failed: {reason}; "
                "the server is restarted on the next call"
            )
            raise McpToolError(msg) from None

    async def close(self) -> None:
        if self._stop is not None:
            self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5)
            except (Exception, asyncio.CancelledError):
                self._task.cancel()


@atexit.register
def _close_all() -> None:
    for toolset in list(_LIVE):
        toolset.close()
