"""The house: no layer imports a layer above it, no import circles, no project imports hidden in functions,
and common/ knows no dataset."""
import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("import_layers", REPO / "benchmarks" / "import_layers.py")
import_layers = importlib.util.module_from_spec(spec)
spec.loader.exec_module(import_layers)


def test_no_arrow_runs_back_up_and_no_circle():
    picture = import_layers.picture()
    assert picture["back_up"] == [] and picture["layer_circles"] == [] and picture["module_circles"] == []
    assert picture["hidden"] == []  # a function-level import would hide a circle
    floors = picture["floors"]
    assert floors["ground"] < floors["data_processing"] < floors["common"] < floors["har_task"]
    assert floors["har_task"] < floors["HAR_centralized"] < floors["studies"]
    assert floors["har_task"] < floors["HAR_federated"] < floors["studies"]
    assert floors["common"] < floors["IR_centralized"]


def test_data_code_uses_only_the_ground():
    graph = import_layers.picture()["module_graph"]
    for module, targets in graph.items():
        if module.startswith("data_processing"):
            outside = {t for t in targets if not t.startswith("data_processing")}
            assert all(t.startswith("ground.") for t in outside), (module, outside)


def test_common_imports_no_dataset_module():
    graph = import_layers.picture()["module_graph"]
    for module, targets in graph.items():
        if module.startswith("common"):
            assert not [t for t in targets if t.startswith(import_layers.DATASET_MODULES)], module


def test_experiments_build_on_the_har_task_not_on_each_other():
    graph = import_layers.picture()["module_graph"]
    for module, targets in graph.items():
        if module.startswith("HAR_federated"):
            assert not any(t.startswith(("HAR_centralized", "studies")) for t in targets), module
        if module.startswith("HAR_centralized"):
            assert not any(t.startswith(("HAR_federated", "studies")) for t in targets), module  # the study runs both


def test_the_picture_sees_imports_inside_functions(tmp_path):
    package = tmp_path / "common"
    package.mkdir()
    (package / "a.py").write_text("def f():\n    from common import b\n")
    (package / "b.py").write_text("import common.a\n")
    picture = import_layers.picture(tmp_path, ("common",))
    assert picture["hidden"] == [("common.a", "common.b")] and picture["module_circles"] == [["common.a", "common.b"]]


def test_the_picture_sees_a_dataset_import_in_common(tmp_path):
    for package, text in (("common", "from data_processing.har import load_har\n"), ("data_processing", "")):
        (tmp_path / package).mkdir()
        (tmp_path / package / ("a.py" if package == "common" else "har.py")).write_text(text)
    graph = import_layers.picture(tmp_path, ("common", "data_processing"))["module_graph"]
    assert graph["common.a"] == {"data_processing.har"}
