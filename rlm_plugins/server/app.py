"""The FastAPI application: `create_app(config)` serves `/v1/chat/completions`, `/v1/models`, `/healthz`,
`/readyz` and `/metrics`; `serve(config)` runs it under uvicorn with a graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from rlm_plugins.core.drivers import adrive
from rlm_plugins.core.steps import Paused
from rlm_plugins.core.store import SessionStore
from rlm_plugins.core.tool_turns import ToolTurn, aload_results, pause_hook, total_usage, usage_delta
from rlm_plugins.errors import ModelError, RLMError, SandboxError
from rlm_plugins.server.auth import check_key
from rlm_plugins.server.config import ServerConfig
from rlm_plugins.server.errors import APIError
from rlm_plugins.server.limits import RunLimiter, read_json
from rlm_plugins.server.logs import LOGGER
from rlm_plugins.server.metrics import CONTENT_TYPE, Metrics
from rlm_plugins.server.middleware import RequestContext
from rlm_plugins.server.requests import ChatRequest, parse_chat
from rlm_plugins.server.responses import Reply, completion, reply_of
from rlm_plugins.server.runs import Runner
from rlm_plugins.server.streaming import Progress, event_stream

CLIENT_CLOSED = 499


class ServerState:
    """What the routes share: config, runner (sessions), limiter, metrics, and the runs in flight."""

    def __init__(self, config: ServerConfig, store: SessionStore | None) -> None:
        self.config = config
        self.runner = Runner(config, store)
        self.limiter = RunLimiter(config.max_concurrent_runs, config.max_queued_runs, config.queue_timeout)
        self.metrics = Metrics()
        self.metrics.count_paused(self.runner.store)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.draining = False

    async def drive(self, turn: ToolTurn, req: ChatRequest, owner: str) -> Reply:
        """Drive a request's run to its reply (storing it when it pauses); every failure becomes an `APIError`."""
        metrics, started = self.metrics, time.perf_counter()
        metrics.in_flight.inc()
        try:
            await aload_results(turn)
            outcome = await adrive(turn.run, pause_hook(turn.log))
            if isinstance(outcome, Paused):
                await self.runner.pause(turn, outcome, req.model, owner)
                metrics.paused.inc()
            usage = total_usage(usage_delta(turn))
            metrics.spent(usage)
            reply = reply_of(turn, outcome, req.stop)
            LOGGER.info(
                "run",
                extra={
                    "model": req.model,
                    "run_id": turn.run.run_id,
                    "finish_reason": reply.rlm.get("finish_reason"),
                    "iterations": len(turn.run.history),
                    "calls": usage.calls,
                    "tokens": usage.total_tokens,
                    "seconds": round(time.perf_counter() - started, 3),
                },
            )
            return reply
        except APIError:
            raise
        except ModelError as exc:
            raise APIError(502, f"the root model could not be called: {exc}", code="upstream_error") from None
        except SandboxError as exc:
            raise APIError(500, f"the sandbox failed: {exc}", code="sandbox_error") from None
        except RLMError as exc:
            raise APIError(400, str(exc), code=type(exc).__name__) from None
        except Exception as exc:
            LOGGER.exception("run failed")
            raise APIError(500, f"internal error ({type(exc).__name__}); see the server log", code="internal") from None
        finally:
            metrics.in_flight.dec()
            metrics.duration.observe(time.perf_counter() - started)

    def track(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


def create_app(config: ServerConfig | None = None, store: SessionStore | None = None) -> FastAPI:
    """The server application; `store` overrides the session store the config names (memory or Redis)."""
    state = ServerState(config or ServerConfig(), store)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await shutdown(state)

    app = FastAPI(title="rlm-plugins", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.rlm = state
    app.add_middleware(RequestContext, metrics=state.metrics)

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> Response:
        state.metrics.errors.labels(exc.kind, str(exc.code)).inc()
        LOGGER.info("error", extra={"status": exc.status, "code": exc.code, "error": exc.message})
        return exc.response()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed"}
        msg = f"no route {request.method} {request.url.path}" if exc.status_code in codes else str(exc.detail)
        return await api_error(request, APIError(exc.status_code, msg, code=codes.get(exc.status_code)))

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> Response:
        LOGGER.exception("unhandled error")
        return await api_error(request, APIError(500, "internal error; see the server log", code="internal"))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        problem = "shutting down" if state.draining else await _store_problem(state.runner.store)
        if problem:
            return JSONResponse({"status": "unavailable", "reason": problem}, status_code=503)
        return JSONResponse({"status": "ready", "runs": state.limiter.running, "queued": state.limiter.waiting})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        check_key(request, state.config.api_keys)
        names = state.config.models
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "rlm-plugins"} for name in names]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        owner = check_key(request, state.config.api_keys)
        if state.draining:
            raise APIError(503, "the server is shutting down; retry on another replica", code="shutting_down")
        req = parse_chat(await read_json(request, state.config.max_body_bytes), state.config)
        state.runner.ports(req.model)
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(state.limiter.slot())
        try:
            progress = Progress() if req.stream else None
            observers = [state.metrics.observe, *([progress] if progress else [])]
            turn = await state.runner.begin(req, observers, owner)
        except BaseException:
            await stack.aclose()
            raise
        if progress is not None:
            opening = Reply(None, None, "", {}, {})
            body = event_stream(
                lambda: state.drive(turn, req, owner),
                progress,
                req.model,
                req.include_usage,
                opening,
                stack.aclose,
                state.track,
            )
            headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            # the background task releases the run slot even when the client leaves before the body starts
            return StreamingResponse(
                body, media_type="text/event-stream", headers=headers, background=BackgroundTask(stack.aclose)
            )
        async with stack:
            return await _answer(state, request, turn, req, owner)

    return app


async def _answer(state: ServerState, request: Request, turn: ToolTurn, req: ChatRequest, owner: str) -> Response:
    """The non-streaming reply; a client that disconnects first cancels the run."""
    task = state.track(asyncio.ensure_future(state.drive(turn, req, owner)))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            LOGGER.info("client disconnected; run cancelled", extra={"run_id": turn.run.run_id})
        gone.cancel()
        await asyncio.gather(task, gone, return_exceptions=True)
    if task.cancelled():
        return Response(status_code=CLIENT_CLOSED)
    return JSONResponse(completion(task.result(), req.model))


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _store_problem(store: SessionStore) -> str | None:
    client = getattr(store, "client", None)
    if client is None:
        return None
    try:
        await asyncio.to_thread(client.ping)
    except Exception as exc:
        return f"the session store is unreachable ({type(exc).__name__})"
    return None


async def shutdown(state: ServerState) -> None:
    """Stop taking runs, give the running ones `shutdown_grace` seconds, cancel the rest, release paused runs."""
    state.draining = True
    pending = set(state.tasks)
    if pending:
        _, late = await asyncio.wait(pending, timeout=state.config.shutdown_grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
    state.runner.close()


def serve(config: ServerConfig) -> None:
    """Run the server until SIGINT/SIGTERM (then: stop accepting, let runs finish up to the grace, cancel)."""
    import uvicorn

    from rlm_plugins.server.logs import setup_logging

    config.check_bind()
    setup_logging(config.log_level)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host=config.host,
            port=config.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=int(config.shutdown_grace),
        )
    )
    LOGGER.info("serving", extra={"host": config.host, "port": config.port, "models": sorted(config.models)})
    server.run()
    logging.shutdown()
