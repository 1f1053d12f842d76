"""Sub-call memoisation: identical prompts to the same sub-model are answered once per run tree.

`MemoSubModel` wraps any SubModel. A duplicate that arrives while the first call is still in flight waits for
it (threads and event loops alike) instead of calling the model again; a failed call is not remembered, so a
retry calls the model. Answers from the memo cost nothing and count as `Usage.memo_hits`. With `directory=`,
answers also persist on disk and serve later runs and processes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from rlm_plugins.core.ports import Completion, SubModel, Usage, as_completion


class MemoSubModel:
    """A SubModel that answers repeated prompts from a memo shared by one run tree (see `scope`).

    Args:
        sub: the sub-model to call on a miss. Its `cache_key` (when it has one) or its `name` keys the memo, so
            two sub-models with different parameters never share answers.
        directory: a directory for a persistent memo across runs and processes; None keeps it in memory.

    Examples:
        >>> from rlm_plugins.core.callables import CallableSubModel
        >>> memo = MemoSubModel(CallableSubModel(str.upper, name="upper"))
        >>> memo.query("hi").text, memo.query("hi").usage.memo_hits
        ('HI', 1)
    """

    def __init__(self, sub: SubModel, *, directory: str | os.PathLike[str] | None = None) -> None:
        self.sub = sub
        self.name = sub.name
        self.directory = Path(directory).expanduser() if directory is not None else None
        self._identity = str(getattr(sub, "cache_key", None) or sub.name)
        self._lock = threading.Lock()
        self._entries: dict[str, cf.Future[Completion]] = {}

    def __repr__(self) -> str:
        return f"MemoSubModel({self.sub!r})"

    @property
    def cache_key(self) -> str:
        return self._identity

    @property
    def async_native(self) -> bool:
        """The wrapped sub-model's (see `SubCalls.batch`)."""
        return bool(getattr(self.sub, "async_native", False))

    def scope(self) -> MemoSubModel:
        """A fresh in-memory memo over the same sub-model and directory, for a new run tree."""
        return MemoSubModel(self.sub, directory=self.directory)

    def query(self, prompt: str) -> Completion:
        """The memo's answer to `prompt`, calling the sub-model only the first time."""
        key, future, owner = self._claim(prompt)
        if not owner:
            return _hit(future.result())
        stored = self._load(key)
        if stored is not None:
            future.set_result(stored)
            return _hit(stored)
        try:
            completion = as_completion(self.sub.query(prompt), self.name)
        except BaseException as exc:
            self._fail(key, future, exc)
            raise
        return self._done(key, future, completion)

    async def aquery(self, prompt: str) -> Completion:
        """Async twin of `query`: a duplicate awaits the first call without blocking the event loop."""
        key, future, owner = self._claim(prompt)
        if not owner:
            return _hit(await asyncio.wrap_future(future))
        stored = self._load(key)
        if stored is not None:
            future.set_result(stored)
            return _hit(stored)
        try:
            completion = as_completion(await self.sub.aquery(prompt), self.name)
        except BaseException as exc:
            self._fail(key, future, exc)
            raise
        return self._done(key, future, completion)

    def _claim(self, prompt: str) -> tuple[str, cf.Future[Completion], bool]:
        """The prompt's key, its future, and whether this caller must compute it."""
        key = hashlib.sha256(f"{self._identity}\0{prompt}".encode("utf-8", "surrogatepass")).hexdigest()
        with self._lock:
            future = self._entries.get(key)
            if future is not None:
                return key, future, False
            future = self._entries[key] = cf.Future()
        return key, future, True

    def _fail(self, key: str, future: cf.Future[Completion], exc: BaseException) -> None:
        with self._lock:
            self._entries.pop(key, None)
        future.set_exception(exc)

    def _done(self, key: str, future: cf.Future[Completion], completion: Completion) -> Completion:
        future.set_result(completion)
        self._save(key, completion)
        return completion

    def _path(self, key: str) -> Path | None:
        return None if self.directory is None else self.directory / key[:2] / f"{key}.json"

    def _load(self, key: str) -> Completion | None:
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return Completion(str(data["text"]), None, data.get("model"))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _save(self, key: str, completion: Completion) -> None:
        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        payload: dict[str, Any] = {"text": completion.text, "model": completion.model}
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, encoding="utf-8") as handle:
            json.dump(payload, handle)
        os.replace(handle.name, path)


def _hit(completion: Completion) -> Completion:
    """A memo answer: the text, no model call, one memo hit."""
    return Completion(completion.text, Usage(calls=0, memo_hits=1), completion.model)
