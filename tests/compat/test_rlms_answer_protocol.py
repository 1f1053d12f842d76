"""The official 0.1.3 final protocol (`answer["content"]`, `answer["ready"]`) beside FINAL, and `final_style`."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from rlm_plugins import RLM
from rlm_plugins.core.callables import CallableSubModel
from rlm_plugins.core.chat_policy import ChatPolicy
from rlm_plugins.repl.driver import Session
from tests.compat._rlms_clients import OFFICIAL, Clients, answer, repl


def _run(repl_session: Session, code: str) -> dict:
    return repl_session.run(code, lambda out, err: contextlib.nullcontext())


def test_driver_takes_the_answer_dict_once_ready() -> None:
    driver = Session(lambda name, args, kwargs: None)
    assert _run(driver, "answer['content'] = 'draft'")["final"] is None
    assert _run(driver, "answer['content'] += ' done'\nanswer['ready'] = True")["final"] == {"value": "draft done"}
    assert _run(driver, "x = answer")["final"] is None  # reset after use: the next cell starts a fresh answer
    assert "answer" not in driver.user_variables()


def test_driver_ignores_the_answer_dict_when_submit_fields_are_expected() -> None:
    driver = Session(lambda name, args, kwargs: None, final_fields=["answer"])
    assert _run(driver, "answer['ready'] = True")["final"] is None


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_answer_dict_ends_the_run_with_its_content(clients: Clients, mode: str) -> None:
    clients.add("m", [repl("x = 6 * 7\nprint(x)"), repl("answer['content'] = x\nanswer['ready'] = True")])
    rlm = RLM(**OFFICIAL, backend_kwargs={"model_name": "m"})
    result = rlm.completion("ctx") if mode == "sync" else asyncio.run(rlm.acompletion("ctx"))
    assert (result.response, result.answer, result.finish_reason, result.iterations) == ("42", 42, "final", 2)


def test_final_still_ends_the_run_in_the_official_shape(clients: Clients) -> None:
    clients.add("m", [repl("FINAL('via final')")])
    assert RLM(**OFFICIAL, backend_kwargs={"model_name": "m"}).completion("ctx").response == "via final"


def test_final_style_chooses_what_the_system_prompt_teaches(clients: Clients) -> None:
    client = clients.add("m", [answer("ok")])
    RLM(**OFFICIAL, backend_kwargs={"model_name": "m"}, final_style="answer").completion("ctx")
    taught = client.system()
    assert 'answer["ready"] = True' in taught and "FINAL(value)" not in taught
    RLM(**OFFICIAL, backend_kwargs={"model_name": "m"}).completion("ctx")
    default = client.system(1)
    assert "FINAL(value)" in default and 'answer["ready"] = True' not in default


def test_final_style_is_checked() -> None:
    with pytest.raises(ValueError, match="final_style='submit'"):
        RLM(model="openai/gpt-5-mini", final_style="submit")  # type: ignore[arg-type]


def _ours(replies: list[str], **kw: object) -> RLM:
    script = iter(replies)
    policy = ChatPolicy(lambda messages: next(script), model="root")
    return RLM(policy=policy, sub_model=CallableSubModel(str, name="sub"), sandbox="inprocess", **kw)


def test_a_literal_answer_before_any_output_is_refused_by_default_with_model() -> None:
    result = _ours([answer("guess"), repl("print(len(context))"), answer("17")]).completion("x" * 5_000)
    assert (result.response, result.iterations) == ("17", 3)
    assert "refused" in result.steps[0].notes[0]


def test_the_official_shape_accepts_an_answer_in_the_first_reply(clients: Clients) -> None:
    clients.add("m", [answer("at once")])
    result = RLM(**OFFICIAL, backend_kwargs={"model_name": "m"}).completion("x" * 5_000)
    assert (result.response, result.iterations) == ("at once", 1)


def test_refuse_premature_final_is_configurable_either_way(clients: Clients) -> None:
    clients.add("m", [answer("guess"), repl("print(len(context))"), answer("17")])
    strict = RLM(**OFFICIAL, backend_kwargs={"model_name": "m"}, refuse_premature_final=True)
    assert strict.completion("x" * 5_000).iterations == 3
    lenient = _ours([answer("guess")], refuse_premature_final=False).completion("x" * 5_000)
    assert (lenient.response, lenient.iterations) == ("guess", 1)


def test_a_computed_answer_in_the_first_reply_passes_even_with_model() -> None:
    result = _ours([repl("answer['content'] = len(context)\nanswer['ready'] = True")]).completion("x" * 5_000)
    assert (result.answer, result.iterations) == (5_000, 1)
