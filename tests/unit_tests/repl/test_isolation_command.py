"""The bubblewrap command line: mount order matters, so it is checked as data, without running it."""

from __future__ import annotations

from rlm_plugins.repl import isolation


def test_private_tmp_is_mounted_before_the_python_runtime(monkeypatch):
    """A virtualenv under /tmp (as in a CI checkout) must stay visible above the private /tmp."""
    monkeypatch.setattr(isolation, "_python_roots", lambda: ["/tmp/checkout/.venv", "/opt/python"])
    args = isolation._bwrap_args(64 * 1024**2)
    tmpfs = args.index("--tmpfs")
    roots = ("/tmp/checkout/.venv", "/opt/python")
    binds = [i for i, a in enumerate(args) if a == "--ro-bind" and args[i + 1] in roots]
    assert len(binds) == 2
    assert all(tmpfs < i for i in binds)
    assert args[args.index("--tmpfs") - 1] == "1777"
    assert args[args.index("--tmpfs") - 4 : args.index("--tmpfs") - 2] == ["--size", str(64 * 1024**2)]
