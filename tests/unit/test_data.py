"""Data loading: GLUE TSV quirks, user csv/json files, the synthetic corpus, task lookup."""

from __future__ import annotations

import dataclasses
import json
import re

import datasets
import pytest
import torch

from dynakd.data import (
    SYNTHETIC_VOCAB_WORDS,
    get_task,
    infer_task_from_data,
    load_glue_dir,
    load_glue_hub,
    load_task_data,
    load_user_files,
    subsample,
    synthetic_sentiment,
)
from dynakd.errors import DynaKDError

MNLI_TRAIN_HEADER = (
    "index promptID pairID genre sentence1_binary_parse sentence2_binary_parse sentence1_parse "
    "sentence2_parse sentence1 sentence2 label1 gold_label"
).split()
MNLI_DEV_HEADER = MNLI_TRAIN_HEADER[:-1] + ["label2", "label3", "label4", "label5", "gold_label"]


def write_tsv(path, rows, header=None, bom=False):
    """Write rows as GLUE does: tab separated, no quoting, '\\n' line ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (["\t".join(header)] if header else []) + ["\t".join(row) for row in rows]
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")


def mnli_row(header, premise, hypothesis, gold):
    row = ["x"] * len(header)
    row[header.index("sentence1")], row[header.index("sentence2")], row[-1] = premise, hypothesis, gold
    return row


@pytest.fixture
def glue_dir(tmp_path):
    """A small GLUE directory with every task's quirks."""
    write_tsv(
        tmp_path / "SST-2/train.tsv",
        [["it 's a \" charming film ", "1"], ["dull and slow ", "0"]],
        ["sentence", "label"],
    )
    write_tsv(tmp_path / "SST-2/dev.tsv", [["fine ", "1"]], ["sentence", "label"])
    cola = [["gj04", "1", "", "Our friends won't buy this analysis."], ["gj04", "0", "*", "They drank the pub."]]
    write_tsv(tmp_path / "CoLA/train.tsv", cola)
    write_tsv(tmp_path / "CoLA/dev.tsv", cola[:1])
    mrpc_header = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    mrpc = [["1", "11", "12", 'He said "yes".', "He agreed."], ["0", "13", "14", "A cat.", "A dog."]]
    write_tsv(tmp_path / "MRPC/train.tsv", mrpc, mrpc_header, bom=True)
    write_tsv(tmp_path / "MRPC/dev.tsv", mrpc[1:], mrpc_header, bom=True)
    qqp_header = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
    qqp = [
        ["1", "1", "2", "How do I cook?", "How to cook?", "1"],
        ["2", "3", "4", "Why is the sky blue?"],
        ["3", "5", "6", "What is AI?", "Who is Al?", "0"],
    ]
    write_tsv(tmp_path / "QQP/train.tsv", qqp, qqp_header)
    write_tsv(tmp_path / "QQP/dev.tsv", qqp[:1], qqp_header)
    write_tsv(
        tmp_path / "MNLI/train.tsv",
        [
            mnli_row(MNLI_TRAIN_HEADER, "A man eats.", "Someone eats.", "entailment"),
            mnli_row(MNLI_TRAIN_HEADER, "A man eats.", "A man sleeps.", "contradiction"),
            mnli_row(MNLI_TRAIN_HEADER, "A man eats.", "A man eats rice.", "neutral"),
        ],
        MNLI_TRAIN_HEADER,
    )
    write_tsv(tmp_path / "MNLI/dev_matched.tsv", [mnli_row(MNLI_DEV_HEADER, "P1", "H1", "neutral")], MNLI_DEV_HEADER)
    write_tsv(
        tmp_path / "MNLI/dev_mismatched.tsv",
        [mnli_row(MNLI_DEV_HEADER, "P2", "H2", "contradiction"), mnli_row(MNLI_DEV_HEADER, "P3", "H3", "entailment")],
        MNLI_DEV_HEADER,
    )
    stsb_header = "index genre filename year old_index source1 source2 sentence1 sentence2 score".split()
    stsb = [
        ["0", "main", "f", "2012", "1", "s", "s", "A plane takes off.", "An air plane is taking off.", "5.000"],
        ["1", "main", "f", "2012", "4", "s", "s", "A man plays.", "A woman cooks.", "0.500"],
    ]
    write_tsv(tmp_path / "STS-B/train.tsv", stsb, stsb_header)
    write_tsv(tmp_path / "STS-B/dev.tsv", stsb[1:], stsb_header)
    pair = [
        ["0", "Who?", "Him.", "entailment"],
        ["1", "When?", "Blue.", "not_entailment"],
        ["2", "Why?", "Because.", "maybe"],
    ]
    for folder, header in (
        ("QNLI", ["index", "question", "sentence", "label"]),
        ("RTE", ["index", "sentence1", "sentence2", "label"]),
    ):
        write_tsv(tmp_path / folder / "train.tsv", pair, header)
        write_tsv(tmp_path / folder / "dev.tsv", pair[1:2], header)
    return tmp_path


def test_sst2_keeps_its_trailing_space_and_a_bare_quote(glue_dir):
    """Texts as the file has them, as the hub's GLUE gives them: SST-2's trailing space is a token of its own to a
    byte-level BPE tokenizer (a decoder's class token); stripped, the inputs were not the hub's rows."""
    data = load_glue_dir(get_task("SST-2"), str(glue_dir))
    assert {name: len(part) for name, part in data.items()} == {"train": 2, "validation": 1}
    assert data["train"]["text_a"] == ["it 's a \" charming film ", "dull and slow "]
    assert data["train"]["label"] == [1, 0]
    assert data["train"].column_names == ["text_a", "label"]
    assert data["train"].features["label"].names == ["negative", "positive"]


def test_cola_has_no_header(glue_dir):
    data = load_glue_dir(get_task("cola"), str(glue_dir))
    assert data["train"]["text_a"] == ["Our friends won't buy this analysis.", "They drank the pub."]
    assert data["train"]["label"] == [1, 0]
    assert len(data["validation"]) == 1


def test_mrpc_bom_header_and_pairs(glue_dir):
    data = load_glue_dir(get_task("mrpc"), str(glue_dir))
    assert data["train"].column_names == ["text_a", "text_b", "label"]
    assert data["train"][0] == {"text_a": 'He said "yes".', "text_b": "He agreed.", "label": 1}
    assert data["validation"]["label"] == [0]


def test_qqp_skips_malformed_row_and_logs_count(glue_dir, capsys):
    data = load_glue_dir(get_task("qqp"), str(glue_dir), splits=["train"])
    assert list(data) == ["train"]
    assert data["train"]["text_a"] == ["How do I cook?", "What is AI?"]
    assert data["train"]["label"] == [1, 0]
    assert "skipped 1 malformed row(s)" in capsys.readouterr().err  # (a note, on stderr: notes.py)


def test_mnli_matched_and_mismatched_string_labels(glue_dir):
    data = load_glue_dir(get_task("mnli"), str(glue_dir))
    assert list(data) == ["train", "validation_matched", "validation_mismatched"]
    assert data["train"]["label"] == [0, 2, 1]
    assert data["train"]["text_b"] == ["Someone eats.", "A man sleeps.", "A man eats rice."]
    assert data["validation_matched"]["label"] == [1]
    assert data["validation_mismatched"]["text_a"] == ["P2", "P3"]
    assert data["validation_mismatched"]["label"] == [2, 0]


def test_stsb_float_scores(glue_dir):
    data = load_glue_dir(get_task("sts-b"), str(glue_dir))
    assert data["train"]["label"] == pytest.approx([5.0, 0.5])
    assert data["train"].features["label"].dtype == "float32"
    assert data["validation"]["text_b"] == ["A woman cooks."]


@pytest.mark.parametrize("task", ["qnli", "rte"])
def test_entailment_string_labels_and_unknown_label_skipped(glue_dir, task):
    data = load_glue_dir(get_task(task), str(glue_dir))
    assert data["train"]["label"] == [0, 1]
    assert data["train"]["text_a"] == ["Who?", "When?"]
    assert data["validation"]["label"] == [1]


def test_labels_in_another_case_are_read_and_unknown_ones_named(tmp_path, capsys):
    """'Entailment' was an unknown label: its rows were dropped (from dev too, scored on fewer rows), the warning named
    no value; an STS-B score of nan (the mark of a row without a label) or inf was read as a score."""
    write_tsv(tmp_path / "RTE/train.tsv", [["0", "A.", "B.", "Entailment"], ["1", "C.", "D.", " NOT_ENTAILMENT "],
                                           ["2", "E.", "F.", "maybe"]], ["index", "sentence1", "sentence2", "label"])
    data = load_glue_dir(get_task("rte"), str(tmp_path), splits=["train"])
    assert data["train"]["label"] == [0, 1]
    assert ("skipped 0 malformed row(s) and 1 row(s) with an unknown label ('maybe' (1); rte's labels: 0..1 or "
            "entailment, not_entailment)") in capsys.readouterr().err
    write_tsv(tmp_path / "STS-B/train.tsv", [["0", "g", "gn", "2015", "0", "s1", "s2", "A.", "B.", s]
                                             for s in ("nan", "inf", "3.8")],
              ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2",
               "score"])
    assert load_glue_dir(get_task("stsb"), str(tmp_path), splits=["train"])["train"]["label"] == pytest.approx([3.8])


def test_a_file_of_another_layout_is_named_not_read_as_empty(tmp_path):
    """CoLA's reader (four columns, no header) read another task's file, or GLUE's CoLA test file, as rows of the
    wrong width, all skipped: the error was 'the validation split has no examples'."""
    write_tsv(tmp_path / "CoLA/train.tsv", [["0", "Some sentence."], ["1", "Another."]], ["index", "sentence"])
    with pytest.raises(DynaKDError, match=r"CoLA[/\\]train\.tsv: no row has the 4 columns of cola's file: source, "
                                          r"label, original_label, sentence, with no header line \(its rows have 2\): "
                                          r"is it another task's file, or GLUE's test file"):
        load_glue_dir(get_task("cola"), str(tmp_path), splits=["train"])


def test_a_file_whose_every_row_is_skipped_is_named_with_why(tmp_path, capsys):
    """STS-B scores written as words, or with a decimal comma, skipped every row with a warning, and the run ended in
    'the train split has no examples', naming neither the file nor why; a CoLA file with a header line keeps its rows
    and is told that CoLA's have none (a user's walkthrough, 2026-12-07)."""
    header = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2",
              "score"]
    write_tsv(tmp_path / "STS-B/train.tsv", [["0", "g", "f", "2015", "0", "s", "s", "A.", "B.", s]
                                             for s in ("similar", "different")], header)
    with pytest.raises(DynaKDError, match=r"STS-B[/\\]train\.tsv: skipped 0 malformed row\(s\) and 2 row\(s\) with an "
                                          r"unknown label \('similar' \(1\), 'different' \(1\); stsb's labels: a "
                                          r"finite number\), which leaves no row$"):
        load_glue_dir(get_task("stsb"), str(tmp_path), splits=["train"])
    write_tsv(tmp_path / "STS-B/train.tsv", [["0", "g", "f", "2015", "0", "s", "s", "A.", "B.", s]
                                             for s in ("3,8", "1,25")], header)
    with pytest.raises(DynaKDError, match=r"a finite number; write decimals with a point \(3\.8, not 3,8\)\)"):
        load_glue_dir(get_task("stsb"), str(tmp_path), splits=["train"])
    (tmp_path / "CoLA").mkdir()
    (tmp_path / "CoLA/train.tsv").write_text("source\tlabel\toriginal_label\tsentence\ngj04\t1\t\tA fine one.\n")
    assert load_glue_dir(get_task("cola"), str(tmp_path), splits=["train"])["train"]["label"] == [1]
    assert "('label' (1); cola's labels: 0..1 or unacceptable, acceptable; cola's files have no header line: delete " \
           "it)" in capsys.readouterr().err


def test_wnli_is_named_as_not_a_task_with_the_way_to_read_it():
    """--task wnli suggested qnli, whose labels are WNLI's reversed."""
    with pytest.raises(DynaKDError, match="GLUE's WNLI is not one of DynaKD's tasks .*--task csv"):
        get_task("wnli")


def test_missing_file_names_full_path_and_dev_only_works(glue_dir):
    (glue_dir / "SST-2/train.tsv").unlink()
    assert len(load_glue_dir(get_task("sst2"), str(glue_dir), splits=["validation"])["validation"]) == 1
    with pytest.raises(DynaKDError, match=r"SST-2[/\\]train\.tsv"):
        load_glue_dir(get_task("sst2"), str(glue_dir))
    with pytest.raises(DynaKDError, match="no split 'test'"):
        load_glue_dir(get_task("sst2"), str(glue_dir), splits=["test"])


def test_hub_failure_becomes_dynakd_error(monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DynaKDError, match="could not load GLUE sst2 from the Hugging Face hub.*--data-dir"):
        load_glue_hub(get_task("sst2"))


def test_load_task_data_dispatches_to_glue_dir(glue_dir):
    data = load_task_data(get_task("rte"), data_dir=str(glue_dir), splits=["validation"])
    assert list(data) == ["validation"]


def test_get_task_aliases_and_unknown_suggestion():
    assert get_task("STS-B").name == "stsb" and get_task("Sst2").glue_dir == "SST-2"
    assert get_task("mnli").eval_splits == ("validation_matched", "validation_mismatched")
    with pytest.raises(DynaKDError, match=r"unknown task 'sst3'.*mrpc.*did you mean 'sst2'\?"):
        get_task("sst3")
    with pytest.raises(DynaKDError, match="has 2 label"):
        get_task("sst2", num_labels=3)


def test_user_task_metrics_follow_label_count():
    assert get_task("csv", num_labels=2).metrics == ("accuracy", "f1")
    assert get_task("json", num_labels=4).metrics == ("accuracy", "macro_f1")
    regression = get_task("CSV", num_labels=1)
    assert regression.is_regression and regression.metrics == ("pearson", "spearmanr")


def write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(row) for row in rows]) + "\n", encoding="utf-8")
    return str(path)


def test_csv_string_labels_sorted_over_both_splits(tmp_path):
    header = ["review", "extra", "sentiment"]
    train = write_csv(tmp_path / "train.csv", header, [["good", "x", "pos"], ["bad", "y", "neg"]])
    dev = write_csv(tmp_path / "dev.csv", header, [["meh", "z", "neutral"], ["ok", "w", "pos"]])
    data = load_user_files("csv", train, dev, ["review"], "sentiment")
    assert data["train"].column_names == ["text_a", "label"]
    assert data["train"].features["label"].names == ["neg", "neutral", "pos"]
    assert data["train"]["label"] == [2, 0] and data["validation"]["label"] == [1, 2]
    task = infer_task_from_data(get_task("csv"), data, ["review"])
    assert (task.num_labels, task.label_names, task.metrics) == (3, ("neg", "neutral", "pos"), ("accuracy", "macro_f1"))


def test_json_lines_and_array_pairs(tmp_path):
    lines = tmp_path / "train.jsonl"
    lines.write_text("\n".join(json.dumps({"q": f"q{i}", "a": f"a{i}", "label": i % 2}) for i in range(4)) + "\n")
    array = tmp_path / "dev.json"
    array.write_text(json.dumps([{"q": "x", "a": "y", "label": 1.5}, {"q": "z", "a": "w", "label": 2}]))
    train = load_user_files("json", str(lines), None, ["q", "a"], "label")["train"]
    assert train.column_names == ["text_a", "text_b", "label"] and train["label"] == [0, 1, 0, 1]
    assert infer_task_from_data(get_task("json"), {"train": train}).num_labels == 2
    dev = load_user_files("json", None, str(array), ["q", "a"], "label")
    assert dev["validation"]["label"] == pytest.approx([1.5, 2.0])
    assert infer_task_from_data(get_task("json"), dev).is_regression


def test_tsv_files_are_read_tab_separated_and_files_may_differ_in_extra_columns(tmp_path):
    train = tmp_path / "train.tsv"
    train.write_text("id\treview\tlabel\n1\tgood, really\tpos\n2\tbad\tneg\n")
    dev = write_csv(tmp_path / "dev.csv", ["review", "label"], [["fine", "pos"]])
    data = load_user_files("csv", str(train), dev, ["review"], "label")
    assert data["train"]["text_a"] == ["good, really", "bad"] and data["validation"]["text_a"] == ["fine"]
    assert data["validation"].features["label"].names == ["neg", "pos"]


def test_a_tsv_cell_starting_with_a_quote_is_text_as_in_glue_files(tmp_path, capsys):
    """With csv quoting the quote opened a field that ran to the next quote: three rows read as two, the first text
    holding a tab, a newline and another row's label (a real GLUE file failed to parse instead)."""
    train = tmp_path / "train.tsv"
    train.write_text('text\tlabel\n"a great movie\t1\nan awful film"\t0\nfine\t1\n')
    data = load_user_files("csv", str(train), None, ["text"], "label")["train"]
    assert data["text_a"] == ['"a great movie', 'an awful film"', "fine"] and data["label"] == [1, 0, 1]
    assert f"note: {train} holds quotes that are not csv quoting" in capsys.readouterr().out


def test_a_tsv_quoted_as_csv_writers_quote_is_read_so(tmp_path):
    """A .tsv written by pandas or Python's csv quotes a cell holding a quote or a tab; read with quotes as text its
    cell kept the doubled quotes, or the row failed to parse."""
    import csv

    path = tmp_path / "written.tsv"
    with path.open("w", newline="") as handle:
        csv.writer(handle, delimiter="\t").writerows([["text", "label"], ['He said "great" twice', "1"],
                                                      ["plain text", "0"], ["tab\tinside", "1"]])
    data = load_user_files("csv", str(path), None, ["text"], "label")["train"]
    assert data["text_a"] == ['He said "great" twice', "plain text", "tab\tinside"] and data["label"] == [1, 0, 1]
    lines = tmp_path / "lines.tsv"  # a text of two lines, which a csv writer quotes: it was read as two rows
    with lines.open("w", newline="") as handle:
        csv.writer(handle, delimiter="\t").writerows([["label", "text"], ["pos", "fine"], ["neg", "multi\nline review"],
                                                      ["pos", 'ok "quoted" word'], ["neg", "bad"]])
    data = load_user_files("csv", str(lines), None, ["text"], "label")["train"]
    assert data["text_a"] == ["fine", "multi\nline review", 'ok "quoted" word', "bad"]
    assert data.features["label"].names == ["neg", "pos"] and data["label"] == [1, 0, 1, 0]
    long = tmp_path / "long.tsv"  # a cell past csv's default field limit, and a blank line (pandas skips it)
    long.write_text('text\tlabel\n"' + "a" * 140_000 + ' ""q"""\t1\nplain\t0\n \n')
    assert load_user_files("csv", str(long), None, ["text"], "label")["train"]["text_a"][0].endswith('a "q"')


def test_csv_cells_that_pandas_reads_as_missing_are_text(tmp_path):
    """``NA``, ``null``, ``None`` are words of a text or names of a class; only an empty cell is missing."""
    train = write_csv(tmp_path / "train.csv", ["text", "label"],
                      [["NA", "weather"], ["null", "None"], ["None", "flight"], ["nan", "None"]])
    data = load_user_files("csv", train, None, ["text"], "label")["train"]
    assert data["text_a"] == ["NA", "null", "None", "nan"]
    assert data.features["label"].names == ["None", "flight", "weather"] and data["label"] == [2, 0, 1, 0]
    empty = write_csv(tmp_path / "empty.csv", ["text", "label"], [["a", ""], ["b", "x"]])
    with pytest.raises(DynaKDError, match="have no value in label column 'label'"):
        load_user_files("csv", empty, None, ["text"], "label")


def test_csv_empty_text_becomes_empty_string_and_int_labels_kept(tmp_path, function_hashing):
    train = write_csv(tmp_path / "train.csv", ["a", "b", "y"], [["one", "", "2"], ["two", "three", "0"]])
    data = load_user_files("csv", train, None, ["a", "b"], "y")
    assert data["train"]["text_b"] == ["", "three"] and data["train"]["label"] == [2, 0]
    assert not function_hashing  # the map that fills empty texts names its own fingerprint
    assert infer_task_from_data(get_task("csv"), data).num_labels == 3


def test_label_names_are_read_without_spaces_around_them_and_case_twins_are_refused(tmp_path, capsys):
    """"neg " beside "neg" made a class of its own, its space unseen in the list of names; "NEG" beside "neg" made
    two classes (where evaluate matches names in any case)."""
    train = write_csv(tmp_path / "train.csv", ["text", "label"], [["a", "neg "], ["b", " pos"], ["c", "neg"]])
    dev = write_csv(tmp_path / "dev.csv", ["text", "label"], [["d", "pos"]])
    data = load_user_files("csv", train, dev, ["text"], "label")
    assert data["train"].features["label"].names == ["neg", "pos"]
    assert data["train"]["label"] == [0, 1, 0] and data["validation"]["label"] == [1]
    assert "note: label column 'label' holds names with spaces around them (' pos', 'neg '): read without them" in \
        capsys.readouterr().out
    twins = write_csv(tmp_path / "twins.csv", ["text", "label"], [["d", "POS"], ["e", "NEG"]])
    with pytest.raises(DynaKDError, match=r"^label column 'label' names classes that differ only in case: 'NEG' and "
                                          r"'neg'; 'POS' and 'pos'; give each class one spelling$"):
        load_user_files("csv", train, twins, ["text"], "label")
    blank = write_csv(tmp_path / "blank.csv", ["text", "label"], [["d", "  "], ["e", "pos"]])
    with pytest.raises(DynaKDError, match="holds labels that are only spaces"):
        load_user_files("csv", train, blank, ["text"], "label")


def test_names_in_one_file_and_numbers_in_the_other_are_refused(tmp_path):
    """Each file is read on its own: 0/1 beside neg/pos made four classes, two of them never trained. Integers beside
    floats are regression targets (whole numbers in one file)."""
    ints = write_csv(tmp_path / "int.csv", ["text", "label"], [["a", "0"], ["b", "1"]])
    names = write_csv(tmp_path / "str.csv", ["text", "label"], [["a", "neg"], ["b", "pos"]])
    floats = write_csv(tmp_path / "float.csv", ["text", "label"], [["a", "0.5"], ["b", "2.5"]])
    for train, dev in ((ints, names), (names, ints)):
        with pytest.raises(DynaKDError, match="label column 'label' holds names in .*str.csv but numbers in .*int.csv: "
                                              "give both files labels of one kind"):
            load_user_files("csv", train, dev, ["text"], "label")
    data = load_user_files("csv", ints, floats, ["text"], "label")
    assert infer_task_from_data(get_task("csv"), data).is_regression


def test_sparse_integer_ids_are_refused(tmp_path):
    """Integer labels are class ids: 0 and 1000000 would make a head of a million rows for two classes."""
    train = write_csv(tmp_path / "train.csv", ["text", "label"], [["good", "1000000"], ["bad", "0"]])
    data = load_user_files("csv", train, None, ["text"], "label")
    with pytest.raises(DynaKDError, match=r"the highest, 1000000, would make a head of 1000001 classes for 2 distinct "
                                          r"labels; number the classes 0 to 1, or give the labels as strings"):
        infer_task_from_data(get_task("csv"), data)
    # a trained classifier numbers them next (distill's teacher, evaluate's model): its label count decides
    assert infer_task_from_data(get_task("csv"), data, model_numbers=True).num_labels == 1000001
    dense = write_csv(tmp_path / "dense.csv", ["text", "label"], [[f"t{i}", str(i)] for i in range(1000)])
    assert infer_task_from_data(get_task("csv"), load_user_files("csv", dense, None, ["text"], "label")).num_labels \
        == 1000  # many classes, every id used
    few = write_csv(tmp_path / "few.csv", ["text", "label"], [["a", "0"], ["b", "500"]])
    assert infer_task_from_data(get_task("csv"), load_user_files("csv", few, None, ["text"], "label")).num_labels \
        == 501  # small heads are left as the ids say


def test_user_file_errors(tmp_path):
    train = write_csv(tmp_path / "train.csv", ["text", "label"], [["good", "1"]])
    with pytest.raises(DynaKDError, match=r"no column 'sentence'; columns are: text, label"):
        load_user_files("csv", train, None, ["sentence"], "label")
    with pytest.raises(DynaKDError, match="data file not found: .*nope.csv"):
        load_user_files("csv", train, str(tmp_path / "nope.csv"), ["text"], "label")
    with pytest.raises(DynaKDError, match="1 or 2 text columns"):
        load_user_files("csv", train, None, ["a", "b", "c"], "label")
    wide = write_csv(tmp_path / "wide.csv", ["id", "text", "label"], [["7", "good", "1"]])
    with pytest.raises(DynaKDError, match=r"^csv data needs the names of its text columns \(one or two\): "
                                          r"--text-columns a\[,b\] \(.*wide.csv has columns id, text, label\)$"):
        load_task_data(get_task("csv"), train_file=wide)  # id or text: not guessed


def test_files_users_have_that_are_not_csv_or_json_are_told_what_to_do(tmp_path):
    """A folder, a spreadsheet (read as csv, a workbook failed on 'Content_Types' ... IPv4), a Parquet file, a file in
    Windows' encoding and a csv file separated by semicolons (Excel's where the comma writes decimals)."""
    train = write_csv(tmp_path / "train.csv", ["text", "label"], [["good", "1"]])
    with pytest.raises(DynaKDError, match=f"^{tmp_path} is a folder: give the data file in it$"):
        load_user_files("csv", str(tmp_path), None, ["text"], "label")
    for name, what in (("train.xlsx", "a spreadsheet (save it as CSV UTF-8 first)"), ("t.parquet", "a Parquet file")):
        (tmp_path / name).write_bytes(b"PK\x03\x04")
        with pytest.raises(DynaKDError, match=rf"{name} is {re.escape(what)}.*, which DynaKD does not read: it reads "
                                              r"csv \(.csv, or .tsv tab-separated\) and json \(.json, .jsonl\) files$"):
            load_user_files("csv", train, str(tmp_path / name), ["text"], "label")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text,label\ncaf\u00e9 cr\u00e8me,1\n".encode("cp1252"))
    with pytest.raises(DynaKDError, match=r"could not read csv file .*latin.csv: .* \(the file is not UTF-8 text: save "
                                          r"it as UTF-8"):
        load_user_files("csv", str(latin), None, ["text"], "label")
    semi = tmp_path / "semi.csv"
    semi.write_text("text;label\ngood;1\nbad, really;0\n")
    with pytest.raises(DynaKDError, match=r"semi.csv looks separated by semicolons: save it comma-separated, or "
                                          r"tab-separated as .tsv\)$"):
        load_user_files("csv", str(semi), None, ["text"], "label")
    semi.write_text("text;label\ngood;1\nbad;0\n")  # (read whole, as one column)
    with pytest.raises(DynaKDError, match=r"semi.csv looks separated by semicolons"):
        load_user_files("csv", str(semi), None, ["text"], "label")


def test_the_only_column_besides_the_label_is_the_text(tmp_path, capsys):
    """Without --text-columns a file of a text column and a label column needs no naming (the other files must
    hold the same column)."""
    train = write_csv(tmp_path / "train.csv", ["review", "y"], [["good", "1"], ["bad", "0"]])
    data = load_task_data(get_task("csv"), train_file=train, label_column="y")
    assert data["train"]["text_a"] == ["good", "bad"]
    assert "csv data: text column 'review' (the only one besides the label column 'y'" in capsys.readouterr().out
    with pytest.raises(DynaKDError, match=r"train.csv: no label column 'label' \(--label-column names another\); "
                                          r"columns are: review, y$"):
        load_task_data(get_task("csv"), train_file=train)
    dev = write_csv(tmp_path / "dev.csv", ["sentence", "y"], [["fine", "1"]])
    with pytest.raises(DynaKDError, match="dev.csv: no column 'review'; columns are: sentence, y"):
        load_task_data(get_task("csv"), train_file=train, validation_file=dev, label_column="y")
    ids = write_csv(tmp_path / "ids.csv", ["id", "y"], [["7", "1"], ["8", "0"]])  # an id column: not trained on
    with pytest.raises(DynaKDError, match=r"ids.csv: the only column besides the label column 'y', 'id', holds "
                                          r"numbers, not text: name the text column with --text-columns "
                                          r"\(--text-columns id reads those numbers as text\)$"):
        load_task_data(get_task("csv"), train_file=ids, label_column="y")


def test_a_long_list_of_classes_is_cut_short(tmp_path):
    """A label column of sentences (a quoting slip) listed every one of them, 3 KB on one line."""
    from dynakd.data.load import describe_labels

    rows = [[f"text {i}", f"class {i:02d}"] for i in range(25)]
    data = load_task_data(get_task("csv"), train_file=write_csv(tmp_path / "t.csv", ["text", "label"], rows),
                          text_columns=["text"])
    task = infer_task_from_data(get_task("csv"), data, ["text"])
    said = describe_labels(task, data, "label")
    assert said.startswith("25 classes from column 'label': class 00, class 01,")
    assert said.endswith("class 19, ... (5 more)")


def test_synthetic_is_deterministic_balanced_and_in_vocab():
    first, again = synthetic_sentiment(200, 50, seed=3), synthetic_sentiment(200, 50, seed=3)
    assert first["train"]["text_a"] == again["train"]["text_a"]
    assert first["train"]["text_a"] != synthetic_sentiment(200, 50, seed=4)["train"]["text_a"]
    assert sum(first["train"]["label"]) == 100 and sum(first["validation"]["label"]) == 25
    assert not set(first["validation"]["text_a"]) & set(first["train"]["text_a"])
    words = {word for text in first["train"]["text_a"] for word in text.split()}
    assert words <= set(SYNTHETIC_VOCAB_WORDS)
    assert {"not", "but", "good", "bad"} <= words


def test_synthetic_via_load_task_data_and_subsample():
    data = load_task_data(get_task("sst2"), synthetic=True, splits=["validation"])
    assert list(data) == ["validation"] and len(data["validation"]) == 500
    part = subsample(data["validation"], 10, seed=1)
    assert len(part) == 10 and part["text_a"] == subsample(data["validation"], 10, seed=1)["text_a"]
    assert len(subsample(part, 100, seed=0)) == 10 and subsample(part, None, seed=0) is part
    with pytest.raises(DynaKDError, match="synthetic"):
        load_task_data(get_task("stsb"), synthetic=True)


def qnli_dev_only(root, n=40):
    """A GLUE folder holding QNLI's dev file alone (as ../shared/data does), labels alternating."""
    rows = [[str(i), f"question {i}?", f"sentence {i}.", "entailment" if i % 2 else "not_entailment"] for i in range(n)]
    write_tsv(root / "QNLI/dev.tsv", rows, ["index", "question", "sentence", "label"])
    return root


def test_dev_split_cuts_dev_by_example_seeded_and_stratified(tmp_path):
    from dynakd.config import DistillConfig
    from dynakd.data.load import load_data

    cfg = DistillConfig(task="qnli", data_dir=str(qnli_dev_only(tmp_path)), dev_split=0.5)
    _, data = load_data(cfg)
    train, dev = data["train"], data["validation"]
    assert len(train) == len(dev) == 20 and sorted(train["label"]) == sorted(dev["label"])  # 10 of each label
    assert not set(train["text_a"]) & set(dev["text_a"])
    assert load_data(cfg)[1]["train"]["text_a"] == train["text_a"]  # same data_seed, same cut
    assert load_data(cfg, train=False)[1]["validation"]["text_a"] == dev["text_a"]  # evaluate: the held-out part
    cfg.data_seed = 1
    assert load_data(cfg)[1]["train"]["text_a"] != train["text_a"]


def test_dev_split_cuts_one_csv_file(tmp_path):
    from dynakd.config import DistillConfig
    from dynakd.data.load import load_data

    rows = tmp_path / "all.csv"
    rows.write_text("review,stars\n" + "".join(f"film {i} was {'good' if i % 2 else 'bad'},{i % 2}\n"
                                               for i in range(20)))
    cfg = DistillConfig(task="csv", train_file=str(rows), text_columns=["review"], label_column="stars",
                        dev_split=0.8)
    task, data = load_data(cfg)
    assert task.num_labels == 2 and (len(data["train"]), len(data["validation"])) == (16, 4)
    assert not set(data["train"]["text_a"]) & set(data["validation"]["text_a"])
    assert load_data(cfg, train=False)[1]["validation"]["text_a"] == data["validation"]["text_a"]  # evaluate
    with pytest.raises(DynaKDError, match="give --train-file alone, not with --validation-file"):
        load_data(dataclasses.replace(cfg, validation_file=str(rows)))
    with pytest.raises(DynaKDError, match="needs --train-file and --validation-file, or one file with --dev-split"):
        load_data(dataclasses.replace(cfg, dev_split=None))


def test_dev_split_errors(tmp_path, capsys):
    from dynakd.config import DistillConfig, validate
    from dynakd.data.load import load_data

    with pytest.raises(DynaKDError, match="dev_split must be in"):
        validate(DistillConfig(task="qnli", dev_split=1.0))
    with pytest.raises(DynaKDError, match="train_articles"):
        validate(DistillConfig(task="squad", dev_split=0.5))
    with pytest.raises(DynaKDError, match="one eval split"):
        validate(DistillConfig(task="mnli", data_dir=str(tmp_path), dev_split=0.5))
    with pytest.raises(DynaKDError, match="cannot split"):
        load_data(DistillConfig(task="qnli", data_dir=str(qnli_dev_only(tmp_path, n=1)), dev_split=0.5))
    assert "without stratifying" not in capsys.readouterr().out  # no note before an error


def test_the_synthetic_corpus_serves_single_sentence_binary_tasks_only():
    from dynakd.config import DistillConfig
    from dynakd.data import synthetic_serves
    from dynakd.data.load import load_data

    assert synthetic_serves(get_task("sst2")) and not any(synthetic_serves(get_task(t)) for t in ("mrpc", "stsb",
                                                                                                   "mnli", "squad"))
    with pytest.raises(DynaKDError, match="synthetic data is single-sentence binary sentiment; it cannot be used for "
                                          "mrpc"):
        load_data(DistillConfig(task="mrpc", synthetic=True))


def test_what_a_csv_task_made_of_its_labels_is_said(tmp_path, capsys):
    from dynakd.config import DistillConfig
    from dynakd.data.load import load_data

    said = {}
    for name, train, dev in (("ids", "1 2 1", "1 2"), ("floats", "0.0 1.0", "1.0"), ("names", "pos neg", "neu")):
        for split, labels in (("train", train), ("dev", dev)):
            (tmp_path / f"{name}-{split}.csv").write_text("t,l\n" + "".join(f"x,{v}\n" for v in labels.split()))
        load_data(DistillConfig(task="csv", train_file=str(tmp_path / f"{name}-train.csv"), text_columns=["t"],
                                validation_file=str(tmp_path / f"{name}-dev.csv"), label_column="l"))
        said[name] = capsys.readouterr().out.strip()
    assert said == {
        "ids": "csv data: 3 classes from column 'l': 0, 1, 2; no training rows for 0",
        "floats": "csv data: regression on column 'l' (its values are written as decimals; write whole numbers for "
                  "class ids)",
        "names": "csv data: 3 classes from column 'l': neg, neu, pos; no training rows for neu",
    }


def test_dev_split_stratifies_integer_labels_and_says_which_classes_lack_rows(tmp_path, capsys):
    from dynakd.config import DistillConfig
    from dynakd.data.load import load_data

    rows = tmp_path / "ids.csv"
    rows.write_text("t,l\n" + "".join(f"x{i},{1 + i % 2}\n" for i in range(24)))  # ids 1 and 2: class 0 unused
    for seed in (0, 1):
        _, data = load_data(DistillConfig(task="csv", train_file=str(rows), text_columns=["t"], label_column="l",
                                          dev_split=0.5, data_seed=seed))
        assert sorted(data["train"]["label"]) == sorted(data["validation"]["label"])  # 6 of each id in each part
        assert data["train"].features["label"].dtype == "int64"
    assert "3 classes from column 'l': 0, 1, 2; no training rows for 0" in capsys.readouterr().out
    rows.write_text(rows.read_text() + "lone,7\n")  # a class of one row cannot be in both parts: not stratified
    _, data = load_data(DistillConfig(task="csv", train_file=str(rows), text_columns=["t"], label_column="l",
                                      dev_split=0.5))
    assert len(data["train"]) + len(data["validation"]) == 25 and data["train"].column_names == ["text_a", "label"]
    note = capsys.readouterr().out
    assert "note: validation is split without stratifying by label (" in note and "_dynakd" not in note


def test_csv_labels_follow_the_trained_classifiers_numbering(function_hashing):
    """An evaluation file lacking a class, or holding the classes in another case, is numbered as the model numbers
    them (it used to be numbered from its own labels: refused for a missing class, scored by position otherwise)."""
    from datasets import ClassLabel, Dataset, DatasetDict
    from transformers import BertConfig

    from dynakd.data import follow_model_labels, get_task, infer_task_from_data

    def files(labels):
        part = Dataset.from_dict({"text_a": ["x"] * len(labels), "label": labels})
        return DatasetDict({"validation": part.cast_column("label", ClassLabel(names=sorted(set(labels))))})

    model = BertConfig(architectures=["BertForSequenceClassification"], id2label={0: "neg", 1: "neu", 2: "pos"})
    data = files(["POS", "neg", "pos"])
    task = infer_task_from_data(get_task("csv"), data, ["text"])
    task, data = follow_model_labels(task, data, model, "m")
    assert task.num_labels == 3 and task.label_names == ("neg", "neu", "pos")
    assert data["validation"]["label"] == [2, 0, 2] and data["validation"].features["label"].names == ["neg", "neu",
                                                                                                        "pos"]
    assert not function_hashing  # the renumbering map names its own fingerprint
    with pytest.raises(DynaKDError, match="label\\(s\\) 'mixed' of the data are not among the labels 'm' was trained "
                                          "on: neg, neu, pos"):
        follow_model_labels(task, files(["mixed", "neg"]), model, "m")
    ids = DatasetDict({"validation": Dataset.from_dict({"text_a": ["x", "y"], "label": [0, 2]})})
    task = infer_task_from_data(get_task("csv"), ids, ["text"])
    assert task.num_labels == 3
    unnamed = BertConfig(architectures=["BertForSequenceClassification"], num_labels=4)
    assert follow_model_labels(task, ids, unnamed, "m")[0].num_labels == 4  # ids 0-3, of which the file holds two
    encoder = BertConfig(architectures=["BertModel"], num_labels=4)  # no head yet: the files number the labels
    assert follow_model_labels(task, ids, encoder, "m")[0].num_labels == 3
    # a file of one named class, scored by a classifier of named classes: refused before the model could number it
    one = files(["pos", "pos"])
    with pytest.raises(DynaKDError, match="the label column has only the value\\(s\\) \\['pos'\\]; classification"):
        infer_task_from_data(get_task("csv"), one, ["text"])
    task, data = follow_model_labels(infer_task_from_data(get_task("csv"), one, ["text"], model_numbers=True), one,
                                     model, "m")
    assert task.num_labels == 3 and data["validation"]["label"] == [2, 2]
    with pytest.raises(DynaKDError, match="'m' names no labels to number it by; classification needs two"):
        follow_model_labels(infer_task_from_data(get_task("csv"), one, ["text"], model_numbers=True), one,
                            BertConfig(architectures=["BertForSequenceClassification"], num_labels=2), "m")


def test_labels_written_as_numbers_keep_their_numbers(tmp_path, function_hashing):
    """JSON labels "0" ... "11" were numbered as text (0, 1, 10, 11, 2, ...), and a csv file of the same labels, read
    as integers, was then scored by id against those names: class 2 as the model's "10", without a word."""
    from datasets import Dataset, DatasetDict
    from transformers import BertConfig

    from dynakd.data import follow_model_labels, get_task, infer_task_from_data

    rows = [{"text": f"t{i}", "label": str(i)} for i in range(12)]
    train = tmp_path / "train.json"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_user_files("json", str(train), None, ["text"])
    assert data["train"].features["label"].names == [str(i) for i in range(12)]
    assert data["train"]["label"] == list(range(12))
    # a model trained before, on names numbered as text, scoring integer labels: each is the class its number names
    old = BertConfig(architectures=["BertForSequenceClassification"],
                     id2label=dict(enumerate(sorted(str(i) for i in range(12)))))
    ids = DatasetDict({"validation": Dataset.from_dict({"text_a": ["x", "y", "z"], "label": [2, 10, 0]})})
    task, scored = follow_model_labels(infer_task_from_data(get_task("csv"), ids, ["text"], model_numbers=True), ids,
                                       old, "m")
    assert [task.label_names[i] for i in scored["validation"]["label"]] == ["2", "10", "0"]
    with pytest.raises(DynaKDError, match="label\\(s\\) 12 of the data are not among the labels 'm' was trained"):
        follow_model_labels(task, DatasetDict({"validation": Dataset.from_dict({"text_a": ["x"], "label": [12]})}),
                            old, "m")
    assert not function_hashing


def word_tokenizer(*, lower: bool = True, reverse: bool = False):
    """A WordPiece tokenizer over the synthetic corpus' words, as the tiny test models have."""
    from transformers import BertTokenizer

    words = sorted({w.lower() for w in SYNTHETIC_VOCAB_WORDS}, reverse=reverse)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    return BertTokenizer(vocab={t: i for i, t in enumerate(specials + words)}, do_lower_case=lower)


def test_tokenize_names_its_fingerprint_from_every_input_without_hashing_a_function(tmp_path, function_hashing):
    """datasets hashed the tokenize closure (the tokenizers) inside a bare except, which swallowed a Ctrl-C landing
    there; tokenize now gives map its own fingerprint, which differs when anything its output depends on differs."""
    from dynakd.data.prepare import tokenize

    train = write_csv(tmp_path / "train.csv", ["text", "label"], [["good film", "1"], ["Not Bad film", "0"]])
    data = load_user_files("csv", train, None, ["text"])  # read from a file: map caches its output by fingerprint
    tokenizer = word_tokenizer()

    def fingerprint(data, tokenizer, max_length, teacher=None) -> str:
        return tokenize(data, tokenizer, max_length, teacher)["train"]._fingerprint

    base = tokenize(data, tokenizer, 16)["train"]
    assert base["labels"] == [1, 0] and base["input_ids"][0] == tokenizer("good film")["input_ids"]
    assert not function_hashing
    assert fingerprint(data, word_tokenizer(), 16) == base._fingerprint  # the same inputs: the cache is reused
    other_rows = load_user_files("csv", write_csv(tmp_path / "other.csv", ["text", "label"], [["bad", "0"]]), None,
                                 ["text"])
    others = [fingerprint(data, tokenizer, 3), fingerprint(data, word_tokenizer(reverse=True), 16),
              fingerprint(data, word_tokenizer(lower=False), 16), fingerprint(data, tokenizer, 16, tokenizer),
              fingerprint(other_rows, tokenizer, 16)]
    assert len({base._fingerprint, *others}) == 6
    assert [len(ids) for ids in tokenize(data, tokenizer, 3)["train"]["input_ids"]] == [3, 3]  # not a stale cache
    assert not function_hashing


def test_each_epoch_of_each_seed_draws_its_own_length_grouped_order():
    """Epoch e of seed s was epoch 0 of seed s + e (the order came from seed + epoch), so runs of seeds 1-3 over
    several epochs shared most of their batches. Epoch 0 keeps the order it always had."""
    import torch

    from dynakd.data.sampler import EpochLengthGroupedSampler

    lengths = [1 + (7 * i) % 23 for i in range(64)]

    def order(seed, epoch):
        sampler = EpochLengthGroupedSampler(4, lengths=lengths, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(1, 1) != order(2, 0) and order(1, 2) != order(3, 0) and order(1, 1) != order(1, 0)
    assert sorted(order(1, 1)) == list(range(64))
    torch.manual_seed(0)  # epoch 0 is drawn from the seed alone, as before
    from transformers.trainer_pt_utils import get_length_grouped_indices
    assert order(5, 0) == get_length_grouped_indices(lengths, 4, generator=torch.Generator().manual_seed(5))


def test_tokenizers_with_one_vocabulary_but_other_accent_handling_are_not_the_same(tmp_path):
    """Only lower-casing was compared: a student tokenizer that keeps accents gave the teacher [UNK] for "café"."""
    from transformers import BertTokenizerFast

    from dynakd.data.prepare import same_tokenizer

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "cafe", "good", "##good"]) + "\n")
    strips, keeps = BertTokenizerFast(str(vocab)), BertTokenizerFast(str(vocab), strip_accents=False)
    assert strips("café")["input_ids"] != keeps("café")["input_ids"]
    assert not same_tokenizer(strips, keeps)
    strips.save_pretrained(tmp_path / "copy")
    copy = BertTokenizerFast.from_pretrained(tmp_path / "copy")
    copy("good", truncation=True, max_length=4)  # a call sets the pipeline's truncation: not an encoding difference
    assert same_tokenizer(strips, copy)
    assert same_tokenizer(strips, BertTokenizerFast(str(vocab), strip_accents=True))  # lower-casing strips them too
    left = BertTokenizerFast(str(vocab), padding_side="left")  # batches pad on the right whatever the side
    assert same_tokenizer(strips, left) and not same_tokenizer(strips, left, qa=True)  # (QA: it orders the windows)
    assert not same_tokenizer(strips, BertTokenizerFast(str(vocab), truncation_side="left"))
    short = BertTokenizerFast(str(vocab))  # a setting the first probes did not exercise: the longest word read
    short.backend_tokenizer.model = type(short.backend_tokenizer.model)(
        short.get_vocab(), unk_token="[UNK]", max_input_chars_per_word=20)
    assert not same_tokenizer(strips, short)
    from tokenizers import Tokenizer, models  # a vocabulary without an unknown token fails on the probes: not same
    from transformers import PreTrainedTokenizerFast

    no_unk = [PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"good": 0, "[PAD]": 1})),
                                      pad_token="[PAD]") for _ in range(2)]
    assert not same_tokenizer(*no_unk)


def test_a_tokenizer_without_token_type_ids_is_the_same_and_the_one_with_them_encodes(tmp_path):
    """DistilBERT's tokenizer is BERT's without token_type_ids among its input names: the input names were compared,
    so a BERT teacher and its DistilBERT student were encoded twice and token-level terms refused."""
    from transformers import BertTokenizerFast

    from dynakd.data.prepare import same_tokenizer, shared_tokenizer

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "cafe", "good", "##good"]) + "\n")
    bert = BertTokenizerFast(str(vocab))
    distil = BertTokenizerFast(str(vocab), model_input_names=["input_ids", "attention_mask"])
    assert same_tokenizer(distil, bert)
    assert shared_tokenizer(distil, bert) is bert and shared_tokenizer(bert, distil) is bert
    assert shared_tokenizer(bert, BertTokenizerFast(str(vocab))) is bert  # names alike: the student's
    assert shared_tokenizer(distil, None) is distil  # no teacher
    accents = BertTokenizerFast(str(vocab), strip_accents=False, model_input_names=["input_ids", "attention_mask"])
    assert shared_tokenizer(accents, bert) is None  # encodes otherwise: each its own


def test_the_collator_keeps_regression_targets_float(tiny_teacher):
    """Labels became long whatever they were, so STS-B's 3.8 trained as 3 unless regression=True was passed; now
    they keep their kind by default, as the Trainer's collators do, and regression=False refuses a fraction."""
    from transformers import AutoTokenizer

    from dynakd import DistillationCollator

    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)
    rows = [dict(tokenizer("a good film"), label=3.8), dict(tokenizer("dull"), label=1.0)]
    labels = DistillationCollator(tokenizer)(rows)["labels"]
    assert labels.dtype == torch.float32 and labels.tolist() == pytest.approx([3.8, 1.0])
    assert DistillationCollator(tokenizer, regression=True)(rows)["labels"].dtype == torch.float32
    classes = [dict(r, label=i) for i, r in enumerate(rows)]
    assert DistillationCollator(tokenizer)(classes)["labels"].dtype == torch.long
    assert DistillationCollator(tokenizer, regression=True)(classes)["labels"].dtype == torch.float32
    whole = [dict(r, label=float(i)) for i, r in enumerate(rows)]
    assert DistillationCollator(tokenizer, regression=False)(whole)["labels"].tolist() == [0, 1]
    with pytest.raises(DynaKDError, match="label 3.8 is not a class, and this DistillationCollator was built with "
                                          "regression=False"):
        DistillationCollator(tokenizer, regression=False)(rows)


def test_batches_pad_to_a_multiple_of_eight_only_within_the_input_length(tiny_teacher):
    """A model of 66 positions trained at --max-seq-length 66 failed on a batch of its longest inputs, padded to 72."""
    from transformers import AutoTokenizer

    from dynakd.data.prepare import DistillationCollator

    tokenizer = AutoTokenizer.from_pretrained(tiny_teacher)

    def width(length: int) -> int:
        rows = [dict(tokenizer("good " * 80, truncation=True, max_length=length), label=0)]
        return DistillationCollator(tokenizer, max_length=66)(rows)["input_ids"].shape[1]

    assert (width(66), width(62), width(50)) == (66, 64, 56)  # the multiple where it fits


def test_batches_pad_to_a_multiple_of_eight_on_a_gpu_or_compiled_and_to_the_longest_row_elsewhere():
    """Padding to 8 on a CPU only added work (SST-2's batches: 20% more tokens, ~1.3x the step time). The multiple
    given is taken as it is on every device (16: a cached run the same to the last bit as a live one on this CPU); 1
    is the longest row."""
    from dynakd.config import build_config
    from dynakd.data.prepare import pad_multiple

    assert pad_multiple(build_config({}), "cpu") is None and pad_multiple(build_config({}), "cuda") == 8
    assert pad_multiple(build_config({"torch_compile": True}), "cpu") == 8
    assert pad_multiple(build_config({"pad_to_multiple_of": "16"}), "cpu") == 16
    assert pad_multiple(build_config({"pad_to_multiple_of": 1}), "cuda") is None
    with pytest.raises(DynaKDError, match=r"pad_to_multiple_of must be >= 1 \(1: pad to the longest row"):
        build_config({"pad_to_multiple_of": 0})


def test_batches_pad_on_the_right_whatever_the_tokenizers_side(tmp_path):
    """A left-padding tokenizer gave a row other teacher outputs beside a longer row than alone (positions count from
    0 whatever the padding), so the cache, built in batches of other rows, and cls pooling (a pad first) depended on
    the batch."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from dynakd import DistillationCollator
    from tests.conftest import make_tiny_bert

    folder = make_tiny_bert(tmp_path / "m", layers=1, hidden=16)
    tokenizer = AutoTokenizer.from_pretrained(folder, padding_side="left")
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    short, long = (dict(tokenizer(t)) for t in ("a good film", "a good film , a good film , a good film"))
    alone, beside = DistillationCollator(tokenizer)([short]), DistillationCollator(tokenizer)([short, long])
    assert (beside["attention_mask"][:, 0] == 1).all()  # the first token of every row is its own
    with torch.no_grad():
        logits = [model(**{k: v[:1] for k, v in b.items() if k != "labels"}).logits for b in (alone, beside)]
    torch.testing.assert_close(logits[0], logits[1])


def test_cells_of_lists_or_objects_and_targets_that_are_no_number_are_refused(tmp_path, capsys):
    """A json text cell holding a list ended in pyarrow's "Couldn't cast array of type list<item: string> to string"
    (a traceback); a list label said "unsupported label type(s): ;"; a regression target NaN marked its row as one
    the teacher alone supervises (it trained nothing and scored nan), and infinity stopped the run at step 2."""

    def write(name: str, rows: list[dict]) -> str:
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(tmp_path / name)

    listed = write("list.jsonl", [{"text": ["good", "x"], "label": 1}, {"text": ["bad"], "label": 0}])
    with pytest.raises(DynaKDError, match=re.escape(f"{listed}: column 'text' holds lists, not text: give each row "
                                                    "its text as a string")):
        load_user_files("json", listed, None, ["text"], "label")
    objects = write("obj.jsonl", [{"text": {"a": "good"}, "label": 1}])
    with pytest.raises(DynaKDError, match="column 'text' holds objects, not text"):
        load_user_files("json", objects, None, ["text"], "label")
    labels = write("labels.jsonl", [{"text": "good", "label": [1]}, {"text": "bad", "label": [0]}])
    with pytest.raises(DynaKDError, match=re.escape("unsupported label type(s): lists; use strings, integers or "
                                                    "floats (one label per row)")):
        load_user_files("json", labels, None, ["text"], "label")
    for target in ("NaN", "Infinity"):
        odd = tmp_path / f"{target}.jsonl"
        odd.write_text(f'{{"text": "a b", "label": 0.5}}\n{{"text": "c d", "label": {target}}}\n')
        with pytest.raises(DynaKDError, match=re.escape(f"{odd}: 1 row(s) have no finite target in label column "
                                                        "'label' (NaN or infinity)")):
            train = str(odd) if target == "Infinity" else write("ok.jsonl", [{"text": "e", "label": 1.0}])
            load_user_files("json", train, str(odd), ["text"], "label")
    # a training row without a target (NaN) is one the teacher alone supervises, as a transfer set's: said
    load_user_files("json", str(tmp_path / "NaN.jsonl"), None, ["text"], "label")
    assert "1 training row(s) have no target (NaN): distill's teacher alone supervises them" in capsys.readouterr().out


def test_rows_cut_at_max_seq_length_are_counted(capsys):
    """Rows longer than max_seq_length were cut by the tokenizer without a word (2,000-word rows trained on their
    first 64 tokens)."""
    from datasets import Dataset, DatasetDict

    from dynakd.data.prepare import note_cut_rows

    rows = DatasetDict({"train": Dataset.from_dict({"input_ids": [[1] * 8, [1] * 3, [1] * 8]}).select([0, 1]),
                        "validation": Dataset.from_dict({"input_ids": [[1] * 2]})})
    note_cut_rows(rows, 8)
    assert capsys.readouterr().out == ("note: 1 of 2 train rows fill all 8 tokens of max_seq_length: cut there, or "
                                       "exactly that long (a longer --max-seq-length keeps more of the cut ones, at "
                                       "more cost per step)\n")
    note_cut_rows(rows, 9)
    assert capsys.readouterr().out == ""


def test_rows_of_invisible_characters_alone_are_empty():
    """Cells of zero-width spaces or a byte-order mark alone tokenize to nothing, as blank ones do, and were kept."""
    from datasets import Dataset

    from dynakd.data.prepare import empty_examples

    ds = Dataset.from_dict({"text_a": ["\u200b\u200b", "\ufeff", " \t", "ok", "a\u200b", "\u05d0\u200f", ""]})
    assert empty_examples(ds) == [0, 1, 2, 6]
    pairs = Dataset.from_dict({"text_a": ["\u200b", "\u200b"], "text_b": ["\u2060", "yes"]})
    assert empty_examples(pairs) == [0]
