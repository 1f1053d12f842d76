"""Server settings and the RLMs it serves: `ServerConfig`, `ModelConfig`, `load_config(path)`.

A config file is TOML (`.toml`) or YAML (`.yaml`/`.yml`, needs PyYAML). Top-level keys are `ServerConfig` fields;
each `[models.NAME]` table is a `ModelConfig`:

    api_keys = ["sk-clients-use-this"]
    max_concurrent_runs = 8
    [models.rlm-small]
    root = "openai/gpt-5-mini"
    sub = "openai/gpt-5-nano"
    sandbox = "local"
    max_iterations = 15

A model name that is not configured but contains a colon is the `root:sub` shorthand ("gpt-5:gpt-5-mini"), run
with the server's defaults (`sandbox`, `sandbox_options`, budgets); with `api_base` set, bare names there go to
that OpenAI-compatible endpoint.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlm_plugins.errors import ConfigurationError

MiB = 1024 * 1024


@dataclass
class ModelConfig:
    """One served RLM: its root and sub models, sandbox and budgets (None: the server's defaults)."""

    root: str = ""
    sub: str | None = None
    sandbox: str = "local"
    sandbox_options: dict[str, Any] = field(default_factory=dict)
    api_base: str | None = None
    api_key: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    """Options for both models' `ChatModel` (max_retries, timeout, max_concurrency, rpm, tpm, ...)."""
    max_iterations: int | None = None
    max_llm_calls: int | None = None
    max_time: float | None = None
    max_cost: float | None = None
    context_threshold: int | None = None
    policy: Any = None
    """A ready root-model `Policy` (programmatic use and tests); replaces `root`."""
    sub_model: Any = None
    """A ready `SubModel` (programmatic use and tests); replaces `sub`."""


@dataclass
class ServerConfig:
    """Everything `rlm-plugins serve` needs; see the module docstring for the file format."""

    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: list[str] = field(default_factory=list)
    insecure_public: bool = False
    api_base: str | None = None
    upstream_api_key: str | None = None
    models: dict[str, ModelConfig] = field(default_factory=dict)
    allow_shorthand: bool = True
    sandbox: str = "local"
    sandbox_options: dict[str, Any] = field(default_factory=dict)
    max_body_bytes: int = 512 * MiB
    max_concurrent_runs: int = 16
    max_queued_runs: int = 64
    queue_timeout: float = 30.0
    session_ttl: float = 600.0
    max_sessions: int = 1024
    redis_url: str | None = None
    shutdown_grace: float = 30.0
    context_threshold: int = 20_000
    max_iterations: int = 20
    max_llm_calls: int = 100
    max_time: float | None = 900.0
    max_cost: float | None = None
    limit_max_iterations: int = 50
    limit_max_llm_calls: int = 1000
    limit_max_time: float = 3600.0
    limit_max_cost: float | None = None
    log_level: str = "info"

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_concurrent_runs", "session_ttl", "max_sessions", "context_threshold"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name}={getattr(self, name)!r} must be positive")
        if self.max_queued_runs < 0 or self.queue_timeout < 0:
            raise ConfigurationError("max_queued_runs and queue_timeout must be 0 or more")
        self.models = {name: _model(name, spec) for name, spec in self.models.items()}

    def check_bind(self) -> None:
        """Refuse to listen beyond loopback without a key, unless `insecure_public` says so."""
        if not self.api_keys and self.host not in ("127.0.0.1", "localhost", "::1") and not self.insecure_public:
            msg = (
                f"--host {self.host} without --api-key would let anyone on the network run code on this machine; "
                "pass --api-key KEY (clients send it as a bearer token), or --insecure-public to do it anyway"
            )
            raise ConfigurationError(msg)

    def resolve(self, name: str) -> ModelConfig | None:
        """The model a request names: configured, or the `root:sub` shorthand; None when neither."""
        if name in self.models:
            return self.models[name]
        if not self.allow_shorthand or ":" not in name:
            return None
        root, _, sub = name.partition(":")
        if not root.strip():
            return None
        return ModelConfig(
            root=self._upstream(root.strip()),
            sub=self._upstream(sub.strip()) if sub.strip() else None,
            sandbox=self.sandbox,
            sandbox_options=dict(self.sandbox_options),
        )

    def _upstream(self, model: str) -> str:
        return f"openai/{model}" if self.api_base and "/" not in model else model


def _model(name: str, spec: Any) -> ModelConfig:
    if isinstance(spec, ModelConfig):
        return spec
    if not isinstance(spec, dict):
        raise ConfigurationError(f"models.{name} must be a table of ModelConfig fields, got {type(spec).__name__}")
    known = {f.name for f in dataclasses.fields(ModelConfig)} - {"policy", "sub_model"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ConfigurationError(f"models.{name}: unknown keys {unknown}; known keys are {sorted(known)}")
    model = ModelConfig(**spec)
    if not model.root:
        raise ConfigurationError(f'models.{name} needs root = "provider/model"')
    return model


def load_config(path: str | os.PathLike[str], **overrides: Any) -> ServerConfig:
    """Read a TOML or YAML config file; `overrides` (command-line options that were given) win over it."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"--config {file}: cannot read it ({exc.strerror}); pass a readable file") from None
    data = _parse(file, text)
    if not isinstance(data, dict):
        raise ConfigurationError(f"--config {file}: the top level must be a table of settings")
    known = {f.name for f in dataclasses.fields(ServerConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigurationError(f"--config {file}: unknown settings {unknown}; known ones are {sorted(known)}")
    return ServerConfig(**{**data, **{k: v for k, v in overrides.items() if v is not None}})


def _parse(file: Path, text: str) -> Any:
    if file.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigurationError("a YAML config needs PyYAML: pip install 'rlm-plugins[server]'") from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigurationError(f"--config {file}: not valid YAML ({exc})") from None
    try:
        import tomllib
    except ImportError:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"--config {file}: not valid TOML ({exc}); use .yaml/.yml for YAML") from None
