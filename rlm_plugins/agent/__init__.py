"""The standalone agent: `RLMAgent` (tools, contexts, conversation memory, streaming, save/load) and
`create_enforced_agent`, on RLM sessions."""

from rlm_plugins.agent._persist import SaveReport
from rlm_plugins.agent._schema import ToolSchema
from rlm_plugins.agent.agent import RLMAgent, create_enforced_agent
from rlm_plugins.agent.errors import AgentStateError, ContextInPromptError, ToolSchemaError
from rlm_plugins.agent.events import (
    AgentEvent,
    AnswerChunk,
    Code,
    Done,
    Output,
    StepStarted,
    SubCallSummary,
)

__all__ = [
    "AgentEvent",
    "AgentStateError",
    "AnswerChunk",
    "Code",
    "ContextInPromptError",
    "Done",
    "Output",
    "RLMAgent",
    "SaveReport",
    "StepStarted",
    "SubCallSummary",
    "ToolSchema",
    "ToolSchemaError",
    "create_enforced_agent",
]
