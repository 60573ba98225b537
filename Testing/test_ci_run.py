"""CI's entry point (.ci/run): it runs the README's test command, and before it makes headless Chromium available
for the study report's browser check (.ci/chromium.sh): found, or installed with apt-get as root or with
passwordless sudo (``apt-get update`` only when the install fails), and then required (RTRESPONSE_REQUIRE_BROWSER=1);
otherwise one line says why the check is skipped. Each branch runs here on a PATH of stand-in commands (id, sudo,
apt-get, chromium): nothing is installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README_COMMAND = 'python3 -m venv .venv && .venv/bin/pip install -e ".[test]" && .venv/bin/python -m pytest'
BASH = shutil.which("bash")

pytestmark = pytest.mark.skipif(BASH is None or os.name == "nt", reason="needs bash")


def test_ci_run_prepares_chromium_then_runs_the_readme_command():
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert "set -euo pipefail" in lines
    assert lines[-1] == README_COMMAND and README_COMMAND in (ROOT / "README.md").read_text(encoding="utf-8")
    assert lines.index("source .ci/chromium.sh") < lines.index("ensure_chromium") < lines.index(README_COMMAND)


def stand_ins(folder: Path, uid: int = 1000, sudo: bool = False, apt: str | None = None,
              chromium: bool = False) -> Path:
    """A bin folder: real env, mktemp, tail, rm, cat, chmod, touch; stand-in id (``uid``), sudo (passwordless when ``sudo``), and
    apt-get: None (absent), "works" (install makes chromium), "needs-update" (install fails until an update),
    "fails" (always fails); each apt-get call is logged to apt.log."""
    bin_ = folder / "bin"
    bin_.mkdir()
    for tool in ("env", "mktemp", "tail", "rm", "cat", "chmod", "touch"):
        (bin_ / tool).symlink_to(shutil.which(tool))

    def script(name, text):
        (bin_ / name).write_text("#!/bin/sh\n" + text, encoding="utf-8")
        (bin_ / name).chmod(0o755)

    script("id", f'[ "$1" = -u ] && echo {uid}\n')
    if sudo:
        script("sudo", '[ "$1" = -n ] && shift\n[ "$1" = true ] && exit 0\nexec "$@"\n')
    else:
        script("sudo", 'echo "sudo: a password is required" >&2\nexit 1\n')
    if chromium:
        script("chromium", "exit 0\n")
    if apt:
        log, updated = folder / "apt.log", folder / "updated"
        make = f'printf "#!/bin/sh\\nexit 0\\n" > "{bin_}/chromium" && chmod 755 "{bin_}/chromium"'
        script("apt-get", f'echo "$DEBIAN_FRONTEND $*" >> "{log}"\n'
                          f'case "$*" in *update*) touch "{updated}"; exit 0;; esac\n'
                          + {"works": f"{make}\n",
                             "needs-update": f'[ -e "{updated}" ] || {{ echo "E: Unable to locate package chromium"; '
                                             f'exit 100; }}\n{make}\n',
                             "fails": 'echo "E: Could not get lock /var/lib/dpkg/lock-frontend"; exit 100\n'}[apt])
    return bin_


def ensure(bin_: Path) -> tuple[str, str, list[str]]:
    """(the line ensure_chromium printed last, RTRESPONSE_REQUIRE_BROWSER afterwards, apt-get calls) under set -euo
    pipefail, with only ``bin_`` on the PATH."""
    done = subprocess.run([BASH, "-c", "set -euo pipefail; source .ci/chromium.sh; ensure_chromium; "
                                       'echo "REQUIRE=${RTRESPONSE_REQUIRE_BROWSER:-}"'],
                          cwd=ROOT, env={"PATH": str(bin_), "HOME": str(bin_.parent)}, capture_output=True,
                          text=True, encoding="utf-8", timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    log = bin_.parent / "apt.log"
    calls = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    assert lines[-1].startswith("REQUIRE=")
    return lines[-2], lines[-1].partition("=")[2], calls


def test_chromium_present_is_required_and_nothing_is_installed(tmp_path):
    line, required, calls = ensure(stand_ins(tmp_path, apt="works", chromium=True))
    assert required == "1" and line == f"ci: browser check required (RTRESPONSE_REQUIRE_BROWSER=1) with " \
                                       f"{tmp_path / 'bin' / 'chromium'}"
    assert calls == []


def test_chromium_named_by_the_variable_counts(tmp_path):
    bin_ = stand_ins(tmp_path)
    (bin_ / "my-chrome").symlink_to(shutil.which("true"))
    done = subprocess.run([BASH, "-c", "set -euo pipefail; source .ci/chromium.sh; ensure_chromium"], cwd=ROOT,
                          env={"PATH": str(bin_), "CHROMIUM": "my-chrome"}, capture_output=True, text=True,
                          encoding="utf-8", timeout=60)
    assert done.returncode == 0 and "RTRESPONSE_REQUIRE_BROWSER=1" in done.stdout


@pytest.mark.parametrize("uid, sudo", [(0, False), (1000, True)], ids=["root", "passwordless sudo"])
def test_missing_chromium_is_installed_quietly_without_an_update(tmp_path, uid, sudo):
    line, required, calls = ensure(stand_ins(tmp_path, uid=uid, sudo=sudo, apt="works"))
    assert required == "1" and "required" in line
    assert calls == ["noninteractive install -y -qq --no-install-recommends chromium"]


def test_the_package_lists_are_updated_only_when_the_install_fails(tmp_path):
    line, required, calls = ensure(stand_ins(tmp_path, uid=0, apt="needs-update"))
    assert required == "1" and "required" in line
    assert calls == ["noninteractive install -y -qq --no-install-recommends chromium", "noninteractive update -qq",
                     "noninteractive install -y -qq --no-install-recommends chromium"]


@pytest.mark.parametrize("uid, apt, why", [
    (1000, "works", "needs root or passwordless sudo"),
    (0, None, "no apt-get"),
    (0, "fails", "apt-get install chromium failed: E: Could not get lock"),
], ids=["no root", "no apt-get", "install fails"])
def test_otherwise_one_line_says_why_the_check_is_skipped(tmp_path, uid, apt, why):
    line, required, calls = ensure(stand_ins(tmp_path, uid=uid, apt=apt))
    assert required == ""
    assert re.match(r"ci: the browser check of the study report will be SKIPPED: ", line) and why in line, line
    assert (calls == []) == (apt != "fails")


# --- the browser test: skipped without Chromium, failed instead when the check is required -------------------------

def test_the_browser_test_runs_skips_or_fails():
    import browser_check

    assert browser_check.verdict(None, False) == ("run", "") == browser_check.verdict(None, True)
    assert browser_check.verdict("no Chromium", False) == ("skip", "no Chromium")
    action, why = browser_check.verdict("no Chromium", True)
    assert action == "fail" and "RTRESPONSE_REQUIRE_BROWSER" in why and "no Chromium" in why
    assert [browser_check.required({"RTRESPONSE_REQUIRE_BROWSER": v}) for v in ("1", "yes", "", "0", "false")] == \
        [True, True, False, False, False]
    assert browser_check.required({}) is False


def test_a_chromium_that_cannot_run_or_is_missing_is_unavailable(tmp_path, monkeypatch):
    import browser_check

    broken = tmp_path / "chromium"
    broken.write_text("#!/bin/sh\necho 'chromium: this is a snap stub' >&2\nexit 1\n", encoding="utf-8")
    broken.chmod(0o755)
    monkeypatch.setenv("CHROMIUM", str(broken))
    assert browser_check.unavailable() == f"{broken} cannot draw a page (exit 1): chromium: this is a snap stub"
    monkeypatch.setenv("CHROMIUM", "")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert browser_check.unavailable().startswith("no Chromium")


@pytest.mark.parametrize("require, outcome", [("", "1 skipped"), ("1", "1 failed")], ids=["skips", "fails"])
def test_without_chromium_the_report_test_skips_unless_required(tmp_path, require, outcome):
    """The real test, in a child pytest whose PATH hides Chromium: no study is run for it either way."""
    import sys

    env = {key: value for key, value in os.environ.items() if key not in ("CHROMIUM", "RTRESPONSE_REQUIRE_BROWSER")}
    env.update(PATH=str(tmp_path), RTRESPONSE_REQUIRE_BROWSER=require, PYTHONIOENCODING="utf-8")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rsf",
                           "Testing/test_report.py::test_report_renders_in_headless_chromium"], cwd=ROOT, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=600)
    assert outcome in done.stdout, done.stdout[-3000:]
    assert "no Chromium" in done.stdout
    if require:
        assert "RTRESPONSE_REQUIRE_BROWSER is set but the browser check cannot run" in done.stdout
