"""The e2b sandbox with the real E2B SDK, over a fake envd on loopback (debug mode) and, with a key, the real cloud.

What only this backend does is here: its driver process on envd, uploads, the output stream, stdin, templates, and
the engine over it. The behaviour every backend promises runs on the fake envd in
`tests/unit_tests/repl/test_sandbox_contract.py` (`TestE2BSandbox`). Every test that starts a sandbox checks at
teardown that the fake envd has no process left running (the shared `make_e2b` fixture, `tests/fixtures_envd.py`).
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import threading
import time
import warnings

import pytest

from rlm_plugins.errors import (
    ConfigurationError,
    SandboxClosedError,
    SandboxProtocolError,
    SandboxStartError,
    SandboxTerminatedError,
    SandboxTimeoutError,
)
from rlm_plugins.repl import base as sandbox_base
from rlm_plugins.repl import e2b as e2b_backend
from rlm_plugins.repl._e2b_io import Outbox
from rlm_plugins.repl.e2b import TEMPLATE_DRIVER_PATH, E2BSandbox
from tests.fixtures_envd import settled
from tests.fixtures_openai import standalone_rlm

pytestmark = pytest.mark.filterwarnings("ignore:E2BSandbox uploads the driver")
SPIN_CODE = "while True:\n    pass"
STUBBORN_CODE = "import time\nwhile True:\n    try:\n        time.sleep(10)\n    except BaseException:\n        pass\n"


def test_start_runs_one_driver_process(make_e2b, envd):
    sandbox = make_e2b(timeout=120)
    sandbox.start()
    assert (sandbox.kind, sandbox.sandbox_id) == ("e2b", "debug_sandbox_id")
    assert envd.live_processes() == 1


async def test_astart_runs_one_driver_process(make_e2b, envd):
    sandbox = make_e2b(timeout=120)
    await sandbox.astart()
    assert (sandbox.kind, sandbox.sandbox_id) == ("e2b", "debug_sandbox_id")
    assert envd.live_processes() == 1
    await sandbox.aclose()
    assert settled(envd) == 0


def _context_files(envd):
    return sorted(p.name for p in pathlib.Path(envd.workdir).rglob("ctx-*"))


def _packed_file(tmp_path):
    packed = tmp_path / "data.gz"
    packed.write_bytes(b"\x1f\x8b" * 600_000)
    return packed


LOADED = "[len(small), len(large), len(packed)]"


def test_large_uploads_are_gzipped_on_the_wire(make_e2b, envd, tmp_path):
    sandbox = make_e2b()
    sandbox.start()
    del envd.uploads[:]
    sandbox.load("small", "s" * 100_000)
    sandbox.load("large", "l" * 2_000_000)
    sandbox.load("packed", _packed_file(tmp_path), format="bytes")
    assert [encoding for _, encoding in envd.uploads] == ["identity", "gzip", "identity"]
    assert sandbox.execute(LOADED).value == [100_000, 2_000_000, 1_200_000]
    assert _context_files(envd) == []  # each file is removed once the driver has read it
    plain = make_e2b(compress=False)
    plain.load("large", "l" * 2_000_000)
    assert envd.uploads[-1][1] == "identity"


async def test_large_auploads_are_gzipped_on_the_wire(make_e2b, envd, tmp_path):
    sandbox = make_e2b()
    await sandbox.astart()
    del envd.uploads[:]
    await sandbox.aload("small", "s" * 100_000)
    await sandbox.aload("large", "l" * 2_000_000)
    await sandbox.aload("packed", _packed_file(tmp_path), format="bytes")
    assert [encoding for _, encoding in envd.uploads] == ["identity", "gzip", "identity"]
    assert (await sandbox.aexecute(LOADED)).value == [100_000, 2_000_000, 1_200_000]
    assert _context_files(envd) == []
    plain = make_e2b(compress=False)
    await plain.aload("large", "l" * 2_000_000)
    assert envd.uploads[-1][1] == "identity"


def test_big_tool_results_cross_in_chunks(make_e2b):
    sandbox = make_e2b(send_chunk_bytes=4096)
    result = sandbox.execute("print(len(blob()))", tools={"blob": lambda: "y" * 100_000})
    assert result.stdout == "100000\n"


async def test_big_tool_results_across_in_chunks(make_e2b):
    sandbox = make_e2b(send_chunk_bytes=4096)
    result = await sandbox.aexecute("print(len(blob()))", tools={"blob": lambda: "y" * 100_000})
    assert result.stdout == "100000\n"


def test_os_exit_leaves_no_process_on_envd(make_e2b, envd):
    sandbox = make_e2b()
    sandbox.start()
    with pytest.raises(SandboxTerminatedError, match="exited with code 3"):
        sandbox.execute("import os\nos._exit(3)")
    assert envd.live_processes() == 0


async def test_aos_exit_leaves_no_process_on_envd(make_e2b, envd):
    sandbox = make_e2b()
    await sandbox.astart()
    with pytest.raises(SandboxTerminatedError, match="exited with code 3"):
        await sandbox.aexecute("import os\nos._exit(3)")
    assert settled(envd) == 0


def test_output_stream_drop(make_e2b, envd):
    sandbox = make_e2b()
    sandbox.start()
    threading.Timer(0.3, envd.drop_streams).start()
    with pytest.raises(SandboxTerminatedError, match="lost the connection"):
        sandbox.execute("import time\ntime.sleep(30)")
    assert envd.live_processes() == 0


async def test_output_stream_drop_async(make_e2b, envd):
    sandbox = make_e2b()
    await sandbox.astart()
    asyncio.get_running_loop().call_later(0.3, envd.drop_streams)
    with pytest.raises(SandboxTerminatedError, match="lost the connection"):
        await sandbox.aexecute("import time\ntime.sleep(30)")
    assert envd.live_processes() == 0


def test_oversize_line(make_e2b, envd):
    sandbox = make_e2b(max_line_bytes=4096, max_output_chars=100_000)
    with pytest.raises(SandboxProtocolError, match=r"larger than 4,096 bytes"):
        sandbox.execute("print('x' * 20_000)")
    assert envd.live_processes() == 0


async def test_oversize_line_async(make_e2b, envd):
    sandbox = make_e2b(max_line_bytes=4096)
    with pytest.raises(SandboxProtocolError, match=r"larger than 4,096 bytes"):
        await sandbox.aexecute("echo('x' * 20_000)", tools={"echo": lambda x: x})
    assert envd.live_processes() == 0


def test_slow_send_stdin(make_e2b, envd):
    sandbox = make_e2b(send_timeout=0.3)
    sandbox.start()
    envd.input_delay = 1.0
    with pytest.raises(SandboxTerminatedError, match=r"send_timeout=0\.3s"):
        sandbox.execute("1")
    assert envd.live_processes() == 0


async def test_slow_send_stdin_async(make_e2b, envd):
    sandbox = make_e2b(send_timeout=0.3)
    await sandbox.astart()
    envd.input_delay = 1.0
    with pytest.raises(SandboxTerminatedError, match=r"send_timeout=0\.3s"):
        await sandbox.aexecute("1")
    assert envd.live_processes() == 0


def test_ignoring_the_interrupt_kills_the_driver(make_e2b, envd):
    sandbox = make_e2b(grace=0.2)
    assert sandbox.execute(SPIN_CODE, timeout=0.1).timed_out  # an interrupt it obeys leaves it usable
    with pytest.raises(SandboxTimeoutError, match="ignored the interrupt"):
        sandbox.execute(STUBBORN_CODE, timeout=0.3)
    assert envd.live_processes() == 0


async def test_aignoring_the_interrupt_kills_the_driver(make_e2b, envd):
    sandbox = make_e2b(grace=0.2)
    assert (await sandbox.aexecute(SPIN_CODE, timeout=0.1)).timed_out
    with pytest.raises(SandboxTimeoutError, match="ignored the interrupt"):
        await sandbox.aexecute(STUBBORN_CODE, timeout=0.3)
    assert envd.live_processes() == 0


def test_prebuilt_template_runs_the_baked_in_driver(make_e2b, envd):
    baked = pathlib.Path(envd.map_path(TEMPLATE_DRIVER_PATH))
    baked.parent.mkdir(parents=True, exist_ok=True)
    baked.write_bytes(pathlib.Path(e2b_backend._driver.__file__).read_bytes())
    sandbox = make_e2b(template="rlm-plugins", driver_path=str(baked))
    assert not sandbox.upload_driver
    assert sandbox.execute("1 + 1").value == 2
    assert not (pathlib.Path(sandbox.session_dir) / "driver.py").exists()


def test_template_without_driver_fails_to_start_with_advice(make_e2b, envd):
    sandbox = make_e2b(template="some-other-template", driver_path=envd.map_path("/nowhere/driver.py"))
    with pytest.raises(SandboxStartError, match=r"sandbox/template\.py"):
        sandbox.start()
    assert envd.live_processes() == 0


def test_close_while_starting_leaves_nothing_behind(make_e2b, envd):
    sandbox = make_e2b()
    envd.input_delay = 1.0  # the hello waits, so close() lands mid-start
    threading.Timer(0.3, sandbox.close).start()
    with pytest.raises(SandboxClosedError):
        sandbox.start()
    assert settled(envd) == 0


def test_default_template_warns_once(make_e2b, monkeypatch):
    monkeypatch.setattr(e2b_backend, "_warned_upload", False)
    with pytest.warns(UserWarning, match=r"sandbox/template\.py"):
        make_e2b()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_e2b().start()


def test_login_shell_output_before_the_driver_is_not_protocol(make_e2b, envd):
    profile = pathlib.Path(envd.map_path(".profile"))
    profile.write_text("echo 'Welcome to the sandbox'\n")
    try:
        sandbox = make_e2b()
        assert sandbox.execute("1").value == 1
        assert "Welcome" in sandbox._output.tail
    finally:
        profile.unlink()


def test_api_key_is_required_outside_debug_mode(monkeypatch):
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    monkeypatch.delenv("E2B_DEBUG", raising=False)
    with pytest.raises(ConfigurationError, match="E2B_API_KEY"):
        E2BSandbox()


def test_interpreter_exit_closes_sync_and_async_sandboxes(make_e2b, envd):
    make_e2b().start()
    asyncio.run(make_e2b().astart())  # its event loop is gone when the exit hook runs
    assert envd.live_processes() == 2
    sandbox_base._close_all()
    assert settled(envd) == 0


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
    return standalone_rlm(server, sandbox="e2b", sandbox_options={"workdir": envd.workdir, "debug": True})


def test_engine_runs_over_e2b(scripted_openai, envd):
    result = _rlm(scripted_openai(COUNT), envd).completion("x" * 100_000, root_prompt="How long?")
    assert (result.response, result.finish_reason) == ("100000", "final")
    assert result.steps[0].runs[0].result.stdout == "100000 sub\n"
    assert settled(envd) == 0


async def test_engine_aruns_over_e2b(scripted_openai, envd):
    result = await _rlm(scripted_openai(COUNT), envd).acompletion("x" * 100_000, root_prompt="How long?")
    assert (result.response, result.finish_reason) == ("100000", "final")
    assert settled(envd) == 0


def test_engine_keeps_the_trajectory_when_the_sandbox_dies(scripted_openai, envd):
    result = _rlm(scripted_openai(CRASH), envd).completion("x" * 1000, root_prompt="How long?")
    assert result.finish_reason == "sandbox_error"
    assert result.steps[0].runs[0].result.stdout == "1000\n"
    assert "exited with code 7" in " ".join(result.steps[-1].notes)
    assert settled(envd) == 0


async def test_engine_keeps_the_trajectory_when_the_sandbox_dies_async(scripted_openai, envd):
    result = await _rlm(scripted_openai(CRASH), envd).acompletion("x" * 1000, root_prompt="How long?")
    assert result.finish_reason == "sandbox_error"
    assert result.steps[0].runs[0].result.stdout == "1000\n"
    assert settled(envd) == 0


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
