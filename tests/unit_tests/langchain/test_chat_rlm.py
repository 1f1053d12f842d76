"""ChatRLM over scripted inner models and real sandboxes: context moves, usage, metadata, streaming, params."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage

from rlm_plugins.langchain import ChatRLM
from tests.unit_tests.langchain.scripted import ScriptedRoot, ScriptedSub, repl


def scripted(*replies: str) -> FakeMessagesListChatModel:
    return FakeMessagesListChatModel(responses=[AIMessage(r) for r in replies])


@pytest.fixture(params=["sync", "async"])
def call(request):
    async def run(model, messages, **kw):
        if request.param == "sync":
            return model.invoke(messages, **kw)
        return await model.ainvoke(messages, **kw)

    return run


async def test_long_message_moves_into_the_repl(call) -> None:
    doc = "alpha beta gamma " * 2_000
    root = scripted(repl("print(len(context), context.count('beta'))"), repl("FINAL(str(context.count('beta')))"))
    rlm = ChatRLM(root=root, sub=ScriptedSub(), sandbox="local", context_threshold=1_000)
    result = await call(rlm, [HumanMessage(doc)])
    assert result.text == "2000"
    assert result.response_metadata["rlm"]["iterations"] == 2


async def test_several_long_messages_become_documents_with_role_and_position(call) -> None:
    code = "FINAL([(d['role'], d['position'], len(d['content'])) for d in context])"
    seen: list[str] = []

    class Root(FakeMessagesListChatModel):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            seen.append("\n".join(m.text for m in messages))
            return super()._generate(messages, stop, run_manager, **kwargs)

    rlm = ChatRLM(
        root=Root(responses=[AIMessage(repl(code))]), sub=ScriptedSub(), sandbox="local", context_threshold=500
    )
    messages = [SystemMessage("s" * 600), HumanMessage("short question?"), HumanMessage("d" * 900)]
    result = await call(rlm, messages)
    assert result.text == '[["system", 0, 600], ["user", 2, 900]]'
    assert "s" * 600 not in seen[0] and "d" * 900 not in seen[0]
    assert "short question?" in seen[0] and "`context[1]['content']`" in seen[0]


async def test_usage_is_summed_over_root_and_sub_calls_with_a_breakdown(call) -> None:
    rlm = ChatRLM(root=ScriptedRoot(), sub=ScriptedSub(), sandbox="inprocess")
    result = await call(rlm, "What is RLM?")
    by_model = result.response_metadata["usage_by_model"]
    assert set(by_model) == {"scripted-root", "scripted-sub"}
    assert by_model["scripted-sub"]["calls"] == 1
    total_in = sum(u["input_tokens"] for u in by_model.values())
    assert result.usage_metadata["input_tokens"] == total_in > 0
    assert result.usage_metadata["total_tokens"] == total_in + sum(u["output_tokens"] for u in by_model.values())
    assert result.response_metadata["model_name"] == "scripted-root"
    assert result.response_metadata["finish_reason"] == "stop"


async def test_budget_end_is_reported(call) -> None:
    root = scripted(repl("print(1)"), repl("print(2)"), "extracted answer")
    rlm = ChatRLM(root=root, sub=ScriptedSub(), sandbox="inprocess", max_iterations=2)
    result = await call(rlm, "q")
    assert result.text == "extracted answer"
    assert result.response_metadata["finish_reason"] == "max_iterations"


def test_stream_yields_the_answer_then_one_usage_chunk() -> None:
    root = scripted(repl("FINAL('one two three four five six seven eight nine ten eleven twelve')"))
    chunks = list(ChatRLM(root=root, sub=ScriptedSub(), sandbox="inprocess").stream("q"))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert [c.chunk_position for c in chunks].count("last") == 1 and chunks[-1].chunk_position == "last"
    assert sum(1 for c in chunks if c.usage_metadata) == 1
    full = chunks[0]
    for c in chunks[1:]:
        full += c
    assert full.text.startswith("one two") and full.text.endswith("twelve")
    assert full.response_metadata["model_name"]


async def test_astream_yields_the_answer_then_one_usage_chunk() -> None:
    root = scripted(repl("FINAL('a b c')"))
    chunks = [c async for c in ChatRLM(root=root, sub=ScriptedSub(), sandbox="inprocess").astream("q")]
    assert "".join(c.text for c in chunks) == "a b c"
    assert chunks[-1].chunk_position == "last" and sum(1 for c in chunks if c.usage_metadata) == 1


def test_stop_sequences_cut_the_answer() -> None:
    root = scripted(repl("FINAL('keep this STOP drop that')"))
    rlm = ChatRLM(root=root, sub=ScriptedSub(), sandbox="inprocess")
    assert rlm.invoke("q", stop=["STOP"]).text == "keep this "


def test_identifying_params_cover_everything_that_changes_the_answer() -> None:
    base = {"root": ScriptedRoot(), "sub": ScriptedSub(), "sandbox": "local"}
    keys = {
        ChatRLM(**base)._get_llm_string(),
        ChatRLM(**{**base, "root": ScriptedRoot(name_tag="other")})._get_llm_string(),
        ChatRLM(**{**base, "sub": ScriptedSub(prefix="other")})._get_llm_string(),
        ChatRLM(**{**base, "max_iterations": 3})._get_llm_string(),
        ChatRLM(**{**base, "max_llm_calls": 7})._get_llm_string(),
        ChatRLM(**{**base, "max_depth": 2})._get_llm_string(),
        ChatRLM(**{**base, "sandbox": "inprocess"})._get_llm_string(),
        ChatRLM(**{**base, "context_threshold": 99})._get_llm_string(),
    }
    assert len(keys) == 8


def test_sub_defaults_to_root_and_model_alias() -> None:
    root = ScriptedRoot()
    rlm = ChatRLM(model=root)
    assert rlm.sub_model is root and rlm.root is root


def test_provider_string_goes_through_init_chat_model(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    rlm = ChatRLM(root="openai:gpt-4o-mini", sub="openai:gpt-4o-mini")
    assert type(rlm.root).__name__ == "ChatOpenAI"
    assert rlm._get_ls_params()["ls_model_name"] == "gpt-4o-mini"
    assert rlm._get_ls_params(model="other")["ls_model_name"] == "other"


def test_bad_settings_name_the_argument() -> None:
    with pytest.raises(ValueError, match="max_iterations"):
        ChatRLM(root=ScriptedRoot(), max_iterations=0)
    with pytest.raises(ValueError, match="sandbox kind"):
        ChatRLM(root=ScriptedRoot(), sandbox="nowhere")
    with pytest.raises(ValueError, match="context_threshold"):
        ChatRLM(root=ScriptedRoot(), context_threshold=0)


async def test_astream_stopped_early_ends_the_run_cleanly() -> None:
    root = scripted(repl("FINAL(' '.join(['word'] * 100))"))
    rlm = ChatRLM(root=root, sub=ScriptedSub(), sandbox="local")
    stream = rlm.astream("q")
    first = await stream.__anext__()
    await stream.aclose()
    assert first.text.startswith("word")
    assert (await rlm.ainvoke("q")).text.startswith("word")  # the model is still usable


async def test_astream_of_a_cached_answer() -> None:
    from langchain_core.caches import InMemoryCache

    calls = []

    class Root(FakeMessagesListChatModel):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            calls.append(1)
            return super()._generate(messages, stop, run_manager, **kwargs)

    root = Root(responses=[AIMessage(repl("FINAL('cached answer')"))])
    rlm = ChatRLM(root=root, sub=ScriptedSub(), sandbox="inprocess", cache=InMemoryCache())
    first = "".join([c.text async for c in rlm.astream("q")])
    again = [c async for c in rlm.astream("q")]
    assert first == "".join(c.text for c in again) == "cached answer"
    assert again[-1].chunk_position == "last" and len(calls) == 1
