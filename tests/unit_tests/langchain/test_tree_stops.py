"""ChatRLM ends a run only with its whole `rlm_query` tree stopped: no child sandbox process outlives the call."""

from __future__ import annotations

from langchain_core.messages import BaseMessage

from rlm_plugins.langchain import ChatRLM
from rlm_plugins.repl.factory import sandbox_factory
from tests.unit_tests.langchain.scripted import ScriptedSub, _Scripted, repl

STUBBORN = "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass"


class TreeRoot(_Scripted):
    """The root asks one rlm_query child; the child runs code that swallows the interrupt."""

    tag: str = "tree-root"

    def reply(self, messages: list[BaseMessage]) -> str:
        text = "\n".join(m.text for m in messages)
        if "no more code will run" in messages[-1].text:
            return "Best answer from what the REPL showed."
        if "CHILD" in text and "rlm_query('CHILD" not in text:
            return repl(STUBBORN)
        return repl("print(rlm_query('CHILD task'))")


async def test_no_child_sandbox_outlives_the_call(invoke_both) -> None:
    sandboxes = []
    local = sandbox_factory("local")

    def factory(**kw):
        sandboxes.append(local(**kw))
        return sandboxes[-1]

    rlm = ChatRLM(root=TreeRoot(), sub=ScriptedSub(), sandbox=factory, max_depth=2, max_time=4.0)
    result = await invoke_both(rlm, "q")
    alive = [s for s in sandboxes if s._proc is not None and s._proc.poll() is None]
    for sandbox in sandboxes:
        sandbox.close()
    assert result.response_metadata["rlm"]["finish_reason"] == "max_time"
    assert len(sandboxes) == 2
    assert alive == []
