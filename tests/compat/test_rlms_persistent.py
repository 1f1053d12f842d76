"""`persistent=True` as in the official package: one REPL across calls, `context_<n>` / `history_<n>`,
`rlm.persistent`, `persistent_env` (`_persistent_env`), `close()` and the context manager."""

from __future__ import annotations

import asyncio

import pytest

from rlm_plugins import RLM
from tests.compat._rlms_clients import OFFICIAL, Clients, answer, repl

M = {"model_name": "m"}
PROBE = repl(
    "answer['content'] = [context, len(history)] if 'history' in globals() else [context]\nanswer['ready'] = True"
)


def test_persistent_is_an_attribute_and_off_by_default(clients: Clients) -> None:
    clients.add("m", [answer("ok")])
    assert RLM(**OFFICIAL, backend_kwargs=M).persistent is False
    assert RLM(**OFFICIAL, backend_kwargs=M, persistent=True).persistent is True


def test_the_official_shape_binds_context_and_history_to_the_first_turn(clients: Clients) -> None:
    clients.add("m", [PROBE])
    with RLM(**OFFICIAL, backend_kwargs=M, persistent=True) as rlm:
        answers = [rlm.completion(text).answer for text in ("one", "two", "three")]
    assert [a[0] for a in answers] == ["one", "one", "one"]


def test_model_shape_binds_them_to_the_newest_and_the_choice_is_configurable(clients: Clients) -> None:
    clients.add("m", [PROBE])
    with RLM(**OFFICIAL, backend_kwargs=M, persistent=True, session_aliases="newest") as rlm:
        answers = [rlm.completion(text).answer for text in ("one", "two")]
    assert [a[0] for a in answers] == ["one", "two"]


def _call(rlm: RLM, prompt: str, mode: str) -> object:
    return rlm.completion(prompt) if mode == "sync" else asyncio.run(rlm.acompletion(prompt))


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("environment", ["ipython", "local"])
def test_contexts_histories_and_variables_are_in_the_repl_between_turns(
    clients: Clients, environment: str, mode: str
) -> None:
    clients.add("m", [repl("kept = 41 + 1"), answer("ok")])
    rlm = RLM(backend="openai", backend_kwargs=M, environment=environment, persistent=True)
    assert rlm.persistent_env is None
    _call(rlm, "first", mode)
    env = rlm.persistent_env
    assert env is not None and env is rlm._persistent_env
    assert (env.get_context_count(), env.get_history_count()) == (1, 1)
    assert env.locals["context_0"] == "first" and env.locals["kept"] == 42
    assert env.locals["history_0"][-1] == {"role": "assistant", "content": "FINAL: ok"}
    assert "history_1" not in env.locals and "kept" in list(env.locals)
    _call(rlm, "second", mode)
    assert rlm.persistent_env is env and env.locals["context_1"] == "second" and env.get_history_count() == 2
    rlm.close()
    assert rlm.persistent_env is None


def test_without_persistent_there_is_no_persistent_env(clients: Clients) -> None:
    clients.add("m", [answer("ok")])
    rlm = RLM(**OFFICIAL, backend_kwargs=M)
    rlm.completion("x")
    assert rlm.persistent_env is None


def test_leaving_the_with_block_releases_the_repl(clients: Clients) -> None:
    clients.add("m", [answer("ok")])
    with RLM(**OFFICIAL, backend_kwargs=M, persistent=True) as rlm:
        rlm.completion("x")
        assert rlm._persistent_env is not None
    assert rlm._persistent_env is None
