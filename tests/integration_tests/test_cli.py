"""The command line over the real litellm client and a scripted OpenAI-compatible server on loopback."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import pytest

from rlm_plugins.cli import EXIT_CODES, main

NEEDLE = re.compile(r"magic number is (\d+)")
FINDS = [
    "```repl\nimport re\nfound = re.search(r'magic number is (\\d+)', context).group(1)\nprint(found)\n```",
    "```repl\nFINAL(found)\n```",
]
LOOPS = ["```repl\nprint('still looking')\n```"]
CRASHES = ["```repl\nimport os\nos._exit(3)\n```"]


def root(replies):
    def reply(request):
        messages = request["messages"]
        if "no more code will run" in messages[-1]["content"]:
            return "my best guess is 7"
        turn = sum(1 for m in messages if m["role"] == "assistant")
        return replies[min(turn, len(replies) - 1)]

    return reply


@pytest.fixture
def context_file(tmp_path):
    path = tmp_path / "hay.txt"
    path.write_text("\n".join(["filler"] * 500 + ["the magic number is 4242"] + ["filler"] * 500))
    return path


def run_cli(server, context_file, *extra):
    argv = ["run", "--context", str(context_file), "--query", "magic number?", "--model", "openai/root-model"]
    return main([*argv, "--api-base", server.base_url, "--sandbox", "inprocess", *extra])


def test_run_prints_the_final_answer_and_the_log_path(scripted_openai, context_file, tmp_path, capsys):
    code = run_cli(scripted_openai(root(FINDS)), context_file, "--log-dir", str(tmp_path / "logs"))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip() == "4242"
    logs = list((tmp_path / "logs").glob("*.jsonl"))
    assert len(logs) == 1 and str(logs[0]) in err
    assert "finish_reason=final" in err


def test_budget_end_exits_3_and_prints_no_answer(scripted_openai, context_file, capsys):
    code = run_cli(scripted_openai(root(LOOPS)), context_file, "--max-iterations", "2")
    out, err = capsys.readouterr()
    assert code == EXIT_CODES["max_iterations"] == 3
    assert out == ""
    assert "finish_reason=max_iterations" in err
    assert "my best guess is 7" in err


def test_sandbox_error_exits_4(scripted_openai, context_file, capsys):
    argv = ["run", "--context", str(context_file), "--query", "q", "--model", "openai/root-model"]
    code = main([*argv, "--api-base", scripted_openai(root(CRASHES)).base_url, "--sandbox", "local"])
    out, err = capsys.readouterr()
    assert code == EXIT_CODES["sandbox_error"] == 4, err
    assert out == ""
    assert "finish_reason=sandbox_error" in err


def test_api_key_alone_is_enough(scripted_openai, context_file, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = scripted_openai(root(FINDS))
    argv = ["run", "--context", str(context_file), "--query", "q", "--model", "openai/root-model"]
    code = main([*argv, "--api-key", "sk-mine", "--sandbox", "inprocess", "--api-base", server.base_url])
    assert code == 0, capsys.readouterr().err
    assert server.headers and all(h.get("authorization") == "Bearer sk-mine" for h in server.headers)


def test_api_key_skips_the_environment_check(monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO("ctx"))
    calls = []
    monkeypatch.setattr("rlm_plugins.cli._runner.complete", lambda *a: calls.append(a) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["run", "--context", "-", "--query", "q", "--model", "openai/gpt-4o-mini", "--api-key", "sk-mine"])
    assert calls, capsys.readouterr().err


def test_unreachable_model_exits_5(context_file, capsys):
    argv = ["run", "--context", str(context_file), "--query", "q", "--model", "openai/x"]
    code = main([*argv, "--api-base", "http://127.0.0.1:9/v1", "--sandbox", "inprocess"])
    err = capsys.readouterr().err.strip()
    assert code == 5
    assert err.count("\n") == 0 and "check api_base=" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--query", "q", "--model", "m"], "required"),
        (["run", "--context", "/nonexistent/file", "--query", "q", "--model", "openai/x"], "not a readable file"),
        (["run", "--context", "-", "--query", "q", "--model", "openai/gpt-4o-mini"], "openai/gpt-4o-mini needs"),
        (
            ["run", "--context", "-", "--query", "q", "--model", "openai/x", "--sub-model", "anthropic/claude-x"],
            "--sub-model anthropic/claude-x needs ANTHROPIC_API_KEY",
        ),
        (["demo", "--lines", "0"], "--lines 0"),
        (["demo", "--max-iterations", "0"], "--max-iterations 0"),
        (["demo", "--log-dir", "/etc/hostname/logs"], "--log-dir '/etc/hostname/logs' is not writable"),
        (["run", "--context", "-", "--query", "q", "--model", "m", "--strict"], "--strict refuses"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(argv, message, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    if "openai/gpt-4o-mini" in argv:
        monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setattr("sys.stdin", io.StringIO("" if "--strict" in argv else "some context"))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert "Traceback" not in err


def test_e2b_without_the_sdk_is_one_line(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "e2b" else real(name, *a))
    assert main(["demo", "--sandbox", "e2b"]) == 2
    assert "pip install 'rlm-plugins[e2b]'" in capsys.readouterr().err


@pytest.mark.parametrize(("content", "warning"), [(b"", "is empty"), (b"\x00\x01binary\xff", "looks binary")])
def test_empty_or_binary_context_warns_or_refuses(tmp_path, capsys, monkeypatch, content, warning):
    path = tmp_path / "ctx.bin"
    path.write_bytes(content)
    monkeypatch.setattr("rlm_plugins.cli._runner.complete", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
    argv = ["run", "--context", str(path), "--query", "q", "--model", "openai/x", "--api-base", "http://127.0.0.1:9"]
    assert main(argv) == 130
    assert warning in capsys.readouterr().err
    assert main([*argv, "--strict"]) == 2
    assert "--strict refuses" in capsys.readouterr().err


def test_demo_runs_offline_and_says_so(capsys):
    assert main(["demo", "--lines", "50000"]) == 0
    out, err = capsys.readouterr()
    assert "correct" in out
    assert "OFFLINE" in err and "not model quality" in err


def test_version_and_exit_codes_in_help(capsys):
    from rlm_plugins import __version__

    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    assert main(["run", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "3  a budget ran out" in help_text and "4  the sandbox failed" in help_text


def test_import_makes_no_network_call():
    probe = (
        "import socket\n"
        "calls = []\n"
        "def refuse(*a, **k):\n"
        "    calls.append(a)\n"
        "    raise OSError('network')\n"
        "socket.getaddrinfo = refuse\n"
        "socket.socket.connect = refuse\n"
        "import rlm_plugins, rlm_plugins.dspy, litellm\n"
        "print(len(calls), len(litellm.model_cost) > 100)\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "LITELLM_LOCAL_MODEL_COST_MAP"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "True"]


def test_run_and_demo_keep_stdout_for_the_answer(capsys, tmp_path):
    assert main(["demo", "--lines", "1000", "--verbose", "--log-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("answer: ")
    lines = [json.loads(x) for x in next(tmp_path.glob("*.jsonl")).read_text().splitlines()]
    assert lines[0]["type"] == "metadata"
