"""Static checks of the Slicer modules, run outside Slicer (no Qt, no application).

What the application would catch only at run time is checked here on the source: the `.ui` files parse and
name every widget a module uses; every `slicer.util` helper and `slicer.vtkMRML*` class a module uses exists
in slicer-core; every module and its resources are packaged by CMake; the extension metadata and the
ExtensionsIndex entry agree; module files compile and import `rtresponse` only inside functions.
The module library (RadiotherapyResponseLib, the Slicer-side code the modules share) gets the same checks, and
more: its files load without Qt, Slicer or rtresponse; what a module imports from
it exists; and a module whose analyses run as background jobs never runs one in its widget.
Each checker is also run on a small broken example so that it is known to be able to fail.
That every file compiles and every module imports under the Python of the oldest supported Slicer is checked by
test_extension_support.py (with that interpreter).
"""

from __future__ import annotations

import ast
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "RadiotherapyResponse"
UI_DIR = MODULE_DIR / "Resources" / "UI"
ICON_DIR = MODULE_DIR / "Resources" / "Icons"
MODULE_FILES = sorted(MODULE_DIR.glob("*.py"))
LIB_DIR = MODULE_DIR / "RadiotherapyResponseLib"
LIB_FILES = sorted(LIB_DIR.glob("*.py"))
# Modules whose Run handlers start background jobs (issue 16): every module, the hub included (sample data, Validate)
JOB_MODULES = ["TumorFeatures.py", "RecurrenceVolume.py", "ResidualTumor.py", "ResponseModel.py", "ResponseModelI3D.py",
               "RadiotherapyResponse.py"]
MODULE_LINE_BUDGET = 400  # lines of a module file, its self-test included (issue 16)
# Calls a job module's widget must not make: they compute in the GUI thread (the Logic keeps them for scripts)
IN_PROCESS_CALLS = {"extract_segments", "extract_cohort", "extract_from_nodes", "extract", "measure", "measureDeep",
                    "run", "runDeep", "processEvents", "showActivationMap", "gradcam_volume_node", "gradcam",
                    "ensure_sample", "sampleCohort", "validate_manifest", "validateManifest"}
HEAVY_AT_LOAD = ("rtresponse", "qt", "slicer", "vtk", "ctk", "numpy", "torch")  # never imported when a lib file loads
UI_FILES = sorted(UI_DIR.glob("*.ui"))
TOP_CMAKE = REPO / "CMakeLists.txt"
MODULE_CMAKE = MODULE_DIR / "CMakeLists.txt"
INDEX_JSON = REPO / "ExtensionsIndex" / "RadiotherapyResponse.json"
REQUIRED_EXTENSION_FIELDS = ("HOMEPAGE", "CATEGORY", "CONTRIBUTORS", "DESCRIPTION", "ICONURL", "SCREENSHOTURLS", "DEPENDS")
REQUIRED_DEPENDS = {"PyTorch"}  # PyRadiomics is pip-installed: no SlicerRadiomics
# Properties allowed by Slicer's catalog entry schema (Schemas/slicer-extension-catalog-entry-schema-v1.0.2.json).
INDEX_KEYS = {"$schema", "category", "scm_url", "scm_revision", "scm_type", "build_dependencies",
              "dicom_support_rule", "build_subdirectory", "enabled", "tier"}
INDEX_REQUIRED = {"$schema", "category", "scm_url"}


def test_there_is_something_to_check():
    assert (MODULE_DIR / "RadiotherapyResponse.py") in MODULE_FILES
    assert (UI_DIR / "RadiotherapyResponse.ui") in UI_FILES
    assert {"__init__.py", "backgroundjob.py", "jobpanel.py", "jobfolder.py"} <= {p.name for p in LIB_FILES}


# --- checkers ------------------------------------------------------------------------------------------------

def ui_object_names(ui_xml: str) -> list[str]:
    """objectNames in a Qt Designer file (widgets, layouts, spacers, actions), in document order; raises on bad XML."""
    root = ET.fromstring(ui_xml)
    if root.tag != "ui":
        raise ValueError(f"root element is <{root.tag}>, not <ui>")
    return [e.get("name") for e in root.iter() if e.tag in ("widget", "layout", "spacer", "action") and e.get("name")]


def ui_widget_names(ui_xml: str) -> set[str]:
    """Names `slicer.util.childWidgetVariables` exposes as `self.ui.<name>` (widgets and actions)."""
    return {e.get("name") for e in ET.fromstring(ui_xml).iter() if e.tag in ("widget", "action") and e.get("name")}


def duplicate_names(names: list[str]) -> set[str]:
    seen, dupes = set(), set()
    for name in names:
        (dupes if name in seen else seen).add(name)
    return dupes


def used_ui_names(source: str) -> set[str]:
    return set(re.findall(r"\bself\.ui\.([A-Za-z_]\w*)", source))


def loaded_ui_files(source: str) -> list[str]:
    """Paths given to `self.resourcePath(...)` that end in .ui (relative to Resources/)."""
    return re.findall(r"resourcePath\(\s*[\"']([^\"']+\.ui)[\"']\s*\)", source)


def missing_ui_names(source: str, ui_xml: str) -> set[str]:
    return used_ui_names(source) - ui_widget_names(ui_xml)


def slicer_attributes(source: str) -> tuple[set[str], set[str]]:
    """(names used as `slicer.util.X` or imported from slicer.util, `slicer.vtkMRML*`/`slicer.vtkSlicer*` names)."""
    util_names, classes = set(), set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute):
            inner = node.value
            if isinstance(inner.value, ast.Name) and inner.value.id == "slicer" and inner.attr == "util":
                util_names.add(node.attr)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "slicer":
            if node.attr.startswith(("vtkMRML", "vtkSlicer")):
                classes.add(node.attr)
        if isinstance(node, ast.ImportFrom) and node.module == "slicer.util":
            util_names.update(alias.name for alias in node.names)
    return util_names, classes


def top_level_imports(source: str, package: str) -> list[int]:
    """Line numbers where `package` is imported outside any function body (module level, class bodies, if/try)."""
    lines = []

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Import) and any(a.name.split(".")[0] == package for a in child.names):
                lines.append(child.lineno)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and (child.module or "").split(".")[0] == package:
                lines.append(child.lineno)
            visit(child)

    visit(ast.parse(source))
    return lines


def cmake_code(text: str) -> str:
    """CMake text without comments (a name mentioned only in a comment is not packaged)."""
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def cmake_set_values(text: str) -> dict[str, str]:
    """`set(NAME "value")` / `set(NAME a b c)` pairs of a CMake file (first occurrence wins).

    An unquoted list comes back space-separated, as CMake would join it for display.
    """
    values = {}
    for name, quoted, bare in re.findall(r'set\(\s*(\w+)\s+(?:"([^"]*)"|([^)"]+))\)', cmake_code(text)):
        values.setdefault(name, quoted if quoted else " ".join(bare.split()))
    return values


def cmake_module_blocks(text: str) -> dict[str, str]:
    """NAME -> argument text of each slicerMacroBuildScriptedModule(...) call."""
    blocks = {}
    for body in re.findall(r"slicerMacroBuildScriptedModule\((.*?)\)", cmake_code(text), flags=re.S):
        name = re.search(r"\bNAME\s+(\S+)", body)
        if name:
            blocks[name.group(1)] = body
    return blocks


def widget_calls(source: str, names: set[str]) -> list[tuple[str, str, int]]:
    """(method, called name, line) of calls to ``names`` (``f(...)`` or ``x.f(...)``) in the methods of the
    module's Widget class."""
    found = []
    for cls in ast.parse(source).body:
        if not (isinstance(cls, ast.ClassDef) and cls.name.endswith("Widget")):
            continue
        for method in cls.body:
            if not isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(method):
                if isinstance(node, ast.Call):
                    called = node.func.attr if isinstance(node.func, ast.Attribute) else \
                        node.func.id if isinstance(node.func, ast.Name) else None
                    if called in names:
                        found.append((method.name, called, node.lineno))
    return found


def library_imports(source: str, package: str = "RadiotherapyResponseLib") -> list[tuple[str, str]]:
    """(file stem in the package, name) for each name a file imports from the package (name "" for a module)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == package:
            found += [(alias.name, "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith(package + "."):
            found += [(node.module.split(".", 1)[1], alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name.split(".", 1)[1], "") for a in node.names if a.name.startswith(package + ".")]
    return found


def top_level_names(source: str) -> set[str]:
    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


# --- the checkers can fail ---------------------------------------------------------------------------------------

BROKEN_UI = """<?xml version="1.0" encoding="UTF-8"?>
<ui version="4.0"><class>X</class>
 <widget class="qMRMLWidget" name="X"><layout class="QVBoxLayout" name="layout">
  <item><widget class="QPushButton" name="applyButton"/></item>
  <item><widget class="QLabel" name="applyButton"/></item>
 </layout></widget></ui>"""


def test_checkers_detect_broken_examples():
    names = ui_object_names(BROKEN_UI)
    assert duplicate_names(names) == {"applyButton"}
    source = "class W:\n    def setup(self):\n        self.ui.applyButton.enabled = True\n        self.ui.ghostButton.click()\n"
    assert missing_ui_names(source, BROKEN_UI) == {"ghostButton"}
    assert missing_ui_names(source, BROKEN_UI.replace('name="applyButton"/></item>\n </layout>',
                                                      'name="ghostButton"/></item>\n </layout>')) == set()
    with pytest.raises(ET.ParseError):
        ui_object_names("<ui><widget name='a'></ui>")
    util_names, classes = slicer_attributes(
        "import slicer\nfrom slicer.util import VTKObservationMixin\nslicer.util.noSuchHelper()\nslicer.vtkMRMLNoSuchNode()\n")
    assert util_names == {"noSuchHelper", "VTKObservationMixin"} and classes == {"vtkMRMLNoSuchNode"}
    assert top_level_imports("import os\nfrom rtresponse import cohort\n", "rtresponse") == [2]
    assert top_level_imports("try:\n    import rtresponse.mrml\nexcept ImportError:\n    pass\n", "rtresponse") == [2]
    assert top_level_imports("class A:\n    from rtresponse import x\n", "rtresponse") == [2]
    assert top_level_imports("def f():\n    from rtresponse import cohort\n", "rtresponse") == []
    assert "Ghost.py" not in cmake_code("# Ghost.py is packaged later\nset(A b) # Ghost.py\n")
    assert cmake_set_values('set(EXTENSION_DEPENDS "A B") # c\nset(X y)')["EXTENSION_DEPENDS"] == "A B"
    assert cmake_set_values("set(EXTENSION_DEPENDS A  B) # c")["EXTENSION_DEPENDS"] == "A B"
    assert set(cmake_module_blocks("slicerMacroBuildScriptedModule(\n NAME Foo\n SCRIPTS Foo.py\n)")) == {"Foo"}


def test_library_checkers_detect_broken_examples():
    widget = ("class MWidget:\n    def onRun(self):\n        self.logic.run(1)\n        extract_segments(2)\n"
              "        slicer.app.processEvents()\n        self.panel.start([])\n"
              "class MLogic:\n    def run(self):\n        extract_segments(3)\n")
    assert widget_calls(widget, IN_PROCESS_CALLS) == [("onRun", "run", 3), ("onRun", "extract_segments", 4),
                                                      ("onRun", "processEvents", 5)]
    assert library_imports("from RadiotherapyResponseLib import a, b\nfrom RadiotherapyResponseLib.c import d\n"
                           "import RadiotherapyResponseLib.e\nfrom other import f\n") == \
        [("a", ""), ("b", ""), ("c", "d"), ("e", "")]
    assert top_level_names("import a.b\nfrom c import d as e\nX = 1\ndef f():\n    g = 2\nclass K:\n    pass\n") == \
        {"a", "e", "X", "f", "K"}


# --- .ui files -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ui_path", UI_FILES, ids=lambda p: p.name)
def test_ui_parses_and_names_are_unique(ui_path):
    names = ui_object_names(ui_path.read_text(encoding="utf-8"))
    assert names, f"{ui_path.name} names no widgets"
    assert not duplicate_names(names), f"{ui_path.name}: duplicate objectNames {sorted(duplicate_names(names))}"
    root = ET.parse(ui_path).getroot()
    top = root.find("widget")
    assert root.findtext("class") == top.get("name") == ui_path.stem
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    used_custom = {w.get("class") for w in root.iter("widget") if w.get("class", "").startswith(("ctk", "qMRML", "qSlicer"))}
    assert used_custom <= declared, f"{ui_path.name}: custom widgets without <customwidget>: {used_custom - declared}"


@pytest.mark.parametrize("module_path", MODULE_FILES, ids=lambda p: p.name)
def test_module_uses_only_widgets_of_its_ui(module_path):
    source = module_path.read_text(encoding="utf-8")
    ui_paths = loaded_ui_files(source)
    if not ui_paths and not used_ui_names(source):
        pytest.skip(f"{module_path.name} loads no .ui")
    assert ui_paths == [f"UI/{module_path.stem}.ui"], f"{module_path.name} should load UI/{module_path.stem}.ui"
    ui_path = MODULE_DIR / "Resources" / ui_paths[0]
    assert ui_path.is_file(), f"{module_path.name} loads missing {ui_path}"
    missing = missing_ui_names(source, ui_path.read_text(encoding="utf-8"))
    assert not missing, f"{module_path.name} uses self.ui.{sorted(missing)} not named in {ui_path.name}"


# --- slicer API used by module files ---------------------------------------------------------------------------------

@pytest.mark.parametrize("module_path", MODULE_FILES + LIB_FILES, ids=lambda p: p.name)
def test_slicer_api_used_exists_in_slicer_core(module_path):
    slicer = pytest.importorskip("slicer", reason="slicer-core is needed to check the slicer API")
    import slicer.util

    util_names, classes = slicer_attributes(module_path.read_text(encoding="utf-8"))
    assert not {n for n in util_names if not hasattr(slicer.util, n)}, \
        f"{module_path.name}: not in slicer.util: {sorted(n for n in util_names if not hasattr(slicer.util, n))}"
    assert not {c for c in classes if not hasattr(slicer, c)}, \
        f"{module_path.name}: not in slicer: {sorted(c for c in classes if not hasattr(slicer, c))}"


# --- module source ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("module_path", MODULE_FILES, ids=lambda p: p.name)
def test_module_compiles_and_imports_library_lazily(module_path):
    source = module_path.read_text(encoding="utf-8")
    compile(source, str(module_path), "exec")
    lines = top_level_imports(source, "rtresponse")
    assert not lines, f"{module_path.name} imports rtresponse outside a function at line(s) {lines}"
    tree = ast.parse(source)
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    stem = module_path.stem
    assert {stem, f"{stem}Widget", f"{stem}Logic", f"{stem}Test"} <= classes, f"{module_path.name}: classes {classes}"


@pytest.mark.parametrize("module_path", MODULE_FILES, ids=lambda p: p.name)
def test_what_a_module_imports_from_the_library_exists(module_path):
    for stem, name in library_imports(module_path.read_text(encoding="utf-8")):
        target = LIB_DIR / f"{stem}.py"
        assert target.is_file(), f"{module_path.name} imports RadiotherapyResponseLib.{stem}, which does not exist"
        assert not name or name in top_level_names(target.read_text(encoding="utf-8")), \
            f"{module_path.name} imports {name} from RadiotherapyResponseLib.{stem}, which does not define it"


# --- the module library (RadiotherapyResponseLib) ---------------------------------------------------------------------

@pytest.mark.parametrize("lib_path", LIB_FILES, ids=lambda p: p.name)
def test_library_file_loads_without_qt_slicer_or_rtresponse(lib_path):
    source = lib_path.read_text(encoding="utf-8")
    compile(source, str(lib_path), "exec")
    assert source.strip() == "" or lib_path.name == "__init__.py" or \
        "from __future__ import annotations" in source, f"{lib_path.name} lacks from __future__ import annotations"
    for package in HEAVY_AT_LOAD:
        lines = top_level_imports(source, package)
        assert not lines, f"{lib_path.name} imports {package} when it loads (line(s) {lines}): import it in functions"
    assert not used_ui_names(source), f"{lib_path.name} uses self.ui: the library takes widgets as arguments"


def test_library_is_packaged_with_the_hub():
    code = cmake_code(MODULE_CMAKE.read_text(encoding="utf-8"))
    match = re.search(r"file\(\s*GLOB\s+(\w+)[^)]*RELATIVE[^)]*RadiotherapyResponseLib/\*\.py", code)
    assert match, "RadiotherapyResponseLib/*.py must be globbed"
    assert "${%s}" % match.group(1) in cmake_module_blocks(code)["RadiotherapyResponse"], \
        "the library's scripts must be SCRIPTS of the hub module"
    # the glob is not recursive: a sub-package would be left out of the extension
    nested = [str(p.relative_to(LIB_DIR)) for p in LIB_DIR.rglob("*.py") if p.parent != LIB_DIR]
    assert not nested, f"RadiotherapyResponseLib files in sub-folders are not packaged: {nested}"
    assert (LIB_DIR / "__init__.py").is_file()


@pytest.mark.parametrize("module_name", JOB_MODULES)
def test_a_job_module_runs_no_analysis_in_its_widget(module_name):
    source = (MODULE_DIR / module_name).read_text(encoding="utf-8")
    calls = widget_calls(source, IN_PROCESS_CALLS)
    assert not calls, f"{module_name}: the widget computes in the GUI thread: {calls}"
    assert widget_calls(source, {"start"}), f"{module_name}: the widget starts no job"
    lines = len(source.splitlines())
    assert lines <= MODULE_LINE_BUDGET, f"{module_name} has {lines} lines (budget {MODULE_LINE_BUDGET})"


# --- CMake packaging -------------------------------------------------------------------------------------------------

def test_every_module_and_its_resources_are_packaged():
    code = cmake_code(MODULE_CMAKE.read_text(encoding="utf-8"))
    blocks = cmake_module_blocks(code)
    assert "RadiotherapyResponse" in blocks
    assert re.search(r"file\(\s*GLOB_RECURSE\s+(\w+)[^)]*RELATIVE[^)]*rtresponse/\*\.py", code), \
        "library scripts must be globbed recursively"
    for module_path in MODULE_FILES:
        stem = module_path.stem
        assert stem in blocks, f"{module_path.name} has no slicerMacroBuildScriptedModule(NAME {stem})"
        block = blocks[stem]
        assert re.search(rf"(^|\s){re.escape(module_path.name)}(\s|$)", block), f"{module_path.name} not in SCRIPTS"
        icon = f"Resources/Icons/{stem}.png"
        assert (MODULE_DIR / icon).is_file() and icon in block, f"{icon} missing or not in RESOURCES"
        ui = f"Resources/UI/{stem}.ui"
        if (MODULE_DIR / ui).exists() or f"UI/{stem}.ui" in module_path.read_text(encoding="utf-8"):
            assert (MODULE_DIR / ui).is_file() and ui in block, f"{ui} missing or not in RESOURCES"
        assert re.search(rf"slicer_add_python_unittest\(\s*SCRIPT\s+{re.escape(module_path.name)}\s*\)", code), \
            f"{module_path.name} self-test not registered with slicer_add_python_unittest"
    # slicerMacroBuildScriptedModule stops at configure time on a listed file that does not exist
    for listed in re.findall(r"(?<![\w/$])((?:Resources|rtresponse)/[\w./-]+\.\w+|\w+\.py)\b", code):
        if "*" not in listed:
            assert (MODULE_DIR / listed).is_file(), f"CMakeLists.txt lists missing file {listed}"


def test_top_level_cmake_has_extension_metadata():
    text = TOP_CMAKE.read_text(encoding="utf-8")
    values = cmake_set_values(text)
    for field in REQUIRED_EXTENSION_FIELDS:
        assert values.get(f"EXTENSION_{field}", "").strip(), f"EXTENSION_{field} is missing or empty"
    assert set(values["EXTENSION_DEPENDS"].split()) >= REQUIRED_DEPENDS
    homepage = values["EXTENSION_HOMEPAGE"]
    icon_url = values["EXTENSION_ICONURL"]
    assert icon_url.startswith(homepage + "/raw/main/"), icon_url
    assert (REPO / icon_url.split("/raw/main/", 1)[1]).is_file(), f"EXTENSION_ICONURL names a file not in the repo: {icon_url}"
    code = cmake_code(text)
    for statement in ("find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})", "add_subdirectory(RadiotherapyResponse)",
                      "include(${Slicer_EXTENSION_GENERATE_CONFIG})", "include(${Slicer_EXTENSION_CPACK})"):
        assert statement in code, f"top-level CMakeLists.txt lacks {statement}"
    assert re.search(r"project\(\s*RadiotherapyResponse\s*\)", code)


def test_extensions_index_entry_matches_cmake():
    entry = json.loads(INDEX_JSON.read_text(encoding="utf-8"))
    assert INDEX_REQUIRED <= set(entry), f"missing {INDEX_REQUIRED - set(entry)}"
    assert set(entry) <= INDEX_KEYS, f"not allowed by the catalog schema: {set(entry) - INDEX_KEYS}"
    assert "slicer-extension-catalog-entry-schema" in entry["$schema"]
    values = cmake_set_values(TOP_CMAKE.read_text(encoding="utf-8"))
    assert sorted(entry.get("build_dependencies", [])) == sorted(values["EXTENSION_DEPENDS"].split())
    assert entry["category"] == values["EXTENSION_CATEGORY"]
    assert entry["scm_url"].removesuffix(".git") == values["EXTENSION_HOMEPAGE"]
    assert isinstance(entry.get("tier", 1), int) and 1 <= entry.get("tier", 1) <= 5
