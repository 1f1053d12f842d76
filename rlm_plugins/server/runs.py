"""The server's use of the core sessions: start a run for a request, or resume the paused run its tool results
answer, and store a run that pauses for tool calls. All of it is `rlm_plugins.core.tool_turns` over a
`SessionStore`; this module adds only what HTTP needs: which model, and why a continuation cannot resume.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from rlm_plugins.core import _held
from rlm_plugins.core.budget import Limits
from rlm_plugins.core.chat_policy import ChatPolicy
from rlm_plugins.core.conversation import build_task, content_text, fingerprint
from rlm_plugins.core.engine import Engine
from rlm_plugins.core.events import Observer
from rlm_plugins.core.external_tools import CallLog, tool_setup
from rlm_plugins.core.snapshot import reconnect
from rlm_plugins.core.steps import Paused
from rlm_plugins.core.store import MemorySessionStore, RedisSessionStore, SessionStore
from rlm_plugins.core.tool_turns import (
    ToolTurn,
    check_conversation,
    continuation,
    made_calls,
    pause_key,
    resume_turn,
    saved_pause,
)
from rlm_plugins.errors import ContinuationMismatchError, SandboxUnavailableError
from rlm_plugins.server.config import ModelConfig, ServerConfig
from rlm_plugins.server.errors import APIError, bad_request
from rlm_plugins.server.requests import ChatRequest

MARKER_TTL = 24 * 3600.0
"""How long the server remembers that a pause existed, to say "expired" or "already resumed" instead of "unknown"."""
_MAX_SHORTHANDS = 64


@dataclass
class Ports:
    """What every run of one served model shares: root policy, sub-model, sandbox factory."""

    policy: Any
    sub: Any
    factory: Any
    spec: ModelConfig


class Runner:
    """Builds and resumes runs for requests; keeps paused ones in `store` (memory, or Redis for replicas)."""

    def __init__(self, config: ServerConfig, store: SessionStore | None = None) -> None:
        self.config = config
        if store is None:
            store = RedisSessionStore(config.redis_url) if config.redis_url else MemorySessionStore(config.max_sessions)
        self.store = store
        if isinstance(store, RedisSessionStore):
            self.markers: SessionStore = RedisSessionStore(client=store.client, prefix=store.prefix + "marker:")
        else:
            self.markers = MemorySessionStore(config.max_sessions * 4, on_drop=None)
        self._ports: OrderedDict[str, Ports] = OrderedDict()

    def ports(self, name: str) -> Ports:
        """The shared ports of model `name`; raises a 404 `APIError` when the server does not serve it."""
        if name in self._ports:
            self._ports.move_to_end(name)
            return self._ports[name]
        spec = self.config.resolve(name)
        if spec is None:
            served = sorted(self.config.models)
            hint = " or a 'root:sub' pair such as 'gpt-5:gpt-5-mini'" if self.config.allow_shorthand else ""
            msg = f"the model {name!r} does not exist here; use one of {served}{hint} (GET /v1/models)"
            raise APIError(404, msg, param="model", code="model_not_found")
        ports = self._build(spec)
        self._ports[name] = ports
        while len(self._ports) > len(self.config.models) + _MAX_SHORTHANDS:
            self._ports.popitem(last=False)
        return ports

    def _build(self, spec: ModelConfig) -> Ports:
        from rlm_plugins.models.chat import ChatModel, ChatSubModel
        from rlm_plugins.repl.factory import sandbox_factory

        base = spec.api_base or self.config.api_base
        key = spec.api_key or self.config.upstream_api_key
        if key is None and base and not os.environ.get("OPENAI_API_KEY"):
            key = "sk-no-key-needed"
        options = {k: v for k, v in {"api_base": base, "api_key": key}.items() if v is not None}
        options.update(spec.model_options)
        policy = spec.policy
        if policy is None:
            chat = ChatModel(spec.root, **options)
            policy = ChatPolicy(chat, chat.acall, model=spec.root)
        sub = spec.sub_model or ChatSubModel(ChatModel(spec.sub or spec.root, **options))
        return Ports(policy, sub, sandbox_factory(spec.sandbox, **spec.sandbox_options), spec)

    def limits(self, spec: ModelConfig, overrides: dict[str, float]) -> Limits:
        """The run's budget: the request's overrides (already capped), else the model's, else the server's."""
        cfg = self.config

        def pick(name: str) -> Any:
            return overrides.get(name, getattr(spec, name) if getattr(spec, name) is not None else getattr(cfg, name))

        return Limits(
            max_iterations=int(pick("max_iterations")),
            max_llm_calls=int(pick("max_llm_calls")),
            max_time=pick("max_time"),
            max_cost=pick("max_cost"),
        )

    def _engine(self, req: ChatRequest, log: CallLog, observers: list[Observer]) -> tuple[Engine, str]:
        ports = self.ports(req.model)
        setup = tool_setup(req.tools, req.tool_choice, req.schema, log)
        engine = Engine(
            ports.policy,
            ports.sub,
            ports.factory,
            limits=self.limits(ports.spec, req.overrides),
            tools=setup.tools,
            observers=observers,
            final_validator=setup.validator,
        )
        return engine, setup.instructions

    async def begin(self, req: ChatRequest, observers: list[Observer], owner: str = "") -> ToolTurn:
        """The run for a request: a new one, or the paused run whose tool calls the request answers (only for
        the `owner` that started it: another API key's continuation is told nothing exists)."""
        ids, before = continuation(req.messages)
        log = CallLog(parallel=req.parallel_tool_calls)
        if not ids:
            engine, instructions = self._engine(req, log, observers)
            threshold = self.ports(req.model).spec.context_threshold or self.config.context_threshold
            task = build_task(req.messages, threshold)
            run = engine.new_run(task.query + instructions, task.context)
            return ToolTurn(run, log, schema=req.schema, method="json", conversation=fingerprint(req.messages))
        keys = {pause_key(i) for i in ids}
        if len(keys) > 1:
            raise bad_request("these tool results answer calls of different paused runs; send one run's", "messages")
        key = keys.pop()
        self.ports(req.model)
        data = await self.store.atake(key)
        if data is None:
            raise await self._missing(key, ids)
        sandbox = await self._reclaim(key, data, req, before, owner)
        log.made = made_calls(data)
        engine, _ = self._engine(req, log, observers)
        answers = {m["tool_call_id"]: content_text(m["content"]) for m in req.messages if m["role"] == "tool"}
        run, results, new = resume_turn(engine, data, answers, sandbox)
        await self.markers.aput(key, {"state": "resumed"}, MARKER_TTL)
        base = run.budget.usage_snapshot()
        return ToolTurn(run, log, base, req.schema, "json", results, new, fingerprint(req.messages))

    async def _reclaim(
        self, key: str, data: dict[str, Any], req: ChatRequest, before: list[dict[str, Any]], owner: str
    ) -> Any:
        """The paused run's sandbox, after checking the request may resume it (else the data goes back)."""
        adapter = data.get("adapter") or {}
        try:
            if adapter.get("owner", "") != owner:
                ids = [call["id"] for call in data.get("pending") or []]
                msg = f"no paused run holds the tool calls {ids} for this API key. Send the question again"
                raise APIError(404, msg, param="messages", code="session_not_found")
            if adapter.get("model") != req.model:
                msg = f"these tool results continue a run of model {adapter.get('model')!r}; send them to that model"
                raise bad_request(msg, "model", "model_mismatch")
            try:
                check_conversation(data, before)
            except ContinuationMismatchError as exc:
                msg = (
                    f"{exc}. Send the conversation exactly as it was, plus the assistant message with the tool "
                    "calls and the tool results"
                )
                raise APIError(409, msg, param="messages", code="conversation_mismatch") from None
            ref = data.get("sandbox")
            if ref is None:
                return None
            if ref.get("process") not in (None, _held.PROCESS):
                msg = (
                    f"the paused run these tool results answer lives on another server replica ({ref['process']}) "
                    f"with a {ref.get('kind')!r} sandbox, which cannot move between processes: route this "
                    "conversation to the same replica (sticky sessions), or serve it with sandbox='e2b'"
                )
                raise APIError(409, msg, param="messages", code="session_on_other_replica")
            try:
                return await asyncio.to_thread(reconnect, ref)
            except SandboxUnavailableError as exc:
                raise APIError(404, f"{exc}; send the question again", param="messages", code="session_expired")
        except APIError as exc:
            if exc.code != "session_expired":
                await self._put_back(key, data)
            raise

    async def _put_back(self, key: str, data: dict[str, Any]) -> None:
        left = float((data.get("adapter") or {}).get("expires_at", 0)) - time.time()
        if left > 0:
            await self.store.aput(key, data, left)

    async def _missing(self, key: str, ids: list[str]) -> APIError:
        marker = await self.markers.atake(key)
        if marker is not None:
            await self.markers.aput(key, marker, MARKER_TTL)
        if marker is None:
            msg = (
                f"no paused run holds the tool calls {ids}: this server (or its session store) never handed them "
                "out. Send the question again without these tool results"
            )
            return APIError(404, msg, param="messages", code="session_not_found")
        if marker.get("state") == "resumed":
            msg = f"the paused run for the tool calls {ids} was already resumed (a paused run resumes once)"
            return APIError(409, msg, param="messages", code="session_already_resumed")
        msg = (
            f"the paused run for the tool calls {ids} expired (session_ttl={self.config.session_ttl:g}s) or was "
            f"evicted (max_sessions={self.config.max_sessions}); its REPL is gone. Send the question again"
        )
        return APIError(404, msg, param="messages", code="session_expired")

    async def pause(self, turn: ToolTurn, paused: Paused, model: str, owner: str = "") -> None:
        """Store a run paused for tool calls under the key its call ids lead to, for `owner` only."""
        ttl = self.config.session_ttl
        key, data = saved_pause(turn, paused, ttl)
        data["adapter"].update(model=model, expires_at=time.time() + ttl, owner=owner)
        await self.store.aput(key, data, ttl)
        await self.markers.aput(key, {"state": "paused"}, MARKER_TTL)

    def close(self) -> None:
        """Release the paused runs this process holds (memory store only; Redis keeps them for other replicas)."""
        if isinstance(self.store, MemorySessionStore):
            self.store.clear()
