"""The e2b sandbox with the real E2B SDK, over a fake envd on loopback (debug mode) and, with a key, the real cloud.

Every test that starts a sandbox checks at teardown that the fake envd has no process left running.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import threading
import time
import warnings

import pytest

from rlm_plugins import RLM
from rlm_plugins.errors import (
    ConfigurationError,
    SandboxClosedError,
    SandboxProtocolError,
    SandboxStartError,
    SandboxTerminatedError,
    SandboxTimeoutError,
)
from rlm_plugins.repl import create_sandbox
from rlm_plugins.repl import e2b as e2b_backend
from rlm_plugins.repl._e2b_io import Outbox
from rlm_plugins.repl.e2b import TEMPLATE_DRIVER_PATH, E2BSandbox
from tests.fakes.envd import FakeEnvd

pytestmark = pytest.mark.filterwarnings("ignore:E2BSandbox uploads the driver")
THREADS_CODE = """
import threading
out = [None] * 16
def work(i):
    out[i] = slow(i)
threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
for t in threads: t.start()
for t in threads: t.join()
print(out)
"""
STUBBORN_CODE = "import time\nwhile True:\n    try:\n        time.sleep(10)\n    except BaseException:\n        pass\n"


@pytest.fixture(scope="module")
def envd():
    with FakeEnvd() as fake:
        yield fake


@pytest.fixture
def make(envd, monkeypatch):
    """`make(**options)` builds an E2BSandbox on the fake envd; at teardown all are closed and no process is left."""
    monkeypatch.setenv("E2B_DEBUG", "true")
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    envd.input_delay = 0.0
    made: list[E2BSandbox] = []

    def build(**options):
        sandbox = E2BSandbox(workdir=envd.workdir, **options)
        made.append(sandbox)
        return sandbox

    yield build
    envd.input_delay = 0.0
    for sandbox in made:
        sandbox.close()
    assert _settled(envd) == 0


def _settled(envd, wait=5.0):
    deadline = time.monotonic() + wait
    while envd.live_processes() and time.monotonic() < deadline:
        time.sleep(0.02)
    return envd.live_processes()


def slow(i):
    time.sleep(0.2)
    return i * 2


async def aslow(i):
    await asyncio.sleep(0.2)
    return i * 2


def test_execute_keeps_state_between_cells(make, envd):
    sandbox = make()
    sandbox.start()
    assert (sandbox.kind, sandbox.isolation, sandbox.sandbox_id) == ("e2b", "vm", "debug_sandbox_id")
    assert envd.live_processes() == 1
    assert sandbox.execute("x = 6 * 7").ok
    result = sandbox.execute("print('hi')\nx")
    assert (result.stdout, result.value) == ("hi\n42\n", 42)
    assert sandbox.execute("FINAL(x + 1)").final.value == 43


async def test_aexecute_keeps_state_between_cells(make, envd):
    sandbox = make()
    await sandbox.astart()
    assert envd.live_processes() == 1
    assert (await sandbox.aexecute("x = 6 * 7")).ok
    result = await sandbox.aexecute("print('hi')\nx")
    assert (result.stdout, result.value) == ("hi\n42\n", 42)
    await sandbox.aclose()
    assert _settled(envd) == 0


def test_create_sandbox_kind_and_context_manager(envd, monkeypatch):
    monkeypatch.setenv("E2B_DEBUG", "true")
    with create_sandbox("e2b", workdir=envd.workdir, timeout=120) as sandbox:
        assert sandbox.execute("1 + 1").value == 2
    assert _settled(envd) == 0
    with pytest.raises(SandboxClosedError):
        sandbox.execute("1")


async def test_async_context_manager(envd, monkeypatch):
    monkeypatch.setenv("E2B_DEBUG", "true")
    async with E2BSandbox(workdir=envd.workdir) as sandbox:
        assert (await sandbox.aexecute("1 + 1")).value == 2
    assert _settled(envd) == 0


def _context_files(envd):
    return sorted(p.name for p in pathlib.Path(envd.workdir).rglob("ctx-*"))


def test_load_str_path_and_dict(make, envd, tmp_path):
    sandbox = make()
    big = "needle " * 100_000
    doc = tmp_path / "doc.txt"
    doc.write_text("from a file\n" * 10_000)
    data = {"rows": [{"id": i, "text": "é" * 10} for i in range(10_000)]}
    assert sandbox.load("small", "tiny") == {"type": "str", "length": 4}
    assert sandbox.load("context", big) == {"type": "str", "length": len(big)}
    assert sandbox.load("doc", doc) == {"type": "str", "length": 120_000}
    assert sandbox.load("data", data) == {"type": "dict", "length": 1}
    assert sandbox.load("raw", b"\x00\xff" * 50_000) == {"type": "bytes", "length": 100_000}
    result = sandbox.execute("print(context.count('needle'), doc.splitlines()[0], data['rows'][9999]['text'], raw[:2])")
    assert result.stdout == "100000 from a file éééééééééé b'\\x00\\xff'\n"
    assert _context_files(envd) == []  # each file is removed once the driver has read it


async def test_aload_str_path_and_dict(make, envd, tmp_path):
    sandbox = make()
    big = "needle " * 100_000
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps({"from": "a file", "pad": "x" * 100_000}))
    assert await sandbox.aload("small", "tiny") == {"type": "str", "length": 4}
    assert await sandbox.aload("context", big) == {"type": "str", "length": len(big)}
    assert await sandbox.aload("doc", doc) == {"type": "dict", "length": 2}
    assert await sandbox.aload("data", {"rows": list(range(30_000))}) == {"type": "dict", "length": 1}
    result = await sandbox.aexecute("print(context.count('needle'), doc['from'], sum(data['rows']))")
    assert result.stdout == f"100000 a file {sum(range(30_000))}\n"
    assert _context_files(envd) == []


def test_large_uploads_are_gzipped_on_the_wire(make, envd, tmp_path):
    sandbox = make()
    sandbox.start()
    packed = tmp_path / "data.gz"
    packed.write_bytes(b"\x1f\x8b" * 600_000)
    del envd.uploads[:]
    sandbox.load("small", "s" * 100_000)
    sandbox.load("large", "l" * 2_000_000)
    sandbox.load("packed", packed, format="bytes")
    assert [encoding for _, encoding in envd.uploads] == ["identity", "gzip", "identity"]
    assert sandbox.execute("[len(small), len(large), len(packed)]").value == [100_000, 2_000_000, 1_200_000]
    plain = make(compress=False)
    plain.load("large", "l" * 2_000_000)
    assert envd.uploads[-1][1] == "identity"


def test_missing_context_file_is_a_configuration_error(make, tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read the context file"):
        make().load("context", tmp_path / "missing.txt")


def test_tool_calls_are_served_concurrently(make):
    sandbox = make()
    started = time.perf_counter()
    result = sandbox.execute(THREADS_CODE, tools={"slow": slow})
    assert result.stdout == f"{[i * 2 for i in range(16)]}\n"
    assert time.perf_counter() - started < 1.6  # 16 calls of 0.2 s each, one at a time, would take 3.2 s
    assert len(result.tool_calls) == 16


async def test_async_tool_calls_are_served_concurrently(make):
    sandbox = make()
    await sandbox.astart()
    started = time.perf_counter()
    result = await sandbox.aexecute(THREADS_CODE.replace("slow(i)", "aslow(i)"), tools={"aslow": aslow})
    assert result.stdout == f"{[i * 2 for i in range(16)]}\n"
    assert time.perf_counter() - started < 1.6


def test_big_tool_results_cross_in_chunks(make):
    sandbox = make(send_chunk_bytes=4096)
    result = sandbox.execute("print(len(blob()))", tools={"blob": lambda: "y" * 100_000})
    assert result.stdout == "100000\n"


def test_process_death_mid_execution(make, envd):
    sandbox = make()
    sandbox.start()
    with pytest.raises(SandboxTerminatedError, match="exited with code 3"):
        sandbox.execute("import os\nos._exit(3)")
    assert envd.live_processes() == 0
    with pytest.raises(SandboxTerminatedError):
        sandbox.execute("1")


async def test_process_death_mid_aexecution(make, envd):
    sandbox = make()
    await sandbox.astart()
    with pytest.raises(SandboxTerminatedError, match="exited with code 3"):
        await sandbox.aexecute("import os\nos._exit(3)")
    assert _settled(envd) == 0


def test_output_stream_drop(make, envd):
    sandbox = make()
    sandbox.start()
    threading.Timer(0.3, envd.drop_streams).start()
    with pytest.raises(SandboxTerminatedError, match="lost the connection"):
        sandbox.execute("import time\ntime.sleep(30)")
    assert envd.live_processes() == 0


async def test_output_stream_drop_async(make, envd):
    sandbox = make()
    await sandbox.astart()
    asyncio.get_running_loop().call_later(0.3, envd.drop_streams)
    with pytest.raises(SandboxTerminatedError, match="lost the connection"):
        await sandbox.aexecute("import time\ntime.sleep(30)")
    assert envd.live_processes() == 0


def test_oversize_line(make, envd):
    sandbox = make(max_line_bytes=4096, max_output_chars=100_000)
    with pytest.raises(SandboxProtocolError, match=r"larger than 4,096 bytes"):
        sandbox.execute("print('x' * 20_000)")
    assert envd.live_processes() == 0


async def test_oversize_line_async(make, envd):
    sandbox = make(max_line_bytes=4096)
    with pytest.raises(SandboxProtocolError, match=r"larger than 4,096 bytes"):
        await sandbox.aexecute("echo('x' * 20_000)", tools={"echo": lambda x: x})
    assert envd.live_processes() == 0


def test_slow_send_stdin(make, envd):
    sandbox = make(send_timeout=0.3)
    sandbox.start()
    envd.input_delay = 1.0
    with pytest.raises(SandboxTerminatedError, match=r"send_timeout=0\.3s"):
        sandbox.execute("1")
    assert envd.live_processes() == 0


async def test_slow_send_stdin_async(make, envd):
    sandbox = make(send_timeout=0.3)
    await sandbox.astart()
    envd.input_delay = 1.0
    with pytest.raises(SandboxTerminatedError, match=r"send_timeout=0\.3s"):
        await sandbox.aexecute("1")
    assert envd.live_processes() == 0


def test_timeout_interrupts_then_kills(make, envd):
    sandbox = make(grace=0.5)
    result = sandbox.execute("while True:\n    pass", timeout=0.3)
    assert result.timed_out
    assert sandbox.execute("2 + 2").value == 4
    with pytest.raises(SandboxTimeoutError, match="ignored the interrupt"):
        sandbox.execute(STUBBORN_CODE, timeout=0.3)
    assert envd.live_processes() == 0


async def test_atimeout_interrupts_then_kills(make, envd):
    sandbox = make(grace=0.5)
    assert (await sandbox.aexecute("while True:\n    pass", timeout=0.3)).timed_out
    with pytest.raises(SandboxTimeoutError):
        await sandbox.aexecute(STUBBORN_CODE, timeout=0.3)
    assert envd.live_processes() == 0


def test_prebuilt_template_runs_the_baked_in_driver(make, envd):
    baked = pathlib.Path(envd.map_path(TEMPLATE_DRIVER_PATH))
    baked.parent.mkdir(parents=True, exist_ok=True)
    baked.write_bytes(pathlib.Path(e2b_backend._driver.__file__).read_bytes())
    sandbox = make(template="rlm-plugins", driver_path=str(baked))
    assert not sandbox.upload_driver
    assert sandbox.execute("1 + 1").value == 2
    assert not (pathlib.Path(sandbox.session_dir) / "driver.py").exists()


def test_template_without_driver_fails_to_start_with_advice(make, envd):
    sandbox = make(template="some-other-template", driver_path=envd.map_path("/nowhere/driver.py"))
    with pytest.raises(SandboxStartError, match=r"sandbox/template\.py"):
        sandbox.start()
    assert envd.live_processes() == 0


def test_close_while_starting_leaves_nothing_behind(make, envd):
    sandbox = make()
    envd.input_delay = 1.0  # the hello waits, so close() lands mid-start
    threading.Timer(0.3, sandbox.close).start()
    with pytest.raises(SandboxClosedError):
        sandbox.start()
    assert _settled(envd) == 0


def test_default_template_warns_once(make, monkeypatch):
    monkeypatch.setattr(e2b_backend, "_warned_upload", False)
    with pytest.warns(UserWarning, match=r"sandbox/template\.py"):
        make()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make().start()


def test_login_shell_output_before_the_driver_is_not_protocol(make, envd):
    profile = pathlib.Path(envd.map_path(".profile"))
    profile.write_text("echo 'Welcome to the sandbox'\n")
    try:
        sandbox = make()
        assert sandbox.execute("1").value == 1
        assert "Welcome" in sandbox._output.tail
    finally:
        profile.unlink()


def test_api_key_is_required_outside_debug_mode(monkeypatch):
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    monkeypatch.delenv("E2B_DEBUG", raising=False)
    with pytest.raises(ConfigurationError, match="E2B_API_KEY"):
        E2BSandbox()


def test_interpreter_exit_closes_sync_and_async_sandboxes(make, envd):
    make().start()
    asyncio.run(make().astart())  # its event loop is gone when the exit hook runs
    assert envd.live_processes() == 2
    e2b_backend._close_all()
    assert _settled(envd) == 0


def test_outbox_keeps_order_and_chunks():
    box = Outbox(4)
    for part in (b"ab", b"cdefghij", b"k"):
        box.put(part)
    assert [box.take() for _ in range(4)] == [b"abcd", b"efgh", b"ijk", b""]


def _root_script(*codes):
    """Root turns run `codes` in order; sub-calls answer "sub"; the extract step answers "extracted"."""

    def reply(request):
        messages = request["messages"]
        if messages[0]["role"] != "system":
            return "sub"
        if "no more code will run" in messages[-1]["content"]:
            return "extracted"
        turn = sum(1 for m in messages if m["role"] == "assistant")
        return f"```repl\n{codes[min(turn, len(codes) - 1)]}\n```"

    return reply


COUNT = _root_script("n = len(context)\nprint(n, llm_query('hello'))", "FINAL(n)")
CRASH = _root_script("n = len(context)\nprint(n)", "import os\nos._exit(7)")


def _rlm(server, envd):
    return RLM(
        model="openai/root-model",
        sub_model="openai/sub-model",
        api_base=server.base_url,
        api_key="sk-test",
        model_kwargs={"num_retries": 0},
        sandbox="e2b",
        sandbox_options={"workdir": envd.workdir, "debug": True},
    )


def test_engine_runs_over_e2b(scripted_openai, envd):
    result = _rlm(scripted_openai(COUNT), envd).completion("x" * 100_000, root_prompt="How long?")
    assert (result.response, result.finish_reason) == ("100000", "final")
    assert result.steps[0].runs[0].result.stdout == "100000 sub\n"
    assert _settled(envd) == 0


async def test_engine_aruns_over_e2b(scripted_openai, envd):
    result = await _rlm(scripted_openai(COUNT), envd).acompletion("x" * 100_000, root_prompt="How long?")
    assert (result.response, result.finish_reason) == ("100000", "final")
    assert _settled(envd) == 0


def test_engine_keeps_the_trajectory_when_the_sandbox_dies(scripted_openai, envd):
    result = _rlm(scripted_openai(CRASH), envd).completion("x" * 1000, root_prompt="How long?")
    assert result.finish_reason == "sandbox_error"
    assert result.steps[0].runs[0].result.stdout == "1000\n"
    assert "exited with code 7" in " ".join(result.steps[-1].notes)
    assert _settled(envd) == 0


async def test_engine_keeps_the_trajectory_when_the_sandbox_dies_async(scripted_openai, envd):
    result = await _rlm(scripted_openai(CRASH), envd).acompletion("x" * 1000, root_prompt="How long?")
    assert result.finish_reason == "sandbox_error"
    assert result.steps[0].runs[0].result.stdout == "1000\n"
    assert _settled(envd) == 0


live = pytest.mark.skipif(not os.environ.get("E2B_API_KEY"), reason="E2B_API_KEY is not set")


def _still_listed(sandbox_id, wait=15.0):
    from e2b import Sandbox, SandboxQuery

    deadline = time.monotonic() + wait
    while True:
        listed = Sandbox.list(query=SandboxQuery(metadata={"created_by": "rlm-plugins"})).next_items()
        if sandbox_id not in {info.sandbox_id for info in listed} or time.monotonic() > deadline:
            return sandbox_id in {info.sandbox_id for info in listed}
        time.sleep(1)


@pytest.mark.live
@live
def test_live_cloud_round_trip(monkeypatch):
    monkeypatch.delenv("E2B_DEBUG", raising=False)
    with E2BSandbox(template=os.environ.get("RLM_E2B_TEMPLATE")) as sandbox:
        sandbox.load("context", "live " * 500_000)
        result = sandbox.execute("print(context.count('live'), echo(2))", tools={"echo": lambda x: x})
        assert result.stdout == "500000 2\n"
        sandbox_id = sandbox.sandbox_id
    assert not _still_listed(sandbox_id)


@pytest.mark.live
@live
async def test_live_cloud_async_round_trip(monkeypatch):
    monkeypatch.delenv("E2B_DEBUG", raising=False)
    async with E2BSandbox(template=os.environ.get("RLM_E2B_TEMPLATE")) as sandbox:
        await sandbox.aload("context", "live " * 500_000)
        assert (await sandbox.aexecute("context.count('live')")).value == 500_000
        sandbox_id = sandbox.sandbox_id
    assert not await asyncio.to_thread(_still_listed, sandbox_id)
