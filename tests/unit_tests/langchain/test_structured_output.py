"""with_structured_output: Pydantic, TypedDict and JSON schema, include_raw, and schema feedback to the root."""

from __future__ import annotations

from typing import Annotated

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from rlm_plugins.langchain import ChatRLM
from tests.unit_tests.langchain.scripted import ScriptedRoot, ScriptedSub, repl


class Person(BaseModel):
    """A person found in the text."""

    name: str = Field(description="full name")
    age: int = Field(description="age in years")


class PersonDict(TypedDict):
    """A person found in the text."""

    name: Annotated[str, ..., "full name"]
    age: Annotated[int, ..., "age in years"]


PERSON_SCHEMA = {
    "title": "Person",
    "description": "A person found in the text.",
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
DOC = "Records. " * 300 + "Ada Lovelace was 36."


def root() -> FakeMessagesListChatModel:
    code = (
        "import re\nm = re.search(r'(\\w+ \\w+) was (\\d+)', context)\n"
        "FINAL({'name': m.group(1), 'age': int(m.group(2))})"
    )
    return FakeMessagesListChatModel(responses=[AIMessage(repl(code))])


@pytest.mark.parametrize("schema", [Person, PersonDict, PERSON_SCHEMA], ids=["pydantic", "typeddict", "json_schema"])
@pytest.mark.parametrize("method", ["function_calling", "json_schema", "json_mode"])
async def test_each_schema_kind_and_method(schema, method) -> None:
    model = ChatRLM(root=root(), sub=ScriptedSub(), sandbox="local", context_threshold=1_000)
    structured = model.with_structured_output(schema, method=method)
    sync = structured.invoke(DOC)
    asynced = await structured.ainvoke(DOC)
    for result in (sync, asynced):
        if schema is Person:
            assert result == Person(name="Ada Lovelace", age=36)
        else:
            assert result == {"name": "Ada Lovelace", "age": 36}


def test_include_raw_returns_the_message_and_parse_errors() -> None:
    model = ChatRLM(root=root(), sub=ScriptedSub(), sandbox="local", context_threshold=1_000)
    out = model.with_structured_output(Person, include_raw=True).invoke(DOC)
    assert out["parsed"] == Person(name="Ada Lovelace", age=36) and out["parsing_error"] is None
    assert out["raw"].tool_calls[0]["name"] == "Person"
    bad = FakeMessagesListChatModel(responses=[AIMessage("no code, no answer")])
    out = (
        ChatRLM(root=bad, sandbox="inprocess", max_iterations=1)
        .with_structured_output(Person, include_raw=True)
        .invoke("q")
    )
    assert out["parsed"] is None and not out["raw"].tool_calls  # no structured answer: nothing parsed
    json_out = (
        ChatRLM(root=bad, sandbox="inprocess", max_iterations=1)
        .with_structured_output(Person, include_raw=True, method="json_mode")
        .invoke("q")
    )
    assert json_out["parsed"] is None and json_out["parsing_error"] is not None


def test_a_final_that_breaks_the_schema_goes_back_to_the_root() -> None:
    replies = [repl("FINAL({'name': 'Ada'})"), repl("FINAL({'name': 'Ada', 'age': 36})")]

    class Root(FakeMessagesListChatModel):
        prompts: list[str] = Field(default_factory=list)

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            self.prompts.append(messages[-1].text)
            return super()._generate(messages, stop, run_manager, **kwargs)

    r = Root(responses=[AIMessage(x) for x in replies], prompts=[])
    result = ChatRLM(root=r, sandbox="inprocess").with_structured_output(Person).invoke("Who?")
    assert result == Person(name="Ada", age=36)
    assert "does not match the output schema" in r.prompts[1]


def test_streaming_structured_output() -> None:
    model = ChatRLM(root=ScriptedRoot(), sub=ScriptedSub(), sandbox="inprocess")
    schema = {**PERSON_SCHEMA, "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
    chunks = list(model.with_structured_output(schema).stream("Tell me about someone."))
    assert set(chunks[-1]) == {"name", "age"} and isinstance(chunks[-1]["age"], int)


def test_schema_is_required_except_in_json_mode() -> None:
    model = ChatRLM(root=FakeMessagesListChatModel(responses=[AIMessage(repl("FINAL({'a': 1})"))]), sandbox="inprocess")
    with pytest.raises(ValueError, match="schema"):
        model.with_structured_output(None)
    assert model.with_structured_output(None, method="json_mode").invoke("q") == {"a": 1}
