"""Large CSV recordings (Capture-24 style, gzipped, a time column, free-text annotations mapped by a dictionary)
read chunk by chunk into the corpus: the same windows as one pass, labels mapped, gaps respected, and each bad
file (truncated, another rate, an unknown annotation) one line while the good files of the folder are prepared."""
import numpy as np
import pandas as pd
import pytest

from data import prepare_corpus
from data_processing.corpus import Corpus, LargeCsv, prepare
from data_processing.large_csv import stream_csv_windows
from data_processing.recordings import WindowSettings

SLEEP, WALK = "7030 sleeping;MET 0.95", "17150 walking household without observable loads;MET 2.0"
SETTINGS = WindowSettings(100.0, 50.0, 128, 64)


def capture24_file(path, rate=100, seconds=120, gap_at=None, annotations=(SLEEP, "", WALK), hz=5.0):
    """A file as Capture-24 ships them: time,x,y,z,annotation at `rate` Hz, time stamps with a zone suffix."""
    n = rate * seconds
    t = np.arange(n) / rate
    if gap_at is not None:
        t[gap_at * rate:] += 10.0  # ten seconds missing
    start = pd.Timestamp("2016-11-13 02:18:00")
    stamps = (start + pd.to_timedelta(t, unit="s")).strftime("%Y-%m-%d %H:%M:%S.%f") + " [Europe/London]"
    rng = np.random.default_rng(len(path.name))
    wave = np.sin(2 * np.pi * hz * t)
    third = n // len(annotations)
    frame = pd.DataFrame({"time": stamps, "x": wave + 0.01 * rng.normal(size=n), "y": 0.5 * wave,
                          "z": 1.0 + 0.01 * rng.normal(size=n),
                          "annotation": np.repeat(annotations, third).tolist() + [annotations[-1]] * (n - 3 * third)})
    frame.to_csv(path, index=False, compression="gzip")
    return path


def label_map(path):
    path.write_text(f"annotation,label:Willetts2018\n\"{SLEEP}\",sleep\n\"{WALK}\",walking\n")
    return path


def test_chunks_give_one_passs_windows_labels_and_segments(tmp_path):
    path = capture24_file(tmp_path / "P001.csv.gz", gap_at=60)
    mapping = {SLEEP: "sleep", WALK: "walking"}
    read = {rows: [list(part) for part in zip(*stream_csv_windows(
        path, ("x", "y", "z"), SETTINGS, "time", "annotation", mapping, ("sleep", "walking"), rows))]
        for rows in (997, 10**7)}
    chunked, whole = ([np.concatenate(part) for part in parts] for parts in read.values())
    np.testing.assert_allclose(chunked[0], whole[0], atol=1e-4)
    np.testing.assert_array_equal(chunked[1], whole[1])
    windows, labels, segments = chunked
    assert windows.shape[1:] == (3, 128) and set(segments) == {0, 1}  # the 10 s gap ends a segment
    per_segment = [int((segments == s).sum()) for s in (0, 1)]
    assert per_segment == [(60 * 50 - 128) // 64 + 1] * 2  # no window spans the gap; 60 s a side at 50 Hz
    assert set(labels) == {-1, 0, 1} and (labels[:20] == 0).all() and (labels[-10:] == 1).all()
    # 5 Hz stays 5 Hz through the 100 -> 50 Hz resampling: the spectrum's peak, at 50/128 Hz a bin
    assert np.argmax(np.abs(np.fft.rfft(windows[5, 0]))) == round(5 * 128 / 50)


def test_a_folder_prepares_its_good_files_and_each_bad_one_is_one_line(tmp_path, capsys):
    folder = tmp_path / "capture24"
    folder.mkdir()
    capture24_file(folder / "P001.csv.gz")
    capture24_file(folder / "P002.csv.gz", gap_at=30)
    truncated = capture24_file(folder / "P003.csv.gz", seconds=600)
    truncated.write_bytes(truncated.read_bytes()[: len(truncated.read_bytes()) // 2])
    capture24_file(folder / "P004.csv.gz", rate=25)
    capture24_file(folder / "P005.csv.gz", annotations=(SLEEP, "9999 juggling;MET 4", WALK))
    mapping = label_map(tmp_path / "annotation-label-dictionary.csv")
    with pytest.raises(SystemExit) as exit_info:
        prepare_corpus.main(["--out", str(tmp_path / "corpus"), "--datasets", f"large_csv:{folder}", "--step", "64",
                             "--sample_rate_hz", "100", "--label_column", "annotation", "--label_map", str(mapping),
                             "--label_scheme", "label:Willetts2018", "--subject_pattern", r"P(\d+)",
                             "--chunk_rows", "1000", "--shard_windows", "50"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 1 and "Traceback" not in out
    left_out = [line for line in out.splitlines() if line.startswith("left out: ")]
    assert len(left_out) == 3
    assert "P003.csv.gz: unreadable near row" in left_out[0]
    assert "P004.csv.gz: sampled at 25 Hz by its time stamps, not the --sample_rate_hz 100" in left_out[1]
    assert "P005.csv.gz: annotation '9999 juggling;MET 4' (row" in left_out[2] and "not in the label map" in out
    corpus = Corpus(tmp_path / "corpus")
    expected = {1: (120 * 50 - 128) // 64 + 1, 2: (30 * 50 - 128) // 64 + 1 + (90 * 50 - 128) // 64 + 1}
    assert {s: int((corpus.subject == s).sum()) for s in np.unique(corpus.subject)} == expected
    assert corpus.settings["classes"] == ["sleep", "walking"] and set(np.unique(corpus.label)) == {-1, 0, 1}
    assert len(np.unique(corpus.recording[corpus.subject == 2])) == 2  # P002's two segments
    # the truncated file's first chunks were written before it failed: taken back out, nothing left of them
    assert sum(s["windows"] for s in corpus.index["shards"]) == sum(expected.values())
    assert all(s["open"] in corpus.index["sources"] for s in corpus.index["shards"] if s["open"])
    # a rerun with the bad files fixed adds only them
    capture24_file(folder / "P003.csv.gz")
    index, failures = prepare(tmp_path / "corpus", [f"large_csv:{folder}"], SETTINGS, 50, log=lambda *a: None,
                              large_csv=LargeCsv(label_column="annotation", label_map=str(mapping),
                                                 label_scheme="label:Willetts2018", subject_pattern=r"P(\d+)",
                                                 chunk_rows=1000))
    assert len(failures) == 2 and set(np.unique(Corpus(tmp_path / "corpus").subject)) == {1, 2, 3}


def test_a_kill_in_the_middle_of_a_large_file_reads_that_file_again(tmp_path, monkeypatch):
    from data_processing import corpus as corpus_module
    folder = tmp_path / "big"
    folder.mkdir()
    capture24_file(folder / "P001.csv.gz", seconds=300)
    options = LargeCsv(chunk_rows=1000)
    calls = []
    real = corpus_module.stream_csv_windows

    def killed(*args, **kwargs):
        for i, part in enumerate(real(*args, **kwargs)):
            calls.append(i)
            if i == 15:
                raise KeyboardInterrupt  # a kill: no except clause of ours runs
            yield part

    monkeypatch.setattr(corpus_module, "stream_csv_windows", killed)
    with pytest.raises(KeyboardInterrupt):
        prepare(tmp_path / "corpus", [f"large_csv:{folder}"], SETTINGS, 40, log=lambda *a: None, large_csv=options)
    monkeypatch.undo()
    assert any(s["open"] for s in corpus_module._read_index(tmp_path / "corpus")["shards"])
    index, failures = prepare(tmp_path / "corpus", [f"large_csv:{folder}"], SETTINGS, 40, log=lambda *a: None,
                              large_csv=options)
    assert not failures and sum(s["windows"] for s in index["shards"]) == (300 * 50 - 128) // 64 + 1
