"""sandbox/: the E2B template definition, the Dockerfile generated from it, and the driver path they share."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest

from rlm_plugins.repl import driver
from rlm_plugins.repl.e2b import TEMPLATE_DRIVER_PATH, E2BSandbox

SANDBOX_DIR = pathlib.Path(__file__).resolve().parents[2] / "sandbox"


@pytest.fixture(scope="module")
def template_module():
    spec = importlib.util.spec_from_file_location("rlm_sandbox_template", SANDBOX_DIR / "template.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dockerfile_is_generated_from_the_template(template_module):
    kept = (SANDBOX_DIR / "Dockerfile").read_text(encoding="utf-8")
    assert kept == template_module.dockerfile(), (
        "sandbox/Dockerfile drifted: run `python sandbox/template.py dockerfile`"
    )


def test_dockerfile_check_command_agrees(template_module):
    assert template_module.main(["dockerfile", "--check"]) == 0


def test_template_bakes_the_package_driver_in_at_the_backend_path(template_module):
    from e2b import Template

    steps = json.loads(Template.to_json(template_module.template()))["steps"]
    copies = [step["args"] for step in steps if step["type"] == "COPY"]
    assert copies == [[template_module.DRIVER_SOURCE, TEMPLATE_DRIVER_PATH, "root", "0644"]]
    assert (template_module.REPO / template_module.DRIVER_SOURCE).resolve() == pathlib.Path(driver.__file__).resolve()
    assert f"COPY {template_module.DRIVER_SOURCE} {TEMPLATE_DRIVER_PATH}\n" in template_module.dockerfile()


def test_the_backend_runs_the_driver_where_the_template_put_it():
    with_template = E2BSandbox(template="rlm-plugins", debug=True)
    assert (with_template.upload_driver, with_template.driver_path) == (False, TEMPLATE_DRIVER_PATH)
    assert with_template._command() == f"exec python3 {TEMPLATE_DRIVER_PATH}"


@pytest.mark.filterwarnings("ignore:E2BSandbox uploads the driver")
def test_without_a_template_the_driver_is_uploaded_elsewhere():
    default = E2BSandbox(debug=True)
    assert default.upload_driver
    assert default.driver_path.startswith(default.session_dir + "/")
    assert default.driver_path != TEMPLATE_DRIVER_PATH
