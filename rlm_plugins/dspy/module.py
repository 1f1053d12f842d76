"""`RLM`: a drop-in for `dspy.RLM` that runs on the rlm-plugins engine and sandboxes."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import dspy
import pydantic
from dspy.adapters.utils import parse_value
from dspy.signatures.signature import ensure_signature
from dspy.utils.annotation import experimental
from pydantic_core import to_jsonable_python

from rlm_plugins.core.budget import Limits
from rlm_plugins.core.engine import Engine, SandboxFactory
from rlm_plugins.core.events import Observer
from rlm_plugins.core.result import RLMResult
from rlm_plugins.dspy._context import bind, capture
from rlm_plugins.dspy._interpreter_sandbox import InterpreterSandbox
from rlm_plugins.dspy._runtime import (
    execution_instructions_of,
    execution_rules,
    validate_interpreter_factory,
    with_execution_rules,
)
from rlm_plugins.dspy._validation import (
    RESERVED_RESULT_NAMES,
    RESERVED_SANDBOX_NAMES,
    normalize_tools,
    repl_callable,
    validate_inputs,
    validate_namespace,
)
from rlm_plugins.dspy.interpreter import InterpreterFactory
from rlm_plugins.dspy.policy import ChildSignatures, PredictPolicy, history_of
from rlm_plugins.dspy.session import Conversations, RLMSession
from rlm_plugins.dspy.signatures import EXECUTION_RULES, build_signatures, format_tool_docs
from rlm_plugins.dspy.submodel import LMSubModel, failed_sub_call
from rlm_plugins.errors import ConfigurationError
from rlm_plugins.repl.base import FinalAnswer
from rlm_plugins.repl.factory import sandbox_factory

_PASS_AS_IS = (str, bytes, bytearray, int, float, bool, type(None), list, dict, tuple, pathlib.Path)
EXTRACT_REASONING = "Extract forced final output"


@experimental
class RLM(dspy.Module):
    """Recursive Language Model: the root LM explores its inputs by writing code in a persistent REPL.

    It accepts `dspy.RLM`'s arguments and returns what `dspy.RLM` returns (the output fields, `trajectory` and
    `final_reasoning`); its predictors are `generate_action` and `extract`, so optimizers, `named_predictors()`
    and saved programs work as with `dspy.RLM`. The loop runs in the rlm-plugins engine: inputs are loaded into
    the sandbox once per call, sub-calls go through DSPy's LM (history, callbacks, usage tracking and cache see
    them), `aforward` is async end to end, and `rlm_query` starts recursive sub-runs when `max_depth > 1`.

    Args:
        signature: the task, e.g. "context, query -> answer" or a Signature class; outputs may be typed.
        max_iters: root-model steps per call.
        max_llm_calls: model calls below the root per call: llm_query, each llm_query_batched slot, and each turn
            (and extract) of an rlm_query child. Running out raises a `RuntimeError` ("LLM call limit exceeded")
            inside the model's code, as in `dspy.RLM`, and the run goes on so the model can still SUBMIT. A failed
            llm_query_batched slot reads `[ERROR] <message>`; other sub-call failures are raised in the code.
        max_output_chars: REPL output kept per step.
        verbose: log each step's reasoning and code.
        tools: functions or `dspy.Tool`s the code may call (sync or async).
        sub_lm: the LM `llm_query` calls; defaults to `dspy.settings.lm` at call time (so `dspy.context` applies).
        interpreter_factory: run on interpreters from this DSPy factory instead of `sandbox`.
        sandbox: "local" (an isolated subprocess), "inprocess" or "e2b"; or a callable returning a sandbox.
            When neither this nor `interpreter_factory` is given, `dspy.settings.interpreter_factory` is used if
            set, else "local".
        sandbox_options: options for the sandbox (e.g. `{"isolation": "require"}`).
        max_depth: how deep `rlm_query` may recurse; 1 makes `rlm_query` a plain `llm_query`.
        max_time: seconds per call (the whole recursion tree), then `extract` answers.
        max_tokens: tokens per call (the whole tree, root and sub-calls, as the LMs report them), then `extract`.
        max_cost: dollars per call (the whole tree, where DSPy knows the prices), then `extract`.
        max_concurrency: concurrent sub-calls in one `llm_query_batched`.
        exec_timeout: seconds one code block may run.
        observers: callables receiving the engine's events of every call.
        mcp_servers: MCP servers (URLs, command lines or `{"command", "args"}` dicts) whose tools become REPL
            functions, like `tools`; their connections are shared by copies of the program.
        persistent: keep one REPL per conversation, found by the signature's `dspy.History` input: a call whose
            history ends with an earlier call's inputs and outputs continues that call's REPL (see
            `rlm_plugins.dspy.session`). Calls with other histories, as in optimizers, never share REPL state.

    A `dspy.History` input goes into the REPL as a list of message dicts under its field name (the model sees its
    size and a preview, not the whole conversation). `forward(..., session=RLMSession())` runs a call as a turn
    of that session, keeping its REPL across calls.

    Raises:
        ReservedNameError: a tool, input or output name is invalid or collides with a built-in name.
        InvalidToolsError: `tools` is a dict or holds something that is not callable.
        ConfigurationError: a limit or the sandbox is invalid.

    Examples:
        ```python
        import dspy
        from rlm_plugins.dspy import RLM

        dspy.configure(lm=dspy.LM("openai/gpt-4o-mini"))
        rlm = RLM("context, query -> answer", max_iters=10)
        print(rlm(context="...very long text...", query="What is the magic number?").answer)
        ```
    """

    _RESERVED_SANDBOX_NAMES = RESERVED_SANDBOX_NAMES
    _RESERVED_RESULT_NAMES = RESERVED_RESULT_NAMES

    def __init__(
        self,
        signature: type[dspy.Signature] | str,
        max_iters: int = 20,
        max_llm_calls: int = 50,
        max_output_chars: int = 10_000,
        verbose: bool = False,
        tools: list[Callable[..., Any]] | None = None,
        sub_lm: dspy.BaseLM | None = None,
        interpreter_factory: Callable[[], Any] | None = None,
        *,
        sandbox: str | Callable[..., Any] | None = None,
        sandbox_options: dict[str, Any] | None = None,
        max_depth: int = 1,
        max_time: float | None = None,
        max_tokens: int | None = None,
        max_cost: float | None = None,
        max_concurrency: int = 16,
        exec_timeout: float = 300.0,
        observers: list[Observer] | None = None,
        mcp_servers: list[str | dict[str, Any]] | None = None,
        persistent: bool = False,
    ) -> None:
        super().__init__()
        self.signature = ensure_signature(signature)
        self.max_iters = max_iters
        self.max_llm_calls = max_llm_calls
        self.max_output_chars = max_output_chars
        self.verbose = verbose
        self.sub_lm = sub_lm
        self.max_depth = max_depth
        self.max_time = max_time
        self.max_tokens = max_tokens
        self.max_cost = max_cost
        self.max_concurrency = max_concurrency
        self.exec_timeout = exec_timeout
        self.observers = list(observers or [])
        self._limits()
        if interpreter_factory is not None:
            validate_interpreter_factory(interpreter_factory)
            if sandbox is not None:
                raise ConfigurationError("pass either sandbox= or interpreter_factory=, not both")
        self._interpreter_factory = interpreter_factory
        self._sandbox_factory = sandbox_factory(sandbox, **(sandbox_options or {})) if sandbox is not None else None
        self._sandbox_options = dict(sandbox_options or {})
        self._mcp = None
        if mcp_servers:
            from rlm_plugins.mcp.tools import McpToolset

            self._mcp = McpToolset(mcp_servers)
            tools = [*(tools or []), *self._mcp.tools().values()]
        self._user_tools = normalize_tools(tools)
        validate_namespace(self.signature, self._user_tools)
        action, extract, child_action, child_extract = build_signatures(
            self.signature, max_llm_calls, format_tool_docs(self._user_tools)
        )
        self._execution_rules = self._rules_for(self._factory(None))
        self._action_signature = with_execution_rules(action, EXECUTION_RULES, self._execution_rules)
        self._child_signatures = ChildSignatures(child_action, child_extract)
        self.generate_action = dspy.Predict(self._action_signature)
        self.extract = dspy.Predict(extract)
        self._conversations = Conversations(self.signature) if persistent else None

    @property
    def persistent(self) -> bool:
        """Whether this module keeps one REPL per conversation (`persistent=True`)."""
        return self._conversations is not None

    def close(self) -> None:
        """Release the REPLs kept for conversations (`persistent=True`); later calls start new ones."""
        if self._conversations is not None:
            self._conversations.close()

    @property
    def tools(self) -> dict[str, dspy.Tool]:
        """User-provided tools (without the built-in llm_query / llm_query_batched / rlm_query)."""
        return dict(self._user_tools)

    def _limits(self) -> Limits:
        return Limits(
            max_iterations=self.max_iters,
            max_llm_calls=self.max_llm_calls,
            max_depth=self.max_depth,
            max_time=self.max_time,
            max_tokens=self.max_tokens,
            max_cost=self.max_cost,
        )

    def _factory(self, interpreter_factory: Callable[[], Any] | None) -> Callable[[], Any] | None:
        """The DSPy interpreter factory of a call: per call, then the constructor's, then dspy.settings (unless
        the constructor chose a `sandbox`); None when the call runs on a sandbox."""
        factory = interpreter_factory or self._interpreter_factory
        if factory is None and self._sandbox_factory is None:
            factory = dspy.settings.get("interpreter_factory")
        if factory is not None:
            validate_interpreter_factory(factory)
        return factory

    def _resolve_sandbox(self, factory: Callable[[], Any] | None) -> SandboxFactory:
        """The interpreter factory as the engine's sandbox factory, else the constructor's sandbox, else "local"."""
        if factory is None:
            return self._sandbox_factory or sandbox_factory("local", **self._sandbox_options)
        if isinstance(factory, InterpreterFactory):
            return sandbox_factory(factory.sandbox, **{**factory.options, **self._sandbox_options})

        def make(**settings: Any) -> InterpreterSandbox:
            return InterpreterSandbox(factory, **settings)

        return make

    @staticmethod
    def _rules_for(factory: Callable[[], Any] | None) -> str:
        """The "Execution environment" fragment of the action prompt for a call running on `factory`."""
        return execution_rules(execution_instructions_of(factory) if factory is not None else "")

    def _action_signature_for(self, factory: Callable[[], Any] | None) -> type[dspy.Signature] | None:
        """The action signature of a call on another runtime than at construction (as dspy.RLM does), else None."""
        rules = self._rules_for(factory)
        if rules == self._execution_rules:
            return None
        current = getattr(self.generate_action, "signature", self._action_signature)
        return with_execution_rules(current, self._execution_rules, rules)

    def _engine(self, interpreter_factory: Callable[[], Any] | None) -> tuple[Engine, PredictPolicy]:
        overrides = capture()
        factory = self._factory(interpreter_factory)
        policy = PredictPolicy(
            self.generate_action,
            self.extract,
            self.signature,
            self._child_signatures,
            verbose=self.verbose,
            overrides=overrides,
            action_signature=self._action_signature_for(factory),
        )
        tools = {name: bind(repl_callable(tool), overrides) for name, tool in self._user_tools.items()}
        engine = Engine(
            policy,
            LMSubModel(self.sub_lm, overrides),
            self._resolve_sandbox(factory),
            limits=self._limits(),
            max_output_chars=self.max_output_chars,
            max_concurrency=self.max_concurrency,
            exec_timeout=self.exec_timeout,
            tools=tools,
            observers=self.observers,
            final_fields=list(self.signature.output_fields),
            final_validator=self._parse_final,
            on_llm_budget="raise_in_code",
            sub_failure=failed_sub_call,
        )
        return engine, policy

    def _inputs(self, input_args: dict[str, Any]) -> dict[str, Any]:
        validate_inputs(self.signature, input_args)
        return {
            name: value if isinstance(value, _PASS_AS_IS) else to_jsonable_python(_repl_value(value), fallback=str)
            for name, value in input_args.items()
        }

    def _open_turn(self, session: RLMSession | None, input_args: dict[str, Any]) -> RLMSession | None:
        """The session this call is a turn of: the caller's, else this conversation's (persistent), else None."""
        if session is not None or self._conversations is None:
            return session
        return self._conversations.take(input_args)

    def _close_turn(self, chat: RLMSession | None, input_args: dict[str, Any], pred: dspy.Prediction | None) -> None:
        """Keep a persistent conversation's session for its next call (or close it when the call failed)."""
        if chat is not None and self._conversations is not None:
            self._conversations.keep(chat, input_args, pred)

    def forward(
        self,
        *,
        interpreter_factory: Callable[[], Any] | None = None,
        session: RLMSession | None = None,
        **input_args: Any,
    ) -> dspy.Prediction:
        """Run the RLM on the signature's inputs.

        Args:
            interpreter_factory: a DSPy interpreter factory for this call only.
            session: run this call as a turn of `session`, in the REPL its earlier calls left.
            **input_args: the signature's input fields; each becomes a REPL variable.

        Returns:
            A Prediction with the output fields, `trajectory` and `final_reasoning`.

        Raises:
            ValueError: inputs are missing or not in the signature.
        """
        inputs = self._inputs(input_args)
        engine, policy = self._engine(interpreter_factory)
        chat, pred = self._open_turn(session, input_args), None
        try:
            query = self.signature.signature
            result = engine.run(query, None, inputs) if chat is None else chat.run(engine, query, inputs)
            pred = self._prediction(result, policy)
        finally:
            self._close_turn(chat if session is None else None, input_args, pred)
        return pred

    async def aforward(
        self,
        *,
        interpreter_factory: Callable[[], Any] | None = None,
        session: RLMSession | None = None,
        **input_args: Any,
    ) -> dspy.Prediction:
        """The async twin of `forward`: root and sub-calls through `acall`, sandbox I/O off the event loop."""
        inputs = self._inputs(input_args)
        engine, policy = self._engine(interpreter_factory)
        chat, pred = self._open_turn(session, input_args), None
        try:
            query = self.signature.signature
            result = await (engine.arun(query, None, inputs) if chat is None else chat.arun(engine, query, inputs))
            pred = self._prediction(result, policy)
        finally:
            self._close_turn(chat if session is None else None, input_args, pred)
        return pred

    def _parse_final(self, final: FinalAnswer) -> tuple[Any, str | None]:
        """Parse SUBMIT's fields with DSPy's value parsing; a problem goes back to the model as an instruction."""
        names = list(self.signature.output_fields)
        raw = final.fields if final.fields is not None else final.value
        if final.fields is None and len(names) == 1:
            raw = {names[0]: final.value}
        usage = f"SUBMIT({', '.join(names)})"
        if not isinstance(raw, dict):
            return None, f"SUBMIT gave {type(raw).__name__}, expected the fields {names}: call {usage}"
        missing = [name for name in names if name not in raw]
        if missing:
            return None, f"Missing output fields: {missing}. Use {usage}"
        parsed, errors = {}, []
        for name in names:
            annotation = self.signature.output_fields[name].annotation
            try:
                parsed[name] = parse_value(raw[name], annotation)
            except (ValueError, TypeError, pydantic.ValidationError) as exc:
                expected = getattr(annotation, "__name__", str(annotation))
                errors.append(f"{name}: expected {expected}, got {type(raw[name]).__name__}: {exc}")
        if errors:
            return None, "Type error in SUBMIT: " + "; ".join(errors) + f". Fix the values and call {usage} again."
        return parsed, None

    def _prediction(self, result: RLMResult, policy: PredictPolicy) -> dspy.Prediction:
        if result.finish_reason == "final" and isinstance(result.answer, dict):
            history = history_of(result.steps, self.max_output_chars, final=result.answer)
            return dspy.Prediction(
                **result.answer,
                trajectory=[entry.model_dump() for entry in history],
                final_reasoning=result.steps[-1].reasoning if result.steps else "",
            )
        history = history_of(result.steps, self.max_output_chars)
        extracted = policy.extracted
        outputs = {name: getattr(extracted, name, None) for name in self.signature.output_fields}
        return dspy.Prediction(
            **outputs, trajectory=[entry.model_dump() for entry in history], final_reasoning=EXTRACT_REASONING
        )


def _repl_value(value: Any) -> Any:
    """What an input becomes in the REPL: a `dspy.History` is its list of messages."""
    return value.messages if isinstance(value, dspy.History) else value
