"""The E2B template that carries the rlm-plugins driver: Python, with `driver.py` baked in at TEMPLATE_DRIVER_PATH.

    python sandbox/template.py build               # build it as "rlm-plugins" on E2B (needs E2B_API_KEY)
    python sandbox/template.py dockerfile          # rewrite sandbox/Dockerfile from this definition
    python sandbox/template.py dockerfile --check  # fail when sandbox/Dockerfile has drifted

Then `create_sandbox("e2b", template="rlm-plugins")` starts sandboxes that need no upload at start.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(REPO))

from e2b import Template, default_build_logger  # noqa: E402
from e2b.template.main import TemplateBuilder  # noqa: E402

from rlm_plugins.repl.e2b import TEMPLATE_DRIVER_PATH, TEMPLATE_NAME  # noqa: E402

DRIVER_SOURCE = "rlm_plugins/repl/driver.py"
"""The driver, relative to the build context (the repository root)."""
PYTHON_IMAGE = "3.12"
DOCKERFILE = pathlib.Path(__file__).resolve().parent / "Dockerfile"
HEADER = (
    "# Generated from sandbox/template.py by `python sandbox/template.py dockerfile`; do not edit.\n"
    "# Build from the repository root: docker build -f sandbox/Dockerfile -t rlm-plugins-sandbox .\n"
)


def template() -> TemplateBuilder:
    """The template definition; `Template.to_dockerfile(template())` is what sandbox/Dockerfile holds."""
    return (
        Template(file_context_path=REPO)
        .from_python_image(PYTHON_IMAGE)
        .copy(DRIVER_SOURCE, TEMPLATE_DRIVER_PATH, user="root", mode=0o644)
    )


def dockerfile() -> str:
    return HEADER + Template.to_dockerfile(template())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the template on E2B")
    build.add_argument("--name", default=TEMPLATE_NAME, help=f"template name (default {TEMPLATE_NAME})")
    build.add_argument("--cpu-count", type=int, default=2)
    build.add_argument("--memory-mb", type=int, default=1024)
    build.add_argument("--skip-cache", action="store_true")
    docker = commands.add_parser("dockerfile", help="write sandbox/Dockerfile from the template")
    docker.add_argument("--check", action="store_true", help="only check that sandbox/Dockerfile is current")
    args = parser.parse_args(argv)
    if args.command == "dockerfile":
        if args.check:
            current = DOCKERFILE.read_text(encoding="utf-8") if DOCKERFILE.exists() else ""
            if current != dockerfile():
                print("sandbox/Dockerfile is out of date: run `python sandbox/template.py dockerfile`")
                return 1
            return 0
        DOCKERFILE.write_text(dockerfile(), encoding="utf-8")
        return 0
    info = Template.build(
        template(),
        args.name,
        cpu_count=args.cpu_count,
        memory_mb=args.memory_mb,
        skip_cache=args.skip_cache,
        on_build_logs=default_build_logger(),
    )
    print(f"built template {args.name!r} ({info.template_id}); use create_sandbox('e2b', template={args.name!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
