"""The house: no layer imports a layer above it, no import circles, no project imports hidden in functions."""
import importlib.util
from pathlib import Path

from common.provenance import import_closure, module_files, source_digest

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("import_layers", REPO / "benchmarks" / "import_layers.py")
import_layers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(import_layers)


def test_no_arrow_runs_back_up_and_no_circle():
    picture = import_layers.picture()
    assert picture["back_up"] == [] and picture["layer_circles"] == [] and picture["module_circles"] == []
    assert picture["hidden"] == []  # a function-level import would hide a circle
    floors = picture["floors"]
    assert floors["ground"] < floors["data_processing"] < floors["common"] < floors["HAR_federated"]
    assert floors["common"] < floors["IR_centralized"]


def test_data_code_uses_only_the_ground():
    graph = import_layers.picture()["module_graph"]
    for module, targets in graph.items():
        if module.startswith("data_processing"):
            outside = {t for t in targets if not t.startswith("data_processing")}
            assert all(t.startswith("ground.") for t in outside), (module, outside)


def test_federated_code_builds_on_the_har_task_not_on_centralized_entrypoints():
    graph = import_layers.picture()["module_graph"]
    for module, targets in graph.items():
        if module.startswith("HAR_federated"):
            assert not any(t.startswith("HAR_centralized") for t in targets), module
        if module.startswith("HAR_centralized") and module != "HAR_centralized.study":
            assert not any(t.startswith("HAR_federated") for t in targets), module  # only the study runs both


def test_the_picture_sees_imports_inside_functions(tmp_path, monkeypatch):
    package = tmp_path / "common"
    package.mkdir()
    (package / "a.py").write_text("def f():\n    from common import b\n")
    (package / "b.py").write_text("import common.a\n")
    picture = import_layers.picture(tmp_path, ("common",))
    assert picture["hidden"] == [("common.a", "common.b")] and picture["module_circles"] == [["common.a", "common.b"]]


def test_the_source_digest_follows_the_imports(tmp_path):
    package = tmp_path / "common"
    package.mkdir()
    (package / "a.py").write_text("from common import b\n")
    (package / "b.py").write_text("x = 1\n")
    (package / "c.py").write_text("y = 2\n")
    where = {"repo": tmp_path, "packages": ("common",)}
    assert import_closure("common.a", files=module_files(**{"repo": tmp_path, "packages": ("common",)})) == [
        "common.a", "common.b"]
    before = source_digest("common.a", **where)
    (package / "c.py").write_text("y = 3\n")  # not imported by a: the digest stays
    assert source_digest("common.a", **where) == before
    (package / "b.py").write_text("x = 2\n")  # imported: the digest moves
    assert source_digest("common.a", **where) != before
