"""The loopback OpenAI-compatible server every engine talks to in `bench_engine.py --http`, in its own process.

Run as a script it prints its base URL on one line and serves until stdin closes. Its script answers each
engine's root model by the marker in the root prompt (ours, the official rlms, dspy.RLM) and the current turn,
and answers every sub-call "ok" (after 100 ms for W3 prompts).

It is a lean HTTP/1.1 server on one asyncio event loop (a protocol per connection, keep-alive, `TCP_NODELAY`,
delays as loop timers, no thread per request): it shares the machine's cores with the clients it measures, so
every millisecond of CPU it spends per request would be charged to them. `--threaded` serves the same script
with the tests' `ScriptedOpenAIServer` (a thread per connection) instead, to compare.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _workloads import fanout_code, fence, root_replies

from tests.fakes.openai_server import ScriptedOpenAIServer, _completion

W3_CALLS = 1000
W3_LATENCY = 0.1
OFFICIAL_FINAL = "answer['content'] = 'done'\nanswer['ready'] = True"
W3_CODE = (
    "import time\n"
    "started = time.perf_counter()\n"
    f"r = llm_query_batched(['w3 ' + str(i) for i in range({W3_CALLS})])\n"
    "FINAL(f'{len(r)} {time.perf_counter() - started:.4f}')"
)
"""W3's root code: one batch of 1,000 sub-calls; its answer is the count and the batch's own seconds."""
_FANOUT_MARK = "llm_query_batched([f'chunk "
_NOT_FOUND = b'{"error": {"message": "no such route", "type": "invalid_request_error", "param": null, "code": null}}'


def _content(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content if isinstance(content, str) else ""


def _dspy_reply(turn: int) -> str:
    code = fanout_code(turn + 1, False) if turn < 3 else "SUBMIT(answer='done')"
    return f"[[ ## reasoning ## ]]\nstep {turn}\n\n[[ ## code ## ]]\n{code}\n\n[[ ## completed ## ]]"


def script(body: dict[str, Any]) -> str | dict[str, Any]:
    """Root requests carry a system message and a marker naming the engine; everything else is a sub-call."""
    messages = body.get("messages") or []
    if not messages or messages[0].get("role") != "system":
        prompt = _content(messages[-1]) if messages else ""
        return {"content": "ok", "delay": W3_LATENCY} if prompt.startswith("w3 ") else "ok"
    text = "\n".join(_content(m) for m in messages)
    turn = sum(1 for m in messages if m.get("role") == "assistant")
    if "W3-BENCH" in text:
        return fence(W3_CODE)
    if "W2-BENCH dspy" in text:
        return _dspy_reply(text.count(_FANOUT_MARK))
    replies = root_replies(False, OFFICIAL_FINAL if "W2-BENCH official" in text else "FINAL('done')")
    return replies[min(turn, len(replies) - 1)]


_ids = itertools.count()


def _response(status: int, payload: bytes) -> bytes:
    head = f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}\r\nContent-Type: application/json\r\n"
    return f"{head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload


class _Connection(asyncio.Protocol):
    """One keep-alive connection: parse a request (Content-Length bodies only), answer it, repeat."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._next()

    def _next(self) -> None:
        if self.busy:
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        self.busy = True
        path = head[0].split(" ")[1].split("?")[0].rstrip("/")
        if not path.endswith("/chat/completions"):
            self._send(_response(404, _NOT_FOUND))
            return
        request = json.loads(body or b"{}")
        reply = script(request)
        reply = {"content": reply} if isinstance(reply, str) else reply
        payload = _response(200, json.dumps(_completion(request, reply, f"lean-{next(_ids)}")).encode())
        delay = reply.get("delay")
        if delay:
            asyncio.get_running_loop().call_later(delay, self._send, payload)
        else:
            self._send(payload)

    def _send(self, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(payload)
        self.busy = False
        self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def _serve_lean() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Connection, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}/v1", flush=True)
    stdin_closed = loop.create_future()
    threading.Thread(
        target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stdin_closed.set_result, None))
    ).start()
    await stdin_closed
    server.close()


def main() -> None:
    if "--threaded" in sys.argv:
        with ScriptedOpenAIServer(script, models=["root", "sub"]) as server:
            print(server.base_url, flush=True)
            sys.stdin.read()
        return
    asyncio.run(_serve_lean())


if __name__ == "__main__":
    main()
