"""Where the extension installs and runs (issue 16, item 4), checked outside Slicer.

- The minimum Slicer version (``rtresponse.dependencies.MINIMUM_SLICER``, whose Python is ``SLICER_PYTHON``) is the
  one README, the extension's description (what the Extensions Index shows; its catalog entry has no version
  field) and CMake's guard state, and pyproject's requires-python is ``LIBRARY_PYTHON``.
- Every file compiles, and every module (rtresponse, RadiotherapyResponseLib, the module files) imports, under
  pyenv's Python of that Slicer (3.12) and every rtresponse module under the library's floor (3.10), with the
  third-party packages those bare interpreters lack replaced by stand-ins (Testing/floorcheck.py); the suite itself
  runs under the machine's Python (3.11).
- No SlicerRadiomics dependency; the screenshot URL names a PNG in the repository; the papers' DOIs and the research
  use notice are in the metadata and the modules that predict or recommend.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from rtresponse import dependencies

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "RadiotherapyResponse"
TOP_CMAKE = REPO / "CMakeLists.txt"
INDEX_JSON = REPO / "ExtensionsIndex" / "RadiotherapyResponse.json"
FLOORCHECK = Path(__file__).resolve().parent / "floorcheck.py"
MODULE_FILES = sorted(p.stem for p in MODULE_DIR.glob("*.py"))
# What a bare interpreter lacks and the code may import at load: the declared packages, Slicer's own packages
# (numpy, SimpleITK, vtk), timm's safetensors, and what only the Slicer application provides.
STAND_INS = sorted({r.module for r in dependencies.REQUIREMENTS} | {"numpy", "SimpleITK", "safetensors", "requests"}
                   | {"slicer", "qt", "ctk", "vtk", "PyTorchUtils", "SampleData"})
# The four papers the extension implements (../shared/papers): Tanaka et al. (its DOI is not in the text: the
# journal's page), Jeong et al. and Hua et al. (in the text), Kutnar et al. (arXiv 2308.08396).
PAPER_DOIS = ("10.1038/s41598-022-12170-z", "10.1038/s41598-024-51742-z", "10.21037/qims-22-1226",
              "10.48550/arXiv.2308.08396")
# Modules that predict or recommend: they show the research-use notice.
PREDICTING_MODULES = ["ResponseModel", "ResponseModelI3D", "ResidualTumor", "RecurrenceVolume"]


def cmake_values() -> dict[str, str]:
    text = "\n".join(line.split("#", 1)[0] for line in TOP_CMAKE.read_text(encoding="utf-8").splitlines())
    return {name: quoted or " ".join(bare.split())
            for name, quoted, bare in re.findall(r'set\(\s*(\w+)\s+(?:"([^"]*)"|([^)"]+))\)', text)}


def pyenv_python(version: tuple[int, int]) -> Path | None:
    """pyenv's interpreter of ``version`` (the newest patch release), or None."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = sorted(Path(root, "versions").glob("%d.%d.*/bin/python" % version),
                   key=lambda p: [int(part) if part.isdigit() else -1 for part in p.parts[-3].split(".")])
    return found[-1] if found else None


def floorcheck(interpreter: Path, root: Path, imports: list[str], compile_files: list[Path]) -> dict:
    """Run Testing/floorcheck.py under ``interpreter`` (isolated: no user site, no PYTHON* variables)."""
    done = subprocess.run([str(interpreter), "-I", str(FLOORCHECK), str(root), "--import", *imports,
                           "--stand-in", *STAND_INS, "--compile", *map(str, compile_files)],
                          capture_output=True, text=True, timeout=300, env={"PATH": os.environ.get("PATH", "")})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def python_files() -> list[Path]:
    """The project's Python files (not the virtual environment's, not build outputs)."""
    files = []
    for folder in ("RadiotherapyResponse", "Testing", "bench", "Screenshots"):
        files += [p for p in sorted((REPO / folder).rglob("*.py")) if "__pycache__" not in p.parts]
    return files


def expected_modules(names: list[str]) -> set[str]:
    modules = set()
    for name in names:
        if (MODULE_DIR / f"{name}.py").is_file():
            modules.add(name)
            continue
        for path in (MODULE_DIR / name).rglob("*.py"):
            parts = path.relative_to(MODULE_DIR).with_suffix("").parts
            if parts[-1] != "__main__":
                modules.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def failures(report: dict) -> str:
    return "\n".join(f"--- {name}\n{message}" for name, message in report["errors"].items())


# --- the Python of the oldest supported Slicer, and the library's floor -------------------------------------------

def test_every_module_imports_under_the_python_of_the_oldest_supported_slicer():
    interpreter = pyenv_python(dependencies.SLICER_PYTHON)
    if interpreter is None:
        pytest.skip("no Python %d.%d here (pyenv): Slicer %s's Python is not checked"
                    % (*dependencies.SLICER_PYTHON, dependencies.MINIMUM_SLICER))
    names = ["rtresponse", "RadiotherapyResponseLib", *MODULE_FILES]
    report = floorcheck(interpreter, MODULE_DIR, names, python_files())
    assert tuple(report["python"]) == dependencies.SLICER_PYTHON
    assert not report["errors"], failures(report)
    assert set(report["imported"]) == expected_modules(names)
    assert report["compiled"] == len(python_files())


def test_the_library_imports_under_its_oldest_python():
    interpreter = pyenv_python(dependencies.LIBRARY_PYTHON)
    if interpreter is None:
        pytest.skip("no Python %d.%d here (pyenv): the library's floor is not checked" % dependencies.LIBRARY_PYTHON)
    files = sorted((MODULE_DIR / "rtresponse").rglob("*.py"))
    report = floorcheck(interpreter, MODULE_DIR, ["rtresponse"], files)
    assert tuple(report["python"]) == dependencies.LIBRARY_PYTHON
    assert not report["errors"], failures(report)
    assert set(report["imported"]) == expected_modules(["rtresponse"])


def test_floorcheck_finds_what_another_python_would_not_run(tmp_path):
    interpreter = pyenv_python(dependencies.SLICER_PYTHON) or pyenv_python(dependencies.LIBRARY_PYTHON)
    if interpreter is None:
        pytest.skip("no pyenv Python 3.10 or 3.12 here")
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "fine.py").write_text(  # stand-ins: subclassed, decorated, subscripted, in unions, versions compared
        "import numpy as np\nimport torch\nfrom torch import nn\nimport sklearn\n"
        "Array = np.ndarray | None\nclass Net(nn.Module):\n    @torch.no_grad()\n    def forward(self, x):\n"
        "        return x\nNEW = sklearn.__version__ >= '1.8'\nEPS = float(np.finfo(np.float32).eps) * 10\n"
        "SHAPE = tuple(np.zeros(3).shape)\n")
    (package / "removed.py").write_text("import imp\n" if interpreter.parts[-3].startswith("3.12") else
                                        "from typing import Self\n")  # gone in 3.12 / new in 3.11
    (package / "undeclared.py").write_text("import not_a_declared_package\n")
    (package / "__main__.py").write_text("raise SystemExit('never imported')\n")
    broken = tmp_path / "broken.py"
    broken.write_text("x = (\n")
    report = floorcheck(interpreter, tmp_path, ["pkg"], [package / "fine.py", broken])
    assert set(report["errors"]) == {"pkg.removed", "pkg.undeclared", str(broken)}, report["errors"]
    assert "ModuleNotFoundError" in report["errors"]["pkg.undeclared"]
    assert set(report["imported"]) == {"pkg", "pkg.fine"}
    assert report["compiled"] == 2


# --- the minimum Slicer version, stated and enforced --------------------------------------------------------------

def test_the_minimum_slicer_version_is_stated_consistently():
    slicer, python = dependencies.MINIMUM_SLICER, "%d.%d" % dependencies.SLICER_PYTHON
    assert dependencies.SLICER_PYTHON >= dependencies.LIBRARY_PYTHON
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    install = readme.split("## Installing in 3D Slicer", 1)[1].split("\n## ", 1)[0]
    assert f"Slicer {slicer} or newer" in install and f"Python {python}" in install, install[:400]
    assert not re.search(r"Slicer 5\.[0-9] or newer", readme)  # no older promise left anywhere
    values = cmake_values()
    assert f"Needs 3D Slicer {slicer} or later (Python {python})" in values["EXTENSION_DESCRIPTION"]
    assert values["RadiotherapyResponse_MINIMUM_SLICER_VERSION"] == slicer
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r'^requires-python = ">=%d\.%d"' % dependencies.LIBRARY_PYTHON, pyproject, flags=re.M)


@pytest.mark.parametrize("slicer_version, accepted", [("5.8", False), ("5.9", False), ("5.10", True), ("5.12", True),
                                                      ("6.0", True)])
def test_cmake_refuses_a_slicer_older_than_the_minimum(tmp_path, slicer_version, accepted):
    """The guard after find_package(Slicer), run by CMake itself with each Slicer's Slicer_VERSION."""
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("no cmake here")
    text = TOP_CMAKE.read_text(encoding="utf-8")
    guard = re.search(r"set\(RadiotherapyResponse_MINIMUM_SLICER_VERSION.*?\nendif\(\)", text, flags=re.S)
    assert guard, "CMakeLists.txt has no minimum Slicer version guard"
    assert text.index("find_package(Slicer REQUIRED)") < guard.start() < text.index("add_subdirectory(")
    script = tmp_path / "guard.cmake"
    script.write_text(f'set(Slicer_VERSION "{slicer_version}")\n{guard.group(0)}\n')
    done = subprocess.run([cmake, "-P", str(script)], capture_output=True, text=True, timeout=60)
    assert (done.returncode == 0) == accepted, done.stderr
    if not accepted:
        assert f"needs 3D Slicer {dependencies.MINIMUM_SLICER} or newer" in done.stderr


# --- dependencies, screenshot, metadata -----------------------------------------------------------------------------

def test_no_slicer_radiomics_dependency():
    """SlicerRadiomics is not built for macOS (Slicer >= 5.3): depending on it hides the extension there.
    PyRadiomics is pip-installed with consent like the other packages."""
    assert cmake_values()["EXTENSION_DEPENDS"].split() == ["PyTorch"]
    assert json.loads(INDEX_JSON.read_text(encoding="utf-8"))["build_dependencies"] == ["PyTorch"]
    for path in MODULE_DIR.glob("*.py"):  # e.g. in a module's parent.dependencies
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value == "SlicerRadiomics":
                pytest.fail(f"{path.name} names SlicerRadiomics")
    radiomics = [r for r in dependencies.REQUIREMENTS if r.module == "radiomics"]
    assert radiomics and not radiomics[0].torch and radiomics[0].group == "radiomics"


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def test_screenshot_urls_name_pngs_in_the_repository():
    """The Extensions Index's check fetches every EXTENSION_SCREENSHOTURLS entry: each must be a file on main."""
    values = cmake_values()
    urls = values["EXTENSION_SCREENSHOTURLS"].replace(";", " ").split()
    assert urls
    prefix = values["EXTENSION_HOMEPAGE"] + "/raw/main/"
    for url in urls:
        assert url.startswith(prefix), url
        path = REPO / url[len(prefix):]
        assert path.is_file(), f"EXTENSION_SCREENSHOTURLS names a file not in the repository: {url}"
        width, height = png_size(path)
        assert width >= 800 and height >= 450, (width, height)
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", str(path)], cwd=REPO, capture_output=True)
        assert tracked.returncode == 0 or not (REPO / ".git").exists(), f"{path} is not committed"


def test_metadata_cites_the_four_papers_and_says_research_use_only():
    description = cmake_values()["EXTENSION_DESCRIPTION"]
    hub = (MODULE_DIR / "RadiotherapyResponse.py").read_text(encoding="utf-8")
    for doi in PAPER_DOIS:
        assert f"doi:{doi}" in description, doi
        assert f"doi:{doi}" in hub, doi  # the hub's acknowledgement text
    assert "Research use only, not for clinical decisions" in description
    assert cmake_values()["EXTENSION_CONTRIBUTORS"].strip()


def research_notice_problems(source: str) -> list[str]:
    """What a predicting module lacks: the notice at the start of its help text, and the notice label in its
    panel (``researchUseLabel()`` added to the layout in ``setup``)."""
    problems = []
    if not re.search(r"helpText\s*=\s*RESEARCH_USE_ONLY\s*\+", source):
        problems.append("helpText does not start with RESEARCH_USE_ONLY")
    if not re.search(r"self\.layout\.addWidget\(\s*researchUseLabel\(\)\s*\)", source):
        problems.append("setup() does not add researchUseLabel() to the panel")
    if not re.search(r"from RadiotherapyResponseLib\.notices import .*RESEARCH_USE_ONLY", source):
        problems.append("RESEARCH_USE_ONLY is not imported from RadiotherapyResponseLib.notices")
    return problems


@pytest.mark.parametrize("module", PREDICTING_MODULES)
def test_modules_that_predict_or_recommend_show_the_research_use_notice(module):
    problems = research_notice_problems((MODULE_DIR / f"{module}.py").read_text(encoding="utf-8"))
    assert not problems, f"{module}.py: {'; '.join(problems)}"


def test_research_notice_checker_can_fail():
    assert len(research_notice_problems('helpText = """x"""\nself.layout.addWidget(uiWidget)\n')) == 3
    good = ("from RadiotherapyResponseLib.notices import RESEARCH_USE_ONLY, researchUseLabel\n"
            'helpText = RESEARCH_USE_ONLY + """x"""\nself.layout.addWidget(researchUseLabel())\n')
    assert research_notice_problems(good) == []


def test_the_workers_setting_drives_a_job():
    """The hub's Workers setting is read by a module that starts jobs (Tumor Features: --jobs)."""
    readers = [p.name for p in [*MODULE_DIR.glob("*.py"), *(MODULE_DIR / "RadiotherapyResponseLib").glob("*.py")]
               if p.name != "RadiotherapyResponse.py" and re.search(r"hubSettings\(\)\.workers",
                                                                      p.read_text(encoding="utf-8"))]
    assert readers, "nothing reads the Workers setting"
    from RadiotherapyResponseLib import featurejobs

    assert featurejobs.handcraftedArguments("m.csv", "f.csv", "ct-tanaka", 3)[-4:] == ["--jobs", "3", "--out", "f.csv"]


def test_self_tests_skip_with_a_message_when_an_optional_package_is_absent(monkeypatch):
    """The modules' runTest: a test whose packages are absent is skipped with the missing packages named, the
    others still run, and a failure still fails."""
    import unittest

    from RadiotherapyResponseLib import selftests

    installed = {"pandas", "yaml", "tqdm"}
    monkeypatch.setattr(dependencies, "_is_installed", installed.__contains__)
    ran, shown = [], []

    class Case(unittest.TestCase):
        def setUp(self):
            ran.append("setUp")

        def delayDisplay(self, message):
            shown.append(message)

        def test_core(self):
            selftests.requirePackages(self, ["core"])
            assert ran[-1] == "setUp"  # runEach set the case up before this test
            ran.append("core")

        def test_deep(self):
            selftests.requirePackages(self, ["core", "deep"])
            assert ran[-1] == "setUp"
            ran.append("deep")

        def test_broken(self):
            assert False, "a real failure"

    case = Case("test_core")
    skipped = selftests.runEach(case, (case.test_deep, case.test_core))
    assert ran == ["setUp", "setUp", "core"]
    assert skipped == shown == ["test_deep skipped: torch==2.14.1, torchvision==0.29.1, timm>=1.0,<2, monai>=1.4,<2, "
                                "optuna>=4,<6 not installed (Radiotherapy Response > Python packages > Install)"]
    with pytest.raises(AssertionError, match="a real failure"):
        selftests.runEach(case, (case.test_broken,))
    result = unittest.TextTestRunner(stream=open(os.devnull, "w")).run(unittest.TestSuite([Case("test_deep")]))
    assert len(result.skipped) == 1 and result.wasSuccessful()  # ctest's runner counts it as skipped
