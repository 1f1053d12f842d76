"""Server settings: TOML and YAML files, the root:sub shorthand, and the refusals."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed")

from rlm_plugins.errors import ConfigurationError
from rlm_plugins.server.config import ModelConfig, ServerConfig, load_config

TOML = """
api_keys = ["k1"]
max_concurrent_runs = 3
[models.small]
root = "openai/gpt-5-mini"
sub = "openai/gpt-5-nano"
max_iterations = 7
[models.small.sandbox_options]
timeout = 5
"""


def test_toml_file(tmp_path):
    path = tmp_path / "server.toml"
    path.write_text(TOML)
    config = load_config(path, port=9000, host=None)
    assert config.api_keys == ["k1"] and config.max_concurrent_runs == 3 and config.port == 9000
    small = config.models["small"]
    assert small.root == "openai/gpt-5-mini" and small.max_iterations == 7 and small.sandbox_options == {"timeout": 5}


def test_yaml_file(tmp_path):
    path = tmp_path / "server.yaml"
    path.write_text("models:\n  big:\n    root: openai/gpt-5\nsession_ttl: 30\n")
    config = load_config(path)
    assert config.models["big"].root == "openai/gpt-5" and config.session_ttl == 30


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.toml", "nonsense = 1\n", "unknown settings ['nonsense']"),
        ("a.toml", "[models.x]\nsub = 'm'\n", 'models.x needs root = "provider/model"'),
        ("a.toml", "[models.x]\nroot = 'm'\ncolour = 1\n", "models.x: unknown keys ['colour']"),
        ("a.toml", "max_body_bytes = -1\n", "max_body_bytes=-1 must be positive"),
        ("a.toml", "= broken", "not valid TOML"),
        ("a.yml", "- a list\n", "the top level must be a table"),
        ("a.yaml", "a: [", "not valid YAML"),
    ],
)
def test_bad_files_say_what_to_fix(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config(path)


def test_missing_file():
    with pytest.raises(ConfigurationError, match="cannot read it"):
        load_config("/nonexistent/server.toml")


def test_shorthand_resolution():
    config = ServerConfig(models={"named": ModelConfig(root="openai/x")})
    assert config.resolve("named").root == "openai/x"
    assert config.resolve("unknown") is None
    pair = config.resolve("openai/gpt-5:openai/gpt-5-mini")
    assert (pair.root, pair.sub) == ("openai/gpt-5", "openai/gpt-5-mini")
    local = ServerConfig(api_base="http://localhost:9/v1", sandbox="inprocess").resolve("llama:tiny")
    assert (local.root, local.sub, local.sandbox) == ("openai/llama", "openai/tiny", "inprocess")
    assert ServerConfig(allow_shorthand=False).resolve("a:b") is None
    assert ServerConfig().resolve(":b") is None


def test_public_bind_needs_a_key_or_the_insecure_flag():
    with pytest.raises(ConfigurationError, match="--insecure-public"):
        ServerConfig(host="0.0.0.0").check_bind()
    ServerConfig(host="0.0.0.0", api_keys=["k"]).check_bind()
    ServerConfig(host="0.0.0.0", insecure_public=True).check_bind()
    ServerConfig().check_bind()
