"""Every official `RLM` constructor argument is accepted and honoured (each test fails if its argument is ignored)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from typing import Any

import pytest

from rlm_plugins import RLM
from rlm_plugins.errors import (
    BudgetExceededError,
    CancellationError,
    ConfigurationError,
    ErrorThresholdExceededError,
    LimitExceededError,
    TimeoutExceededError,
    TokenLimitExceededError,
    UnknownArgumentError,
)
from rlm_plugins.standalone.clients import BackendClient
from tests.compat._rlms_clients import OFFICIAL, Clients, answer, repl

M = {"model_name": "m"}


def by_marker(script: dict[str, list[str]]) -> Any:
    """Replies chosen by a marker in the first user message, turn by turn (root and rlm_query children)."""

    def reply(prompt: Any) -> str:
        if isinstance(prompt, str):
            return f"sub:{prompt}"
        opening = prompt[0]["content"] + next(m["content"] for m in prompt[1:] if m["role"] == "user")
        lines = next(lines for marker, lines in script.items() if marker in opening)
        turn = sum(1 for m in prompt if m["role"] == "assistant")
        return lines[min(turn, len(lines) - 1)]

    return reply


def test_max_errors_stops_after_consecutive_failing_turns(clients: Clients) -> None:
    clients.add("m", [repl("1/0"), repl("undefined_name"), answer("never")])
    with pytest.raises(ErrorThresholdExceededError) as caught:
        RLM(**OFFICIAL, backend_kwargs=M, max_errors=2).completion("ctx")
    assert (caught.value.error_count, caught.value.threshold) == (2, 2)
    assert "NameError" in caught.value.last_error and caught.value.result.iterations == 2


def test_max_errors_counts_only_consecutive_failures(clients: Clients) -> None:
    clients.add("m", [repl("1/0"), repl("x = 1"), repl("1/0"), answer("ok")])
    assert RLM(**OFFICIAL, backend_kwargs=M, max_errors=2).completion("ctx").response == "ok"


def test_custom_system_prompt_replaces_the_instructions(clients: Clients) -> None:
    client = clients.add("m", [answer("ok")])
    RLM(**OFFICIAL, backend_kwargs=M, custom_system_prompt="You are a careful auditor.").completion("ctx")
    system = client.system()
    assert system.startswith("You are a careful auditor.") and "`context`" in system and "Recursive" not in system


def test_custom_tools_are_callable_in_the_repl(clients: Clients) -> None:
    clients.add("m", [repl("answer['content'] = double(21)\nanswer['ready'] = True")])
    assert RLM(**OFFICIAL, backend_kwargs=M, custom_tools={"double": lambda x: 2 * x}).completion("c").response == "42"


def test_custom_sub_tools_are_what_children_get(clients: Clients) -> None:
    probe = "answer['content'] = [n for n in ('root_tool', 'kid_tool') if n in globals()]\nanswer['ready'] = True"
    clients.add(
        "m",
        by_marker(
            {
                "CHILD": [repl(probe)],
                "ROOT": [repl("r = rlm_query('CHILD task')\nprint(r)"), repl(probe.replace("= [n", "= [r] + [n"))],
            }
        ),
    )
    rlm = RLM(
        **OFFICIAL,
        backend_kwargs=M,
        max_depth=2,
        custom_tools={"root_tool": lambda: 1},
        custom_sub_tools={"kid_tool": lambda: 2},
    )
    assert rlm.completion("ctx", root_prompt="ROOT").answer == ['["kid_tool"]', "root_tool"]


def test_iteration_and_subcall_callbacks_fire(clients: Clients) -> None:
    clients.add("m", by_marker({"CHILD": [answer("kid")], "ROOT": [repl("print(rlm_query('CHILD x'))"), answer("r")]}))
    seen: list[tuple] = []
    RLM(
        **OFFICIAL,
        backend_kwargs=M,
        max_depth=2,
        on_iteration_start=lambda d, i: seen.append(("start", d, i)),
        on_iteration_complete=lambda d, i, t: seen.append(("done", d, i, t >= 0)),
        on_subcall_start=lambda d, m, p: seen.append(("sub", d, m, p)),
        on_subcall_complete=lambda d, m, t, e: seen.append(("sub-done", d, m, e)),
    ).completion("ctx", root_prompt="ROOT")
    assert seen == [
        ("start", 0, 1),
        ("sub", 1, "m", "CHILD x"),
        ("start", 1, 1),
        ("done", 1, 1, True),
        ("sub-done", 1, "m", None),
        ("done", 0, 1, True),
        ("start", 0, 2),
        ("done", 0, 2, True),
    ]


def test_sampling_args_reach_the_root_and_sub_clients(clients: Clients) -> None:
    clients.add("m", [answer("ok")])
    RLM(**OFFICIAL, backend_kwargs=M, sampling_args={"temperature": 0.1}, sub_sampling_args={"temperature": 0.9})
    (root_backend, root_kw), (sub_backend, sub_kw) = clients.calls
    assert root_kw["sampling_args"] == {"temperature": 0.1} and sub_kw["sampling_args"] == {"temperature": 0.9}
    assert root_backend == sub_backend == "openai"


def test_sampling_args_become_call_parameters_of_the_real_client() -> None:
    rlm = RLM(backend="openai", backend_kwargs={"model_name": "gpt-x", "api_key": "k"}, sampling_args={"seed": 7})
    assert isinstance(rlm.client, BackendClient) and rlm.client.chat.params == {"seed": 7}
    assert rlm.client.chat.model == "openai/gpt-x" and rlm.root_model == "gpt-x"


def test_max_budget_stops_the_run(clients: Clients) -> None:
    clients.add("m", [repl("x = 1")], cost=0.5)
    with pytest.raises(BudgetExceededError) as caught:
        RLM(**OFFICIAL, backend_kwargs=M, max_budget=1.0).completion("ctx")
    assert caught.value.budget == 1.0 and caught.value.spent >= 1.0
    assert caught.value.result.finish_reason == "max_cost" and caught.value.result.iterations == 2


def test_max_tokens_stops_the_run(clients: Clients) -> None:
    clients.add("m", [repl("x = 1")], tokens=(10, 5))
    with pytest.raises(TokenLimitExceededError) as caught:
        RLM(**OFFICIAL, backend_kwargs=M, max_tokens=40).completion("ctx")
    assert caught.value.token_limit == 40 and caught.value.tokens_used > 40
    assert caught.value.result.iterations == 3


def test_max_timeout_stops_the_run(clients: Clients) -> None:
    clients.add("m", [repl("x = 1")])
    with pytest.raises(TimeoutExceededError) as caught:
        RLM(**OFFICIAL, backend_kwargs=M, max_timeout=0).completion("ctx")
    assert caught.value.timeout == 0 and caught.value.result.finish_reason == "max_time"


def test_on_limit_return_gives_the_result_instead(clients: Clients) -> None:
    clients.add("m", [repl("1/0")])
    result = RLM(**OFFICIAL, backend_kwargs=M, max_errors=1, on_limit="return").completion("ctx")
    assert result.finish_reason == "max_errors" and result.iterations == 1


def test_our_call_shape_returns_at_a_limit_unless_told_to_raise() -> None:
    assert RLM(model="openai/m").on_limit == "return"
    assert RLM(model="openai/m", on_limit="raise").on_limit == "raise"
    with pytest.raises(ConfigurationError, match="on_limit"):
        RLM(model="openai/m", on_limit="explode")  # type: ignore[arg-type]


@pytest.mark.parametrize(("compaction", "chars"), [(None, 32_000 * 4), (True, int(128_000 * 0.5) * 4), (False, 2**42)])
def test_compaction_sets_the_history_budget(compaction: bool | None, chars: int) -> None:
    rlm = RLM(model="openai/gpt-4o", compaction=compaction, compaction_threshold_pct=0.5)
    assert rlm.engine.policy.max_history_chars == chars  # type: ignore[attr-defined]


def test_other_backends_serve_llm_query(clients: Clients) -> None:
    clients.add("m", [repl("print(llm_query('q'))"), answer("ok")])
    sub = clients.add("s", ["from s"])
    rlm = RLM(**OFFICIAL, backend_kwargs=M, other_backends=["anthropic"], other_backend_kwargs=[{"model_name": "s"}])
    assert rlm.completion("ctx").trajectory[0]["output"] == ["from s\n"] and sub.prompts == ["q"]
    assert clients.calls[1] == ("anthropic", {"model_name": "s"})


def test_other_backends_takes_one_backend() -> None:
    with pytest.raises(ConfigurationError, match="exactly one"):
        RLM(**OFFICIAL, backend_kwargs=M, other_backends=["openai", "anthropic"])


def test_verbose_prints_progress(clients: Clients, capsys: pytest.CaptureFixture[str]) -> None:
    clients.add("m", [answer("ok")])
    RLM(**OFFICIAL, backend_kwargs=M, verbose=True).completion("ctx")
    assert capsys.readouterr().err.strip()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_depth_at_max_depth_is_one_plain_call(clients: Clients, mode: str) -> None:
    client = clients.add("m", ["plain reply"])
    rlm = RLM(**OFFICIAL, backend_kwargs=M, depth=1, max_depth=1)
    result = rlm.completion("what is 2+2?") if mode == "sync" else asyncio.run(rlm.acompletion("what is 2+2?"))
    assert (result.response, result.iterations, result.root_model) == ("plain reply", 0, "m")
    assert client.prompts == [[{"role": "user", "content": "what is 2+2?"}]]


def test_user_prologue_opens_the_question(clients: Clients) -> None:
    client = clients.add("m", [answer("ok")])
    RLM(**OFFICIAL, backend_kwargs=M, user_prologue="Tip: the data is CSV.").completion("ctx", root_prompt="Sum?")
    assert "Tip: the data is CSV.\n\nSum?" in client.first_user()


def test_an_unknown_argument_names_the_nearest_valid_one() -> None:
    with pytest.raises(UnknownArgumentError, match=r"'max_iteration' \(did you mean 'max_iterations'\?\)") as info:
        RLM(model="openai/gpt-5-mini", max_iteration=3)
    assert isinstance(info.value, TypeError)


def test_orchestrator_is_accepted_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="orchestrator"):
        RLM(model="openai/gpt-5-mini", orchestrator=False)


@pytest.mark.parametrize(("environment", "kind"), [("local", "local"), ("docker", "docker"), ("e2b", "e2b")])
def test_supported_environments(environment: str, kind: str) -> None:
    assert RLM(model="openai/gpt-5-mini", environment=environment).sandbox_kind == kind


@pytest.mark.parametrize("environment", ["modal", "prime", "daytona"])
def test_unsupported_environments_are_named(environment: str) -> None:
    with pytest.raises(ConfigurationError, match=f"no {environment} sandbox"):
        RLM(model="openai/gpt-5-mini", environment=environment)
    with pytest.raises(ValueError, match="persistent=True is not supported"):
        RLM(model="openai/gpt-5-mini", environment=environment, persistent=True)


def test_max_concurrent_subcalls_bounds_the_batches(clients: Clients) -> None:
    clients.add("m", [answer("ok")])
    assert RLM(**OFFICIAL, backend_kwargs=M, max_concurrent_subcalls=3).engine.max_concurrency == 3


def test_environment_kwargs_configure_the_sandbox(clients: Clients) -> None:
    clients.add("m", [answer("ok")])
    rlm = RLM(backend="openai", backend_kwargs=M, environment="local", environment_kwargs={"isolation": "bogus"})
    with pytest.raises(ConfigurationError, match="isolation='bogus'"):
        rlm.completion("c")


def test_ctrl_c_raises_the_official_cancellation_error(clients: Clients) -> None:
    clients.add("m", [repl("busy()\nimport time\ntime.sleep(60)")])
    busy = threading.Event()

    def interrupt() -> None:
        if busy.wait(60):
            os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    rlm = RLM(backend="openai", environment="local", backend_kwargs=M, custom_tools={"busy": busy.set})
    with pytest.raises(CancellationError) as caught:
        rlm.completion("ctx")
    assert isinstance(caught.value, LimitExceededError) and "Ctrl+C" in str(caught.value)
