"""Docker sandbox benchmark, next to `local` and `e2b` over the fake envd, in one run.

The docker sandbox runs on the daemon the tests use (`tests/fakes/docker_engine.py`: `DOCKER_HOST` when it answers,
else a private `dockerd` started on first use) and the scratch image with this machine's Python bind-mounted, so
the figures are the engine's own cost (create, copy the driver in, start attached) and our protocol over its
stdin/stdout, with no registry involved. Run from the repository root:

    python bench/bench_docker.py [--calls 500] [--loads 3]

Columns: the docker sandbox on Docker (a local engine: the driver and contexts pass through read-only mounts), the
same with `host_files=False` (what a remote engine gets: everything copied in with `cp` as a tar stream), on rootful
Podman when it works here, `local`, and `e2b` over the fake envd. The rows are those of `bench_e2b.py` (start,
warm `execute("1")`, `llm_query` round trip, 10 MB / 100 MB `str` and 100 MB `pathlib.Path` loads into a running
sandbox), plus one: a new sandbox whose first load is the 100 MB Path, start and close included (the docker
sandbox bind-mounts that file).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import warnings
from collections.abc import Callable

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.fakes lives in the checkout, not in the package
    sys.path.insert(0, str(ROOT))

from bench_e2b import MB, measure, median_s, table, text  # noqa: E402

from rlm_plugins.repl import LocalSandbox, isolation  # noqa: E402
from rlm_plugins.repl.base import BaseSandbox  # noqa: E402
from rlm_plugins.repl.docker import DockerSandbox  # noqa: E402
from rlm_plugins.repl.e2b import E2BSandbox  # noqa: E402
from tests.fakes import docker_engine  # noqa: E402
from tests.fakes.envd import FakeEnvd  # noqa: E402


def first_load(make: Callable[[], BaseSandbox], path: pathlib.Path, runs: int) -> float:
    """Seconds from a new sandbox to a 100 MB Path loaded in it (the load starts it)."""

    def once() -> None:
        with make() as sandbox:
            sandbox.load("context", path)

    return median_s(once, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--loads", type=int, default=3)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", "E2BSandbox uploads the driver")
    host = docker_engine.ensure_daemon()
    os.environ["DOCKER_HOST"] = host
    options = docker_engine.sandbox_options(host)
    level = isolation.best_level()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, local isolation level: {level}, docker at {host}")
    fd, name = tempfile.mkstemp(prefix="rlm-bench-docker-", suffix=".txt")
    os.fchmod(fd, 0o644)  # readable by the container's user, so the docker sandbox can bind-mount it
    big = text(100 * MB)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(big)
    path = pathlib.Path(name)
    contexts = {"str10": big[: 10 * MB], "str100": big, "path": path}
    makers: dict[str, Callable[[], BaseSandbox]] = {
        "docker (scratch image)": lambda: DockerSandbox(**options),  # type: ignore[arg-type]
        "docker, host_files=False (as remote)": lambda: DockerSandbox(**options, host_files=False),  # type: ignore[arg-type]
    }
    try:
        podman = docker_engine.podman_options()
        makers["podman (scratch image)"] = lambda: DockerSandbox(**podman)  # type: ignore[arg-type]
    except docker_engine.EngineUnavailable as exc:
        print(f"no podman column: {exc}")
    makers[f"local ({level})"] = lambda: LocalSandbox(isolation="auto")
    try:
        columns = {label: measure(make, contexts, args) for label, make in makers.items()}
        firsts = {label: first_load(make, path, args.loads) for label, make in makers.items()}
        with FakeEnvd() as envd:
            e2b = lambda: E2BSandbox(debug=True, workdir=envd.workdir, compress=False)  # noqa: E731
            columns["e2b, plain upload (fake envd)"] = measure(e2b, contexts, args)
            firsts["e2b, plain upload (fake envd)"] = first_load(e2b, path, args.loads)
    finally:
        os.unlink(name)
    print(table(columns, args))
    cells = " | ".join(f"{firsts[label]:.3f} s" for label in columns)
    print(f"| new sandbox + first load of the 100 MB Path (median of {args.loads}) | {cells} |")


if __name__ == "__main__":
    main()
