"""Prices and context windows from litellm's bundled cost table, read offline without importing litellm.

The table ships inside the litellm wheel (`model_prices_and_context_window_backup.json`); reading it takes about
30 ms once per process, where importing litellm takes seconds and may fetch the table from the internet.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import pathlib
from typing import Any

_TABLE_FILE = "model_prices_and_context_window_backup.json"


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, dict[str, Any]]:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    for location in spec.submodule_search_locations:
        path = pathlib.Path(location) / _TABLE_FILE
        if path.is_file():
            with path.open(encoding="utf-8") as handle:
                data = json.load(handle)
            return {key: value for key, value in data.items() if isinstance(value, dict)}
    return {}


@functools.lru_cache(maxsize=512)
def model_info(model: str) -> dict[str, Any] | None:
    """The table's entry for a "provider/name" model string, or None when litellm does not know it."""
    table = _table()
    if model in table:
        return table[model]
    provider, _, name = model.partition("/")
    if not name:
        return None
    entry = table.get(name)
    if entry is not None and entry.get("litellm_provider") in (provider, f"text-completion-{provider}"):
        return entry
    return None


def price(
    model: str, input_tokens: int, output_tokens: int, cached_tokens: int = 0, cache_write_tokens: int = 0
) -> float | None:
    """The USD cost of one call, or None when the model is not priced.

    `input_tokens` counts every prompt token; `cached_tokens` (read from the provider's prompt cache) and
    `cache_write_tokens` (written to it) are the parts billed at the cache rates.
    """
    entry = model_info(model)
    if entry is None:
        return None
    rate_in = entry.get("input_cost_per_token")
    rate_out = entry.get("output_cost_per_token")
    if not isinstance(rate_in, (int, float)) or not isinstance(rate_out, (int, float)):
        return None
    rate_read = entry.get("cache_read_input_token_cost")
    rate_write = entry.get("cache_creation_input_token_cost")
    rate_read = rate_in if rate_read is None else rate_read
    rate_write = rate_in if rate_write is None else rate_write
    plain = max(input_tokens - cached_tokens - cache_write_tokens, 0)
    return plain * rate_in + cached_tokens * rate_read + cache_write_tokens * rate_write + output_tokens * rate_out


def context_window(model: str) -> int | None:
    """The model's input window in tokens, where litellm's table knows it."""
    entry = model_info(model) or {}
    window = entry.get("max_input_tokens") or entry.get("max_tokens")
    return int(window) if isinstance(window, (int, float)) and window > 0 else None
