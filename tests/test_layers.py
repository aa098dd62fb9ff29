"""Imports point one way: every module of facelab/ is parsed (imports inside functions and under
TYPE_CHECKING included) and each import across packages is checked against the layer order.

Layers, lowest first (a package may import its own layer's package and any lower layer):
- core: mechanisms with no knowledge of faces or files' content (errors, registries, types, config, ...).
- media: image and video files (decode, encode, PNG, metadata embedded in JPEG/PNG). It knows nothing
  of faces, so it must not import face.
- face: the face primitives (detect, landmarks, align, masks, identity, ...). It may read images through
  media (a reference identity is computed from still images); media never imports face.
- faceset: the face record format and whole-set tools. Every phase reads or writes face records, and
  faceset itself only needs face (alignment, masks, quality, identity) and media (the embedded
  metadata): so it sits above face and below the phases, and must not import a phase.
- the phases: extract, train, xseg, merge, evaluate, provenance, export. A phase imports another phase only by
  an edge listed in PHASE_EDGES, with its reason.
- workflow: runs phases in order (the one-command swap, pretraining's gathering).
- live: real-time swapping (capture, track, swap, merge, output): it runs extraction's, export's, merge's
  and provenance's functions frame by frame.
- studio: the local web app (it runs workflow and phase functions and starts CLI jobs).
- cli: parses, calls the library, reports.

The root package ``facelab`` holds only the version and the tool name, and any module may import it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import facelab

ROOT = Path(facelab.__file__).parent

LOW = ("core", "media", "face", "faceset")
PHASES = frozenset({"extract", "train", "xseg", "merge", "evaluate", "provenance", "export"})
HIGH = ("workflow", "live", "studio", "cli")

# phase -> phase imports that are part of the design
PHASE_EDGES: dict[tuple[str, str], str] = {
    ("merge", "train"): "merge runs the trained model: it loads it through train.inference",
    ("merge", "xseg"): "the xseg-* mask modes predict masks through xseg.infer (and read labels' masks)",
    ("merge", "provenance"): "every merged output is marked through provenance.marker",
    ("merge", "export"): "merge runs any model export's loader gives (a model folder or a .dfm / .onnx file) "
                         "through the FaceSwapper contract",
    ("export", "train"): "export writes a trained model's generator as ONNX; its loader returns model folders "
                         "through train.inference",
    ("evaluate", "extract"): "evaluation finds the faces of the result with extraction's analyzer and options, "
                             "so it measures the faces extraction would see",
}

def _rank(package: str) -> int:
    if package in LOW:
        return LOW.index(package)
    if package in PHASES:
        return len(LOW)
    return len(LOW) + 1 + HIGH.index(package)


def allowed(importer: str, imported: str) -> bool:
    """Whether package ``importer`` may import package ``imported`` (both first-level packages of facelab)."""
    if imported in ("", importer):
        return True
    if importer in PHASES and imported in PHASES:
        return (importer, imported) in PHASE_EDGES
    return _rank(imported) < _rank(importer)


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    importer: str  # first-level package of the importing module ("" for the root package)
    module: str  # the imported facelab module

    @property
    def imported(self) -> str:
        parts = self.module.split(".")
        return parts[1] if len(parts) > 1 else ""

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT.parent)}:{self.line}: {self.importer} -> {self.module}"


def _module_name(path: Path) -> list[str]:
    parts = ["facelab", *path.relative_to(ROOT).with_suffix("").parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def _targets(node: ast.Import | ast.ImportFrom, path: Path) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:  # relative: from the module's package upwards
        package = _module_name(path)
        if path.name != "__init__.py":
            package = package[:-1]
        base = package[: len(package) - node.level + 1]
        module = ".".join([*base, *([node.module] if node.module else [])])
    else:
        module = node.module or ""
    if module == "facelab":  # `from facelab import core` names a package; `__version__` the root
        return [f"facelab.{a.name}" if (ROOT / a.name).exists() or (ROOT / f"{a.name}.py").exists() else module
                for a in node.names]
    return [module]


def facelab_imports() -> list[Import]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        name = _module_name(path)
        importer = "cli" if name[1:] == ["__main__"] else (name[1] if len(name) > 1 else "")  # python -m facelab
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for module in _targets(node, path):
                    if module == "facelab" or module.startswith("facelab."):
                        found.append(Import(path, node.lineno, importer, module))
    return found


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(LOW) | PHASES | set(HIGH)


def test_imports_follow_the_layer_order() -> None:
    imports = facelab_imports()
    assert len(imports) > 300  # the parse found the package's imports
    wrong = [str(i) for i in imports if not allowed(i.importer, i.imported)]
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_listed_phase_edges_are_used() -> None:
    """An edge nothing uses any more is dropped from the lists, so they say what the code does."""
    used = {(i.importer, i.imported) for i in facelab_imports()}
    assert not set(PHASE_EDGES) - used


def test_the_check_sees_what_it_must_refuse() -> None:
    assert not allowed("faceset", "extract") and not allowed("media", "face") and not allowed("core", "media")
    assert not allowed("extract", "merge") and not allowed("train", "workflow") and not allowed("workflow", "cli")
    assert allowed("face", "media") and allowed("merge", "train") and allowed("cli", "core")
    assert allowed("provenance", "faceset") and allowed("workflow", "merge") and allowed("faceset", "")
    module = ROOT / "faceset" / "sort" / "identity.py"
    source = "def f():\n    from ...extract import pipeline\n    import facelab.extract.options\n"
    nodes = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert [m for n in nodes for m in _targets(n, module)] == ["facelab.extract", "facelab.extract.options"]
    node = ast.parse("from facelab import __version__, core").body[0]
    assert isinstance(node, ast.ImportFrom) and _targets(node, module) == ["facelab", "facelab.core"]
