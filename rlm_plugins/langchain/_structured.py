"""The runnable `ChatRLM.with_structured_output` returns: the bound model, then the parser for the method."""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from langchain_core.output_parsers import JsonOutputKeyToolsParser, JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import PydanticToolsParser
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough


def structured_runnable(llm: Runnable, spec: dict[str, Any], pydantic: Any, method: str, include_raw: bool) -> Runnable:
    """`llm | parser`, or with `include_raw` a map to `{"raw", "parsed", "parsing_error"}` (as langchain-core)."""
    parser: Runnable
    if method == "function_calling":
        parser = (
            PydanticToolsParser(tools=[pydantic], first_tool_only=True)
            if pydantic is not None
            else JsonOutputKeyToolsParser(key_name=spec["name"], first_tool_only=True)
        )
    else:
        parser = PydanticOutputParser(pydantic_object=pydantic) if pydantic is not None else JsonOutputParser()
    if not include_raw:
        return llm | parser
    parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
    fallback = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")
