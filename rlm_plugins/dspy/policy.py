"""`PredictPolicy`: the engine's root-model port over two `dspy.Predict` sub-predictors.

`generate_action` picks each step's (reasoning, code) from the variables' metadata and the REPL history;
`extract` gives the outputs when the budget runs out. Both are the module's own predictors, so what an optimizer
tunes (instructions, demos) is exactly what runs here. The policy only translates between the engine's
`RunState`/`Action` and DSPy's `REPLVariable`/`REPLHistory`/`Prediction`; the loop lives in the engine. Each call
reports its tokens and cost to the engine's budget, and a provider failure leaves as a `ModelError` subclass, so the
engine keeps the partial result as it does for the standalone RLM.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import dspy
from dspy.primitives.repl_types import REPLEntry, REPLHistory, REPLVariable

from rlm_plugins.core.feedback import model_error
from rlm_plugins.core.ports import Action, Completion, ContextInfo, RunState, Step
from rlm_plugins.dspy._context import capture
from rlm_plugins.dspy._fences import strip_code_fences
from rlm_plugins.dspy._usage import Meter, metered

logger = logging.getLogger("rlm_plugins.dspy")

NO_OUTPUT = "(no output - did you forget to print?)"
HISTORY_DESC = "The conversation so far: a list of earlier turns, each a dict of that turn's input and output fields."
EMPTY_CODE = "The code field was empty. Write the Python code to run next, and call SUBMIT(...) in it when done."


@dataclass
class ChildSignatures:
    """The signatures `rlm_query` children (depth > 0) run `generate_action` and `extract` with."""

    action: type[dspy.Signature]
    extract: type[dspy.Signature]


class PredictPolicy:
    """The root model as DSPy predictors: `generate_action` for each step, `extract` at the end.

    One policy serves one module call; after the run, `extracted` holds the `extract` prediction when the budget
    ran out, so its typed fields reach the caller.

    Args:
        generate_action: predicts (reasoning, code) from (variables_info, repl_history, iteration).
        extract: predicts the output fields from (variables_info, repl_history).
        signature: the user's signature (its input fields describe the REPL variables).
        child: the signatures for `rlm_query` children.
        verbose: log each step's reasoning and code, as `dspy.RLM(verbose=True)` does.
        overrides: the module call's `dspy.context`, re-applied for `rlm_query` children (they run on tool threads).
        action_signature: the root's `generate_action` signature for this call, when the interpreter changes it.
    """

    def __init__(
        self,
        generate_action: Any,
        extract: Any,
        signature: type[dspy.Signature],
        child: ChildSignatures,
        *,
        verbose: bool = False,
        overrides: dict[str, Any] | None = None,
        action_signature: type[dspy.Signature] | None = None,
    ) -> None:
        self.generate_action = generate_action
        self.extract_predictor = extract
        self.signature = signature
        self.child = child
        self.verbose = verbose
        self.extracted: Any = None
        self.overrides = capture() if overrides is None else overrides
        self.action_signature = action_signature

    def _action_inputs(self, state: RunState) -> dict[str, Any]:
        inputs: dict[str, Any] = {
            "variables_info": self._variables_info(state),
            "repl_history": history_of(state.history, state.max_output_chars),
            "iteration": f"{state.iteration}/{state.max_iterations}",
        }
        if state.depth > 0:
            inputs["signature"] = self.child.action
        elif self.action_signature is not None:
            inputs["signature"] = self.action_signature
        return inputs

    def _variables_info(self, state: RunState) -> list[str]:
        fields = self.signature.input_fields if state.depth == 0 else {}
        info = [variable(ctx, fields.get(ctx.name)).format() for ctx in state.variables]
        if state.depth > 0 and state.query:
            info.append(f"Query (the task of this sub-run):\n{state.query}")
        return info

    def act(self, state: RunState) -> Action:
        with metered(self.overrides, self._model()) as meter:
            pred = self.generate_action(**self._action_inputs(state))
        return _measured(self._action(pred, state), meter)

    async def aact(self, state: RunState) -> Action:
        with metered(self.overrides, self._model()) as meter:
            pred = await self.generate_action.acall(**self._action_inputs(state))
        return _measured(self._action(pred, state), meter)

    def _model(self) -> str:
        """The root LM's name, for error messages."""
        lm = getattr(self.generate_action, "lm", None) or self.overrides.get("lm") or dspy.settings.lm
        return str(getattr(lm, "model", None) or "the root LM")

    def _extract_inputs(self, state: RunState) -> dict[str, Any]:
        logger.warning("RLM reached its budget, using extract to get the final output")
        inputs: dict[str, Any] = {
            "variables_info": self._variables_info(state),
            "repl_history": history_of(state.history, state.max_output_chars),
        }
        if state.depth > 0:
            inputs["signature"] = self.child.extract
        return inputs

    def extract(self, state: RunState) -> Completion:
        with metered(self.overrides, self._model()) as meter:
            pred = self.extract_predictor(**self._extract_inputs(state))
        return self._extracted(pred, state, meter)

    async def aextract(self, state: RunState) -> Completion:
        with metered(self.overrides, self._model()) as meter:
            pred = await self.extract_predictor.acall(**self._extract_inputs(state))
        return self._extracted(pred, state, meter)

    def _extracted(self, pred: Any, state: RunState, meter: Meter) -> Completion:
        if state.depth > 0:
            return Completion(str(getattr(pred, "answer", "")), meter.usage(), meter.model)
        self.extracted = pred
        fields = {name: getattr(pred, name, None) for name in self.signature.output_fields}
        return Completion(json.dumps(fields, default=str, ensure_ascii=False), meter.usage(), meter.model)

    def _action(self, pred: Any, state: RunState) -> Action:
        reasoning = str(getattr(pred, "reasoning", "") or "")
        raw = getattr(pred, "code", None)
        raw = "" if raw is None else str(raw)
        if self.verbose:
            logger.info(f"RLM iteration {state.iteration}/{state.max_iterations}\nReasoning: {reasoning}\nCode:\n{raw}")
        action = Action(reasoning=reasoning, response=raw)
        try:
            code = strip_code_fences(raw)
        except SyntaxError as exc:
            action.notes.append(model_error(str(exc)))
            return action
        if code.strip():
            action.code.append(code)
        else:
            action.notes.append(model_error(EMPTY_CODE))
        return action


def _measured(action: Action, meter: Meter) -> Action:
    action.usage, action.model = meter.usage(), meter.model
    return action


def variable(info: ContextInfo, field: Any = None) -> REPLVariable:
    """DSPy's description of a REPL variable, built from the engine's metadata (never from the value itself)."""
    extra = getattr(field, "json_schema_extra", None) or {}
    desc = extra.get("desc", "") or ""
    if desc.startswith("${"):
        desc = ""
    if not desc and getattr(field, "annotation", None) is dspy.History:
        desc = HISTORY_DESC
    return REPLVariable(
        name=info.name,
        type_name=info.type,
        desc=desc,
        constraints=extra.get("constraints", "") or "",
        total_length=info.length,
        preview=info.preview,
    )


def history_of(steps: list[Step], max_output_chars: int, final: Any = None) -> REPLHistory:
    """The engine's steps as DSPy's REPLHistory; `final` marks the last step as an accepted SUBMIT."""
    entries = [entry_of(step) for step in steps]
    if final is not None and entries:
        last = entries[-1]
        entries[-1] = REPLEntry(reasoning=last.reasoning, code=last.code, output=f"FINAL: {final}")
    return REPLHistory(entries=entries, max_output_chars=max_output_chars)


def entry_of(step: Step) -> REPLEntry:
    """One step as (reasoning, code, output): the code that ran, and what it printed, raised or was told."""
    code = "\n".join(run.code for run in step.runs) if step.runs else step.response
    parts: list[str] = []
    for run in step.runs:
        result = run.result
        if result.stdout:
            parts.append(result.stdout.rstrip("\n"))
        if result.stderr:
            parts.append(result.stderr.rstrip("\n"))
        if result.error is not None:
            parts.append(model_error(str(result.error)))
        if result.timed_out:
            stopped = f"The code timed out after {result.duration:.0f}s and was stopped; do less per step."
            parts.append(model_error(stopped))
    parts.extend(step.notes)
    return REPLEntry(reasoning=step.reasoning, code=code, output="\n".join(parts) or NO_OUTPUT)
