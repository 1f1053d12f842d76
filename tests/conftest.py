"""Shared test setup: offline litellm, the scripted OpenAI server, the fake envd, redis-server and vcr fixtures."""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.pop("E2B_DEBUG", None)

pytest_plugins = [
    "tests.fixtures_docker",
    "tests.fixtures_envd",
    "tests.fixtures_openai",
    "tests.fixtures_redis",
    "tests.fixtures_vcr",
]
