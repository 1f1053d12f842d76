"""What only the docker sandbox does: the container's lockdown, its removal, how contexts get in, the CLI.

The shared behaviour is in `test_sandbox_contract.py` (`TestDockerSandbox`); attacks are in `test_docker_attacks.py`.
All of it runs on the session's daemon and scratch image (`tests/fixtures_docker.py`), or skips with the reason.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap

import pytest

from rlm_plugins import cli
from rlm_plugins.errors import ConfigurationError, SandboxError, SandboxStartError, SandboxTimeoutError
from rlm_plugins.repl import _docker_admin, create_sandbox
from rlm_plugins.repl._docker_engine import LABEL, OWNER_LABEL, Engine, parse_size
from tests.fixtures_docker import gone

IGNORES_INTERRUPTS = (
    "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass"
)


def inspect(container: str) -> dict:
    done = subprocess.run(["docker", "inspect", container], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)[0]


def test_container_is_locked_down(make_docker) -> None:
    sb = make_docker(memory="512m", cpus=1.5, pids=64, work_size="8m")
    sb.start()
    info = inspect(sb.container_id)
    host = info["HostConfig"]
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["NetworkMode"] == "none"
    assert (host["Memory"], host["PidsLimit"], host["NanoCpus"]) == (512 * 1024**2, 64, 1_500_000_000)
    assert info["Config"]["User"] == "65534:65534"
    assert info["Config"]["Labels"][LABEL] == "1"
    assert info["Config"]["Labels"][OWNER_LABEL].endswith(f":{os.getpid()}")
    assert sb.execute(SELF_CHECK).value == [65534, "/rlm/work", 8 * 1024**2, "0000000000000000", "1", ["lo"]]


SELF_CHECK = """
import os, socket
status = dict(line.split(':', 1) for line in open('/proc/self/status'))
work = os.statvfs('.')
names = sorted(name for _, name in socket.if_nameindex())
[os.getuid(), os.getcwd(), work.f_blocks * work.f_frsize, status['CapEff'].strip(), status['NoNewPrivs'].strip(), names]
"""


def test_podman_container_is_locked_down_too_and_removed(podman_options) -> None:
    """The same lockdown as seen from inside, on rootful podman; and its container goes with close()."""
    sb = create_sandbox("docker", **{**podman_options, "work_size": "8m"})
    with sb:
        assert sb.execute(SELF_CHECK).value == [65534, "/rlm/work", 8 * 1024**2, "0000000000000000", "1", ["lo"]]
        assert sb.execute("import os\nopen('/etc/x', 'w')").error.type == "OSError"  # read-only root
    done = subprocess.run(["podman", "container", "exists", sb.container_id], check=False)
    assert done.returncode == 1


def test_podman_prune_removes_orphans(podman_options, capsys) -> None:
    labels = ["--label", f"{LABEL}=1", "--label", f"{OWNER_LABEL}={socket.gethostname()}:999999999"]
    orphan = subprocess.run(
        ["podman", "create", *labels, podman_options["image"], "true"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert cli.main(["sandbox", "prune", "--engine", "podman"]) == 0
    assert orphan[:12] in capsys.readouterr().out
    assert subprocess.run(["podman", "container", "exists", orphan], check=False).returncode == 1


def test_network_true_keeps_the_engines_network(make_docker) -> None:
    sb = make_docker(network=True)
    sb.start()
    assert inspect(sb.container_id)["HostConfig"]["NetworkMode"] != "none"


def test_work_dir_is_capped(make_docker) -> None:
    sb = make_docker(work_size="1m", host_files=False)  # a remote engine's contexts land in the work dir
    full = sb.execute("open('big', 'wb').write(b'x' * 2_000_000)")
    assert full.error is not None and full.error.type == "OSError" and "No space left" in full.error.message
    sb.execute("import os\nos.remove('big')")
    with pytest.raises(SandboxError, match="raise work_size="):
        sb.load("blob", b"x" * 2_000_000)
    assert sb.execute("1").ok


def test_bad_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="engine='lxc'"):
        create_sandbox("docker", engine="lxc")
    with pytest.raises(ConfigurationError, match="'512x' is not a size"):
        create_sandbox("docker", memory="512x")
    with pytest.raises(ConfigurationError, match="pids=0"):
        create_sandbox("docker", pids=0)
    assert (parse_size("2g", "m"), parse_size("512m", "m"), parse_size(10, "m"), parse_size(None, "m")) == (
        2 * 1024**3,
        512 * 1024**2,
        10,
        None,
    )


@pytest.mark.skipif(shutil.which("docker") is None, reason="the docker command is not installed")
def test_engine_is_local_unless_told_otherwise(monkeypatch, tmp_path) -> None:
    """Host files are mounted only when the engine shares this machine's filesystem."""
    for var in ("DOCKER_HOST", "DOCKER_CONTEXT", "CONTAINER_HOST", "CONTAINER_CONNECTION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    docker = Engine("docker")
    assert docker.local
    (tmp_path / "config.json").write_text('{"currentContext": "remote-box"}')
    assert not docker.local
    monkeypatch.setenv("DOCKER_CONTEXT", "default")
    assert docker.local
    monkeypatch.setenv("DOCKER_HOST", "ssh://me@far")
    assert not docker.local
    assert not create_sandbox("docker").host_files
    monkeypatch.setenv("DOCKER_HOST", "unix:///tmp/x.sock")
    assert docker.local


def test_a_missing_image_says_how_to_build_one(make_docker) -> None:
    with pytest.raises(SandboxError, match="rlm-plugins sandbox build-image"):
        make_docker(image="rlm-plugins-no-such-image:0").start()


def _binds(container: str) -> dict[str, dict]:
    return {m["Destination"]: m for m in inspect(container)["Mounts"] if m["Type"] == "bind"}


@functools.cache
def _python39() -> tuple[str, str] | None:
    """A Python 3.9 interpreter on this machine and its prefix, if there is one (the oldest the driver supports)."""
    candidates = [*sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.9*/bin/python3.9"))), "/usr/bin/python3.9"]
    for candidate in candidates:
        probe = "import sys; print(sys.version_info[:2] == (3, 9), sys.executable, sys.base_prefix)"
        try:
            done = subprocess.run(
                [candidate, "-I", "-c", probe], capture_output=True, text=True, timeout=30, check=False
            )
        except OSError:
            continue
        ok, executable, prefix = [*done.stdout.split(), "", "", ""][:3]
        if ok == "True":
            return os.path.realpath(executable), os.path.realpath(prefix)
    return None


@pytest.mark.skipif(_python39() is None, reason="no Python 3.9 on this machine to run in the container")
def test_the_oldest_supported_python_runs_the_driver(make_docker, docker_engine) -> None:
    """Any image with Python >= 3.9 works: here the scratch image runs a 3.9 interpreter instead of this one."""
    found = _python39()
    assert found is not None
    python, prefix = found
    sb = make_docker(python=python, mounts=[*docker_engine.options["mounts"], (prefix, prefix)])
    sb.load("context", "x" * 100_000)
    result = sb.execute(
        "import sys\n[list(sys.version_info[:2]), len(context), double(21)]", tools={"double": lambda x: 2 * x}
    )
    assert result.value == [[3, 9], 100_000, 42]


def test_a_container_that_cannot_start_is_removed(make_docker, docker_engine) -> None:
    sb = make_docker(python="/no/such/python")
    with pytest.raises(SandboxStartError, match="did not start") as info:
        sb.start()
    assert "/no/such/python" in str(info.value)  # the engine's own reason is passed on
    assert sb.container_id is not None and gone(sb.container_id, docker_engine)


def test_a_path_that_starts_the_sandbox_is_bind_mounted_read_only(make_docker, tmp_path) -> None:
    path = tmp_path / "context.txt"
    path.write_text("needle\n" * 1000)
    path.chmod(0o644)
    sb = make_docker()
    assert sb.load("context", path) == {"type": "str", "length": 7000}
    binds = _binds(sb.container_id)
    assert binds["/rlm/paths/1-context"]["Source"] == str(path.resolve())
    assert binds["/rlm/paths/1-context"]["RW"] is False
    refused = sb.execute("open('/rlm/paths/1-context', 'a')")
    assert refused.error is not None and refused.error.type in ("OSError", "PermissionError")
    assert sb.execute("import os\nos.listdir('.')").value == []  # nothing was copied


def test_other_loads_pass_through_a_read_only_staging_dir_and_are_deleted(make_docker, tmp_path) -> None:
    private = tmp_path / "private.txt"
    private.write_text("secret-ish\n")
    private.chmod(0o600)  # the container's user could not read it in place
    later = tmp_path / "later.txt"
    later.write_text("later\n")
    sb = make_docker()
    assert sb.load("a", private) == {"type": "str", "length": 11}
    assert sb.load("b", later) == {"type": "str", "length": 6}  # the container is running: no more mounts
    assert sb.load("c", "é" * 70_000) == {"type": "str", "length": 70_000}
    assert sb.load("m", b"\x01" * 100_000, format="mmap") == {"type": "mmap", "length": 100_000}
    binds = _binds(sb.container_id)
    staging = binds["/rlm/in"]["Source"]
    assert binds["/rlm/in"]["RW"] is False and not any(d.startswith("/rlm/paths") for d in binds)
    assert os.listdir(staging) == []  # each file was deleted once the driver had read it
    assert sb.execute("import os\nos.listdir('.')").value == []
    assert sb.execute("import os\nos.listdir('/rlm/in')").error.type == "PermissionError"  # names are not listed
    assert sb.execute("[a + b, len(c), m[:2] == b'\\x01\\x01']").value == ["secret-ish\nlater\n", 70_000, True]
    assert sb.execute("open('/rlm/in/x', 'w')").error is not None
    sb.close()
    assert not os.path.exists(staging)


def test_host_files_false_copies_the_driver_and_contexts_in(make_docker, tmp_path) -> None:
    """What a remote engine gets: nothing of the host is mounted, everything travels with `cp`."""
    path = tmp_path / "context.txt"
    path.write_text("x" * 100)
    path.chmod(0o644)
    sb = make_docker(host_files=False)
    sb.load("context", path)
    sb.load("more", "y" * 70_000)
    assert not any(d.startswith("/rlm/") for d in _binds(sb.container_id))
    assert sb.execute("import os\nsorted(os.listdir('.'))").value == [".rlm-1-context", ".rlm-2-more"]
    assert sb.execute("[len(context), len(more)]").value == [100, 70_000]


def test_a_stuck_execution_removes_the_container(make_docker, docker_engine) -> None:
    sb = make_docker(grace=0.5)
    sb.start()
    with pytest.raises(SandboxTimeoutError):
        sb.execute(IGNORES_INTERRUPTS, timeout=0.2)
    assert gone(sb.container_id, docker_engine)
    with pytest.raises(SandboxTimeoutError):
        sb.execute("1")


async def test_a_stuck_aexecution_removes_the_container(make_docker, docker_engine) -> None:
    sb = make_docker(grace=0.5)
    await sb.astart()
    with pytest.raises(SandboxTimeoutError):
        await sb.aexecute(IGNORES_INTERRUPTS, timeout=0.2)
    assert gone(sb.container_id, docker_engine)


HOST = """
import os, signal, sys
from rlm_plugins.repl import create_sandbox
options = {options}
sb = create_sandbox("docker", **options)
sb.start()
print(sb.container_id, os.getpid(), flush=True)
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_container_goes_when_the_host_exits_or_dies(how: str, docker_engine) -> None:
    """At exit the sandbox is closed; a SIGKILLed host closes the container's stdin, and it removes itself."""
    code = textwrap.dedent(HOST).format(options=repr(docker_engine.options))
    done = subprocess.run(
        [sys.executable, "-c", code, how], capture_output=True, text=True, timeout=120, check=False
    )  # fmt: skip
    assert done.returncode == (-signal.SIGKILL if how == "kill" else 0), done.stderr
    container, host_pid = done.stdout.split()
    assert gone(container, docker_engine, within=30)
    left = glob.glob(f"/dev/shm/rlm-docker-{host_pid}-*") + glob.glob(
        f"{tempfile.gettempdir()}/rlm-docker-{host_pid}-*"
    )
    assert len(left) == (how == "kill")  # a killed host cannot delete its staging dir: prune does
    _docker_admin.prune()
    assert all(not os.path.exists(d) for d in left)


def test_prune_removes_only_orphans(make_docker, docker_engine, capsys) -> None:
    """Containers whose creating process on this host is gone; `--all` (everything) is not run here, as it would
    also remove the sandboxes of test runs sharing this daemon."""
    orphan = subprocess.run(
        ["docker", "create", "--label", f"{LABEL}=1", "--label", f"{OWNER_LABEL}={socket.gethostname()}:999999999",
         docker_engine.options["image"], "true"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    live = make_docker()
    live.start()
    assert cli.main(["sandbox", "prune"]) == 0
    assert orphan[:12] in capsys.readouterr().out
    assert gone(orphan, docker_engine, within=0)
    assert not gone(live.container_id, docker_engine, within=0)  # its process (this one) is alive


def test_orphans_are_containers_of_dead_processes_on_this_host() -> None:
    assert _docker_admin._orphaned(f"{socket.gethostname()}:999999999")
    assert not _docker_admin._orphaned(f"{socket.gethostname()}:{os.getpid()}")
    assert not _docker_admin._orphaned("another-host:999999999")
    assert not _docker_admin._orphaned("")


def test_build_image_builds_the_given_dockerfile(docker_engine, tmp_path, capsys) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {docker_engine.options['image']}\nCOPY {_docker_admin.DRIVER_IN_CONTEXT} /opt/rlm/\n")
    tag = "rlm-plugins-test-build:latest"
    assert cli.main(["sandbox", "build-image", "--tag", tag, "--file", str(dockerfile)]) == 0
    assert inspect(tag)["RepoTags"] == [tag]
    options = {**docker_engine.options, "image": tag}
    with create_sandbox("docker", **options) as sb:
        assert sb.execute("import os\nos.path.getsize('/opt/rlm/driver.py') > 0").value is True
    subprocess.run(["docker", "rmi", "--force", tag], capture_output=True, check=False)


def test_the_checkouts_dockerfile_is_the_default_and_copies_the_driver_from_the_context() -> None:
    dockerfile = _docker_admin.CHECKOUT_DOCKERFILE
    assert dockerfile.is_file()
    assert f"COPY {_docker_admin.DRIVER_IN_CONTEXT} " in dockerfile.read_text()


def test_build_image_without_a_dockerfile_says_what_to_pass(tmp_path, capsys) -> None:
    assert cli.main(["sandbox", "build-image", "--file", str(tmp_path / "missing")]) == 1
    assert "pass --file" in capsys.readouterr().err


def test_official_constructor_runs_on_docker(scripted_openai, docker_engine) -> None:
    """`environment="docker"` picks this backend; the engine's sub-calls reach the host from inside the container."""
    from rlm_plugins import RLM
    from tests.integration_tests.test_standalone_rlm import haystack, scripted

    server = scripted_openai(scripted)
    rlm = RLM(
        backend="openai",
        backend_kwargs={"model_name": "root-model", "base_url": server.base_url, "api_key": "sk-test"},
        environment="docker",
        environment_kwargs=docker_engine.options,
        max_iterations=5,
    )
    assert rlm.sandbox_kind == "docker"
    assert rlm.completion(haystack(), root_prompt="magic number?").response == "4242"
    assert docker_engine.leftovers() == []  # the run closed its sandbox
