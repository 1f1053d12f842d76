"""MCP servers' tools inside the REPL: a stdio server written for the test (official SDK) serves tools that the
scripted root model's code calls from the real sandbox, local and e2b (fake envd)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from rlm_plugins.errors import ConfigurationError, McpToolError
from rlm_plugins.mcp import McpToolset
from tests.fixtures_envd import settled
from tests.fixtures_openai import standalone_rlm

SERVER = [sys.executable, str(Path(__file__).resolve().parents[2] / "fakes" / "mcp_tools_server.py")]
SPEC = {"command": SERVER[0], "args": SERVER[1:]}

CODE = [
    "items = context.split()\ntotal = sum(price(item) for item in items)\nprint(total, shout('ok', times=2))",
    "try:\n    price('plum')\nexcept Exception as exc:\n    print(type(exc).__name__, exc)\nbig = huge()\n"
    "print(len(big), big[-60:])",
    "FINAL(total)",
]


def root(request):
    turn = sum(1 for m in request["messages"] if m["role"] == "assistant")
    return f"```repl\n{CODE[min(turn, len(CODE) - 1)]}\n```"


@pytest.fixture(scope="module")
def toolset():
    with McpToolset([SPEC], max_result_chars=10_000) as tools:
        yield tools


def test_tools_carry_the_servers_descriptions_and_signatures(toolset):
    import inspect

    tools = toolset.tools()
    assert set(tools) == {"price", "shout", "huge", "die"}
    assert tools["price"].__doc__ == "The price of one item in cents."
    assert str(inspect.signature(tools["shout"])) == "(text: str, times: int = 1)"
    assert tools["price"]("pear") == 5 and tools["shout"]("a", 3) == "AAA"


def check(result):
    assert (result.response, result.finish_reason) == ("11", "final")
    first, second = (step.runs[0].result for step in result.steps[:2])
    assert first.stdout == "11 OKOK\n"
    assert second.stdout.startswith("ToolError") and "McpToolError" in second.stdout
    assert "unknown item 'plum'" in second.stdout
    assert int(second.stdout.splitlines()[1].split()[0]) < 10_200
    assert "the MCP tool returned 1,000,000 characters; showing 10,000]" in second.stdout


def test_repl_calls_mcp_tools_in_the_local_sandbox(scripted_openai):
    with standalone_rlm(scripted_openai(root), mcp_servers=[SPEC], sandbox="local") as rlm:
        rlm._mcp.max_result_chars = 10_000
        check(rlm.completion("apple pear apple", root_prompt="Total price?"))


async def test_repl_calls_mcp_tools_in_the_local_sandbox_async(scripted_openai):
    with standalone_rlm(scripted_openai(root), mcp_servers=[SPEC], sandbox="local") as rlm:
        rlm._mcp.max_result_chars = 10_000
        check(await rlm.acompletion("apple pear apple", root_prompt="Total price?"))


def test_repl_calls_mcp_tools_in_e2b(scripted_openai, envd, monkeypatch):
    monkeypatch.setenv("E2B_DEBUG", "true")
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    options = {"workdir": envd.workdir, "debug": True}
    with standalone_rlm(scripted_openai(root), mcp_servers=[SPEC], sandbox="e2b", sandbox_options=options) as rlm:
        rlm._mcp.max_result_chars = 10_000
        check(rlm.completion("apple pear apple", root_prompt="Total price?"))
    assert settled(envd) == 0


def test_the_tool_list_reaches_the_root_prompt(scripted_openai):
    server = scripted_openai(root)
    with standalone_rlm(server, mcp_servers=[SPEC]) as rlm:
        rlm.completion("apple", root_prompt="Total price?")
    system = server.requests[0]["messages"][0]["content"]
    assert "price(item: str)" in system and "The price of one item in cents." in system


def test_a_dead_server_is_an_error_for_that_call_then_it_comes_back():
    with McpToolset([SPEC]) as toolset:
        tools = toolset.tools()
        with pytest.raises(McpToolError, match="die"):
            tools["die"]()
        assert tools["price"]("apple") == 3


def test_a_server_that_cannot_start_is_a_clear_error():
    with pytest.raises(McpToolError, match="could not be started"):
        McpToolset([{"command": sys.executable, "args": ["-c", "import sys; sys.exit(1)"]}], connect_timeout=20)


def test_clashing_tool_names_need_a_prefix():
    with pytest.raises(ConfigurationError, match="prefix"):
        McpToolset([SPEC, SPEC])
    with McpToolset([SPEC, {**SPEC, "prefix": "b_"}]) as toolset:
        assert {"price", "b_price"} <= set(toolset.tools())


def test_bad_server_entries_are_configuration_errors():
    with pytest.raises(ConfigurationError):
        McpToolset([{"cmd": "x"}])
    with pytest.raises(ConfigurationError):
        McpToolset([42])


def test_dspy_rlm_calls_mcp_tools_and_survives_deepcopy():
    import dspy

    from rlm_plugins.dspy import RLM
    from tests.unit_tests.dspy._scripted import ScriptedLM, echo_sub, root

    steps = [
        ("price it", "total = sum(price(i) for i in context.split())\nprint(total)"),
        ("done", "SUBMIT(answer=total)"),
    ]
    lm = ScriptedLM(root(*steps))
    program = RLM("context -> answer: int", sandbox="local", sub_lm=echo_sub(), mcp_servers=[SPEC])
    try:
        instructions = program.generate_action.signature.instructions
        assert "`price(item: string)` - The price of one item in cents." in instructions
        copy = program.deepcopy()
        with dspy.context(lm=lm):
            assert copy(context="apple pear").answer == 8
            assert program(context="pear pear").answer == 10
    finally:
        program._mcp.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_chat_rlm_calls_mcp_tools(mode):
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage, HumanMessage

    from rlm_plugins.langchain import ChatRLM
    from tests.unit_tests.langchain.scripted import ScriptedSub, repl

    code = "total = sum(price(i) for i in context.split())\nFINAL(str(total))"
    root = FakeMessagesListChatModel(responses=[AIMessage(repl(code))])
    model = ChatRLM(root=root, sub=ScriptedSub(), sandbox="local", context_threshold=10, mcp_servers=[SPEC])
    message = [HumanMessage("apple pear apple pear")]
    result = model.invoke(message) if mode == "sync" else await model.ainvoke(message)
    assert result.text == "16"
    assert "mcp_servers" in model._identifying_params
