"""A test-only envd on 127.0.0.1:49983 that the real `e2b` SDK talks to in debug mode.

envd is the agent inside every E2B sandbox. With `E2B_DEBUG=true` (or `debug=True`) the SDK makes no control-plane
call at all: `Sandbox.create` / `AsyncSandbox.create` return a sandbox named `debug_sandbox_id` at once, and `kill`,
`set_timeout` and `connect` are no-ops. Every envd request then goes to http://localhost:49983 in plain HTTP/1.1
(pyqwest speaks HTTP/1 to plaintext origins). This fake answers them, on the connect-RPC server classes generated in
the e2b package:

- `ProcessWSGIApplication`: Start (streamed stdout/stderr chunks of at most 32 KiB, keepalives, an end event; a
  `Connect-Timeout-Ms` deadline kills the process, as envd does), List, SendInput, SendSignal;
- `FilesystemWSGIApplication`: Stat, Remove;
- `GET /health`, and `/files`: POST uploads (octet-stream, with or without `Content-Encoding: gzip`, sized or
  chunked; the SDK's multipart form is refused with a 415 saying so) and GET downloads.

Processes are real local processes, run exactly as the SDK asks (`/bin/bash -l -c <cmd>`). Paths: a path already
inside `root` is used as is, any other absolute path lands under `root` (`/opt/x` -> `root/opt/x`), a relative one
under the home directory `root/home/user`. Give a sandbox a working directory inside `root` (`envd.workdir`) so its
command lines and the driver's `load` paths resolve the same way here as in a VM. Unlike envd, signals go to the
whole process group, so nothing a test starts outlives it.

Test controls: `live_processes()`, `uploads`, `input_delay` (SendInput sleeps that long first), `drop_streams()`
(aborts every open output stream mid-body, without an end event; the processes keep running, as they would on envd).
"""

from __future__ import annotations

import collections
import errno
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from e2b.connection_config import ConnectionConfig
from e2b.envd.filesystem import filesystem_connect as fs_connect
from e2b.envd.filesystem import filesystem_pb as fs_pb
from e2b.envd.process import process_connect, process_pb
from protobuf import Oneof

ENVD_PORT = ConnectionConfig.envd_port
CHUNK = 32 * 1024
_PORT_LOCK = threading.Lock()


class _Drop(BaseException):
    """Raised inside a response stream to cut the connection without an end event (not an Exception, so the
    connect runtime cannot turn it into a clean end-of-stream message)."""


class _Proc:
    """One running process and the queue of its output events."""

    def __init__(self, popen: subprocess.Popen[bytes], config: process_pb.ProcessConfig) -> None:
        self.popen, self.config = popen, config
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.stdin_lock = threading.Lock()
        self.drop = False
        self.subscriber = 0
        """Which stream receives the output: `connect` makes a new one and the older stream ends."""
        self.early: collections.deque[tuple[str, Any]] = collections.deque()
        """Events a superseded stream took from the queue, handed to the newest one first."""
        readers = [self._pump(popen.stdout, "stdout"), self._pump(popen.stderr, "stderr")]
        threading.Thread(target=self._wait, args=(readers,), daemon=True).start()

    def _pump(self, stream: Any, kind: str) -> threading.Thread:
        def run() -> None:
            while chunk := os.read(stream.fileno(), CHUNK):
                self.events.put((kind, chunk))
            stream.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def _wait(self, readers: list[threading.Thread]) -> None:
        for reader in readers:
            reader.join()
        code = self.popen.wait()
        with self.stdin_lock:
            if self.popen.stdin is not None:
                self.popen.stdin.close()
        self.events.put(("end", code))

    def next_event(self, timeout: float) -> tuple[str, Any]:
        """The next output event (raises queue.Empty after `timeout`)."""
        try:
            return self.early.popleft()
        except IndexError:
            return self.events.get(timeout=timeout)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except OSError:
            pass


def _end_event(code: int) -> process_pb.ProcessEvent.EndEvent:
    if code < 0:  # the shape Go's os/exec gives envd for a signalled process
        status = "signal: " + {9: "killed", 15: "terminated"}.get(-code, str(-code))
        return process_pb.ProcessEvent.EndEvent(exit_code=-1, exited=False, status=status, error=status)
    status = f"exit status {code}"
    return process_pb.ProcessEvent.EndEvent(exit_code=code, exited=True, status=status, error=status if code else None)


def _event(name: str, value: Any, response: Any = process_pb.StartResponse) -> Any:
    return response(event=process_pb.ProcessEvent(event=Oneof(name, value)))


class _ProcessService(process_connect.ProcessSync):
    def __init__(self, envd: FakeEnvd) -> None:
        self.envd = envd

    def _get(self, selector: process_pb.ProcessSelector | None) -> _Proc:
        pid = selector.selector.value if selector is not None and selector.selector is not None else None
        proc = self.envd.procs.get(pid) if isinstance(pid, int) else None
        if proc is None or proc.popen.poll() is not None:
            raise ConnectError(Code.NOT_FOUND, f"process with pid {pid} not found")
        return proc

    def start(self, request: process_pb.StartRequest, ctx: Any) -> Any:
        config = request.process or process_pb.ProcessConfig()
        cwd = self.envd.map_path(config.cwd if config.has_field("cwd") else "")
        if not os.path.isdir(cwd):
            raise ConnectError(Code.INVALID_ARGUMENT, f"cwd '{config.cwd}' does not exist")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.envd.map_path(""), "USER": "user"}
        env.update(dict(config.envs))
        keepalive = float(ctx.request_headers.get("keepalive-ping-interval") or 50)
        stdin = subprocess.PIPE if request.stdin is not False else subprocess.DEVNULL
        try:
            popen = subprocess.Popen(
                [config.cmd, *config.args], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=cwd, env=env, start_new_session=True, bufsize=0,
            )  # fmt: skip
        except OSError as exc:
            raise ConnectError(Code.INVALID_ARGUMENT, f"error starting process: {exc}") from exc
        proc = self.envd.procs[popen.pid] = _Proc(popen, config)
        if ctx.timeout_ms:
            threading.Timer(ctx.timeout_ms / 1000, proc.kill).start()
        return self._stream(proc, keepalive)

    def connect(self, request: process_pb.ConnectRequest, ctx: Any) -> Any:
        proc = self._get(request.process)
        proc.subscriber += 1
        keepalive = float(ctx.request_headers.get("keepalive-ping-interval") or 50)
        return self._stream(proc, keepalive, process_pb.ConnectResponse)

    def _stream(self, proc: _Proc, keepalive: float, response: Any = process_pb.StartResponse) -> Any:
        mine = proc.subscriber
        yield _event("start", process_pb.ProcessEvent.StartEvent(pid=proc.popen.pid), response)
        last = time.monotonic()
        while proc.subscriber == mine:
            if proc.drop:
                raise _Drop()
            try:
                kind, value = proc.next_event(0.05)
            except queue.Empty:
                if time.monotonic() - last >= keepalive:
                    last = time.monotonic()
                    yield _event("keepalive", process_pb.ProcessEvent.KeepAlive(), response)
                continue
            if proc.subscriber != mine:
                proc.early.appendleft((kind, value))
                return
            last = time.monotonic()
            if kind == "end":
                yield _event("end", _end_event(value), response)
                return
            yield _event("data", process_pb.ProcessEvent.DataEvent(output=Oneof(kind, value)), response)

    def list(self, request: process_pb.ListRequest, ctx: Any) -> process_pb.ListResponse:
        live = [(pid, p) for pid, p in list(self.envd.procs.items()) if p.popen.poll() is None]
        return process_pb.ListResponse(processes=[process_pb.ProcessInfo(pid=pid, config=p.config) for pid, p in live])

    def send_input(self, request: process_pb.SendInputRequest, ctx: Any) -> process_pb.SendInputResponse:
        if self.envd.input_delay:
            time.sleep(self.envd.input_delay)
        proc = self._get(request.process)
        data = request.input.input.value if request.input is not None and request.input.input is not None else b""
        with proc.stdin_lock:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(proc.popen.stdin.fileno(), view) :]
            except (OSError, ValueError, AttributeError) as exc:
                raise ConnectError(Code.INTERNAL, f"error writing to stdin: {exc}") from exc
        return process_pb.SendInputResponse()

    def send_signal(self, request: process_pb.SendSignalRequest, ctx: Any) -> process_pb.SendSignalResponse:
        sig = signal.SIGTERM if request.signal == process_pb.Signal.SIGTERM else signal.SIGKILL
        proc = self._get(request.process)
        proc.kill(sig)
        try:  # reply once it is gone, so a test can count right after
            proc.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        return process_pb.SendSignalResponse()


class _FilesystemService(fs_connect.FilesystemSync):
    def __init__(self, envd: FakeEnvd) -> None:
        self.envd = envd

    def stat(self, request: fs_pb.StatRequest, ctx: Any) -> fs_pb.StatResponse:
        path = self.envd.map_path(request.path)
        if not os.path.exists(path):
            raise ConnectError(Code.NOT_FOUND, f"no such file or directory: {request.path}")
        kind = fs_pb.FileType.DIRECTORY if os.path.isdir(path) else fs_pb.FileType.FILE
        entry = fs_pb.EntryInfo(name=os.path.basename(path), type=kind, path=request.path, size=os.path.getsize(path))
        return fs_pb.StatResponse(entry=entry)

    def remove(self, request: fs_pb.RemoveRequest, ctx: Any) -> fs_pb.RemoveResponse:
        path = self.envd.map_path(request.path)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)
        else:
            raise ConnectError(Code.NOT_FOUND, f"no such file or directory: {request.path}")
        return fs_pb.RemoveResponse()


class _Body:
    """A request body with a length or chunked, read to its end and no further (the connection stays usable)."""

    def __init__(self, rfile: Any, headers: Any) -> None:
        self.rfile = rfile
        self.chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        self.left = 0 if self.chunked else int(headers.get("Content-Length") or 0)
        self.done = not self.chunked and self.left == 0

    def read(self, size: int = -1) -> bytes:
        if self.done:
            return b""
        if self.chunked and self.left == 0:
            self.left = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if self.left == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                self.done = True
                return b""
        data = self.rfile.read(min(self.left, size) if size > 0 else self.left)
        self.left -= len(data)
        if self.chunked and self.left == 0:
            self.rfile.readline()
        if not data or (not self.chunked and self.left == 0):
            self.done = True
        return data


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        envd = self.server.envd
        url = urlsplit(self.path)
        body = _Body(self.rfile, self.headers)
        if url.path.startswith("/process.Process/"):
            self._wsgi(envd.process_app, url, body)
        elif url.path.startswith("/filesystem.Filesystem/"):
            self._wsgi(envd.filesystem_app, url, body)
        elif url.path == "/files":
            status, payload = envd.files(self.command, parse_qs(url.query), self.headers, body)
            self._reply(status, payload, "application/json" if status != 200 or self.command == "POST" else None)
        elif url.path == "/health":
            self._reply(204, b"")
        else:
            self._reply(404, b'{"message":"not found","code":404}', "application/json")
        while body.read(65536):
            pass

    def _reply(self, status: int, payload: bytes, content_type: str | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type or "application/octet-stream")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _wsgi(self, app: Any, url: Any, body: _Body) -> None:
        environ = {
            "REQUEST_METHOD": self.command, "SCRIPT_NAME": "", "PATH_INFO": url.path, "QUERY_STRING": url.query,
            "SERVER_PROTOCOL": self.request_version, "wsgi.input": body, "wsgi.errors": sys.stderr,
            "wsgi.url_scheme": "http", "REMOTE_ADDR": self.client_address[0],
        }  # fmt: skip
        for key, value in self.headers.items():
            name = key.upper().replace("-", "_")
            environ[name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + name] = value
        head: list[Any] = []
        result = app(environ, lambda status, headers, exc_info=None: head.extend((status, headers)))
        try:
            code, _, reason = head[0].partition(" ")
            self.send_response(int(code), reason)
            for key, value in head[1]:
                self.send_header(key, value)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in result:
                if chunk:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except (_Drop, OSError):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        finally:
            getattr(result, "close", lambda: None)()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    envd: FakeEnvd

    def server_activate(self) -> None:
        super().server_activate()
        self.connections: set[socket.socket] = set()

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        self.connections.add(conn)
        return conn, address

    def shutdown_request(self, request: Any) -> None:
        self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Cut the kept-alive connections too: a client pool would otherwise reuse them after stop()."""
        for conn in list(self.connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away mid-request (a cancelled upload, a killed stream) is not news


class FakeEnvd:
    """The fake envd; a context manager. Only one can own the port at a time (a process-wide lock guards it)."""

    def __init__(self, port: int = ENVD_PORT) -> None:
        self.port = port
        self.procs: dict[int, _Proc] = {}
        self.input_delay = 0.0
        self.uploads: list[tuple[str, str]] = []
        """(path, content encoding) of every file uploaded, in order."""
        self.root = ""
        self.process_app = process_connect.ProcessWSGIApplication(_ProcessService(self))
        self.filesystem_app = fs_connect.FilesystemWSGIApplication(_FilesystemService(self))
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def workdir(self) -> str:
        """A directory inside `root` to use as a sandbox's working directory."""
        return os.path.join(self.root, "tmp", "rlm")

    def map_path(self, path: str) -> str:
        if path and os.path.isabs(path):
            inside = path == self.root or path.startswith(self.root + os.sep)
            return path if inside else os.path.join(self.root, path.lstrip("/"))
        return os.path.join(self.root, "home", "user", path)

    def live_processes(self) -> int:
        return sum(1 for proc in list(self.procs.values()) if proc.popen.poll() is None)

    def drop_streams(self) -> None:
        for proc in list(self.procs.values()):
            proc.drop = True

    def files(self, method: str, query: dict[str, list[str]], headers: Any, body: _Body) -> tuple[int, bytes]:
        path = (query.get("path") or [""])[0]
        if method == "GET":
            target = self.map_path(path)
            if not os.path.isfile(target):
                return 404, json.dumps({"message": f"path '{path}' does not exist", "code": 404}).encode()
            with open(target, "rb") as src:
                return 200, src.read()
        if not headers.get("Content-Type", "").startswith("application/octet-stream"):
            message = "this fake envd takes octet-stream uploads only: pass use_octet_stream=True"
            return 415, json.dumps({"message": message, "code": 415}).encode()
        gzipped = headers.get("Content-Encoding", "").lower() == "gzip"
        self._write_file(self.map_path(path), body, gzipped)
        self.uploads.append((path, "gzip" if gzipped else "identity"))
        return 200, json.dumps([{"name": os.path.basename(path), "type": "file", "path": path}]).encode()

    @staticmethod
    def _write_file(target: str, body: _Body, gzipped: bool) -> None:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        unzip = zlib.decompressobj(zlib.MAX_WBITS | 32) if gzipped else None
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target))
        with os.fdopen(fd, "wb") as out:
            while chunk := body.read(1 << 20):
                out.write(unzip.decompress(chunk) if unzip else chunk)
            if unzip:
                out.write(unzip.flush())
        os.replace(tmp, target)

    def start(self, wait: float = 60.0) -> FakeEnvd:
        """Serve; waits up to `wait` seconds for the port, which another test session may hold for a while."""
        if not _PORT_LOCK.acquire(timeout=wait):
            raise RuntimeError(f"another FakeEnvd in this process still owns port {self.port}")
        try:
            self._server = self._bind(time.monotonic() + wait)
            self.root = os.path.realpath(tempfile.mkdtemp(prefix="fake-envd-"))
            os.makedirs(os.path.join(self.root, "home", "user"))
        except BaseException:
            if self._server is not None:
                self._server.server_close()
                self._server = None
            _PORT_LOCK.release()
            raise
        self._server.envd = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def _bind(self, deadline: float) -> _Server:
        while True:
            try:
                return _Server(("127.0.0.1", self.port), _Handler)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise RuntimeError(f"the fake envd cannot listen on 127.0.0.1:{self.port}: {exc}") from exc
                time.sleep(0.2)

    def stop(self) -> None:
        if self._server is None:
            return
        for proc in list(self.procs.values()):
            proc.kill()
        for proc in list(self.procs.values()):
            try:
                proc.popen.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self._server.shutdown()
        self._server.server_close()
        self._server.drop_connections()
        if self._thread is not None:
            self._thread.join(5)
        shutil.rmtree(self.root, ignore_errors=True)
        self._server = None
        _PORT_LOCK.release()

    def __enter__(self) -> FakeEnvd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
