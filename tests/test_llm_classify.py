"""The local classifier (rules, JSON linear model), its training and the labelled corpus."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from docmill.llm.classify import (
    Guess,
    LinearModel,
    LocalClassifier,
    ModelFileError,
    features,
    rules_confidence,
    tokens,
)
from docmill.llm.spec import load_spec
from docmill.llm.train import extract_text
from docmill.testkit.labelled import LABELS, generate, read_truth

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "examples" / "llm" / "spec.toml"

INVOICE = """ACME Supplies Ltd
INVOICE
Invoice number: INV-2024-0012
Date: 2024-03-05
Subtotal: 1,000.00 EUR
VAT 19%: 190.00 EUR
Total: 1,190.00 EUR
Payment terms: 30 days net. Amount due by 2024-04-04."""

LETTER = """Dear Ms Laurent,
Subject: our meeting
I am writing to confirm our meeting next Tuesday.
Kind regards,
John Miller"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCMILL_")}
    env["PYTHONPATH"] = str(REPO / "src")
    return env


def _run(code: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


# --- rules ---------------------------------------------------------------------------


def test_rules_confidence_is_the_share_discounted_by_thin_evidence() -> None:
    assert rules_confidence(0, 0) == 0
    assert rules_confidence(1, 1) == 0.5
    assert rules_confidence(3, 3) == 0.875
    assert rules_confidence(3, 4) == pytest.approx(0.75 * 0.875)


def test_rules_decide_obvious_documents() -> None:
    clf = LocalClassifier.from_spec(load_spec(SPEC), model=None)
    clf = LocalClassifier(clf.labels, clf.rules, clf.min_confidence, None)  # rules only
    invoice = clf.classify(INVOICE)
    assert (invoice.label, invoice.decided_by) == ("invoice", "rules")
    assert invoice.confidence >= 0.8
    letter = clf.classify(LETTER)
    assert (letter.label, letter.decided_by) == ("letter", "rules")


def test_keywords_match_whole_words_only() -> None:
    clf = LocalClassifier.from_spec(load_spec(SPEC), model=None)
    hits = {r.name: r.hits("Invoices, reinvoice and invoicing.") for r in clf.rules}
    assert hits["invoice"] == 0
    assert {r.name: r.hits("an INVOICE") for r in clf.rules}["invoice"] == 1


def test_uncertain_documents_are_left_to_the_llm() -> None:
    spec = load_spec(SPEC)
    rules_only = LocalClassifier.from_spec(spec, model=None)
    rules_only = LocalClassifier(rules_only.labels, rules_only.rules, 0.8, None)
    nothing = rules_only.classify("The weather was fine and we went for a walk.")
    assert nothing == Guess(None, 0.0, None, nothing.scores)
    assert nothing.best is None
    mixed = rules_only.classify("Dear customer, please find the invoice number 12 attached.")
    assert mixed.label is None and mixed.decided_by is None
    assert mixed.best == "invoice"
    assert 0 < mixed.confidence < 0.8


# --- the JSON linear model (no scikit-learn) -----------------------------------------


def _tiny_model(classes: tuple[str, ...]) -> LinearModel:
    vocabulary = ("invoice", "dear", "total", "invoice number")
    rows = 1 if len(classes) == 2 else len(classes)
    coef = tuple(tuple(float((r + 1) * (j - 1)) for j in range(len(vocabulary))) for r in range(rows))
    return LinearModel(classes, vocabulary, (1.0, 1.5, 2.0, 2.5), coef, tuple(0.1 * r for r in range(rows)))


def test_features_are_word_unigrams_and_bigrams_with_digit_shapes() -> None:
    assert tokens("Invoice No. INV-2024-0012") == ["invoice", "no", "inv", "0", "0"]
    assert features("Amount due") == ["amount", "due", "amount due"]


def test_linear_model_math_by_hand() -> None:
    model = _tiny_model(("a", "b", "c"))
    text = "Invoice number: 12, invoice total"
    # counts: invoice 2, invoice number 1, total 1 (numbers read "0", not in the vocabulary)
    raw = {0: (1 + math.log(2)) * 1.0, 2: 1.0 * 2.0, 3: 1.0 * 2.5}
    norm = math.sqrt(sum(v * v for v in raw.values()))
    x = {i: v / norm for i, v in raw.items()}
    assert model.vector(text) == pytest.approx(x)
    scores = [0.1 * r + sum((r + 1) * (j - 1) * v for j, v in x.items()) for r in range(3)]
    exps = [math.exp(s) for s in scores]
    probs = model.probabilities(text)
    assert list(probs.values()) == pytest.approx([e / sum(exps) for e in exps])
    binary = _tiny_model(("no", "yes"))
    p = binary.probabilities(text)
    assert p["yes"] == pytest.approx(1 / (1 + math.exp(-scores[0])))
    assert p["no"] + p["yes"] == pytest.approx(1)


def test_json_model_round_trips(tmp_path: Path) -> None:
    model = _tiny_model(("invoice", "letter", "other"))
    assert LinearModel.from_json(json.loads(json.dumps(model.to_json()))) == model
    path = model.save(tmp_path / "m.json")
    loaded = LinearModel.load(path)
    assert loaded == model
    assert loaded.probabilities(INVOICE) == model.probabilities(INVOICE)


def test_bad_model_files_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}', encoding="utf-8")
    with pytest.raises(ModelFileError, match=r"bad\.json"):
        LinearModel.load(bad)
    with pytest.raises(ModelFileError, match="cannot read"):
        LinearModel.load(tmp_path / "missing.json")
    data = _tiny_model(("a", "b", "c")).to_json()
    data["idf"] = data["idf"][:-1]
    with pytest.raises(ModelFileError, match="idf"):
        LinearModel.from_json(data)


def test_a_model_with_labels_the_spec_lacks_is_refused() -> None:
    with pytest.raises(ModelFileError, match="spam"):
        LocalClassifier.from_spec(load_spec(SPEC), _tiny_model(("invoice", "spam", "other")))


# --- the labelled corpus -------------------------------------------------------------


def test_corpus_is_deterministic_and_carries_checkable_fields(tmp_path: Path) -> None:
    rows = generate(tmp_path / "a", 40, seed=7)
    again = generate(tmp_path / "b", 40, seed=7)
    assert rows == again == read_truth(tmp_path / "a")
    for row in rows:
        assert (tmp_path / "a" / row["file"]).read_bytes() == (tmp_path / "b" / row["file"]).read_bytes()
    assert {r["label"] for r in rows} == set(LABELS)
    assert any(r["ambiguous"] for r in generate(tmp_path / "c", 100, seed=1))
    for row in rows:
        if row["label"] not in ("invoice", "receipt"):
            continue
        text, why = extract_text(tmp_path / "a" / row["file"], 3)
        assert why == ""
        f = row["fields"]
        assert f"Date: {f['date']}" in text
        assert f"Vendor: {f['vendor']}" in text
        assert f"Currency: {f['currency']}" in text
        if row["label"] == "invoice":
            assert f"Invoice number: {f['invoice_number']}" in text
        total = next(line for line in text.splitlines() if line.startswith("Total: "))
        digits = "".join(ch for ch in total if ch.isdigit())
        assert int(digits) == round(f["total"] * 100)


# --- training (scikit-learn) ---------------------------------------------------------


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("labelled")
    generate(root / "train", 300, seed=1)
    generate(root / "test", 300, seed=2)
    return root / "train", root / "test"


@pytest.fixture(scope="module")
def trained(corpora: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Any:
    pytest.importorskip("sklearn")
    from docmill.llm.train import train_classifier

    out = tmp_path_factory.mktemp("model") / "classifier.json"
    return train_classifier(corpora[0], spec=load_spec(SPEC), output=out, folds=5)


def test_trained_model_is_accurate_on_another_seed(
    trained: Any, corpora: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert trained.folds == 5 and trained.examples == 300
    assert trained.accuracy >= 0.9
    clf = LocalClassifier.from_spec(load_spec(SPEC), trained.model_file)
    assert clf.model is not None
    tally: Counter[str] = Counter()
    for row in read_truth(corpora[1]):
        text, _ = extract_text(corpora[1] / row["file"], 3)
        guess = clf.classify(text)
        tally[str(guess.decided_by)] += 1
        if guess.decided:
            tally["correct"] += guess.label == row["label"]
        else:
            assert guess.best is not None and guess.confidence < clf.min_confidence
    decided = tally["rules"] + tally["model"]
    with capsys.disabled():
        print(
            f"\nlocal classifier on seed 2 (300 docs): decided {decided / 300:.1%}"
            f" (rules {tally['rules']}, model {tally['model']}, LLM {tally['None']}),"
            f" accuracy on decided {tally['correct'] / max(decided, 1):.1%};"
            f" cross-validated {trained.accuracy:.1%}"
        )
    assert decided >= 150
    assert tally["correct"] / decided >= 0.9
    assert tally["model"] > 0  # the rules do not decide everything alone


def test_pure_python_probabilities_match_scikit_learn(corpora: tuple[Path, Path]) -> None:
    pytest.importorskip("sklearn")
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from docmill.llm.train import fit, load_examples

    examples, _ = load_examples(corpora[0], 3)
    texts, labels = [e.text for e in examples[:120]], [e.label for e in examples[:120]]
    model = fit(texts, labels)
    vec = TfidfVectorizer(analyzer=features, sublinear_tf=True, min_df=2)
    ref = LogisticRegression(C=20.0, max_iter=2000).fit(vec.fit_transform(texts), labels)
    probe = [e.text for e in examples[120:140]]
    expected = ref.predict_proba(vec.transform(probe))
    for text, row in zip(probe, expected, strict=True):
        got = model.probabilities(text)
        assert [got[c] for c in ref.classes_] == pytest.approx(list(row), abs=1e-4)


def test_classifying_needs_neither_sklearn_nor_numpy(trained: Any) -> None:
    code = (
        "import sys, json\n"
        "from docmill.llm.spec import load_spec\n"
        "from docmill.llm.classify import LocalClassifier\n"
        "clf = LocalClassifier.from_spec(load_spec(sys.argv[1]), sys.argv[2])\n"
        "g = clf.classify('Thank you for your purchase, total 12.00 EUR. Paid: Cash')\n"
        "print(json.dumps([g.best, sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'numpy', 'scipy'))]))\n"
    )
    proc = _run(code, str(SPEC), str(trained.model_file))
    assert proc.returncode == 0, proc.stderr
    best, heavy = json.loads(proc.stdout.strip().splitlines()[-1])
    assert best == "receipt"
    assert heavy == []


# --- the command ---------------------------------------------------------------------


def test_train_classifier_command(corpora: tuple[Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    out = tmp_path / "model.json"
    proc = subprocess.run(
        [sys.executable, "-m", "docmill", "train-classifier", str(corpora[0]),
         "--spec", str(SPEC), "-o", str(out), "--folds", "3"],
        env=_env(), cwd=tmp_path, capture_output=True, text=True, timeout=240, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "3-fold cross-validated accuracy" in proc.stdout
    for label in LABELS:
        assert f"  {label} " in proc.stdout
    assert f"model written to {out}" in proc.stdout
    model = LinearModel.load(out)
    assert set(model.classes) == set(LABELS)


def test_train_classifier_default_output_is_beside_the_spec(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    from docmill.llm.train import train_classifier

    spec_text = SPEC.read_text(encoding="utf-8").replace('model_file = "classifier.json"', "")
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    for name in ("invoice.schema.json", "receipt.schema.json"):
        (spec_dir / name).write_bytes((SPEC.parent / name).read_bytes())
    (spec_dir / "spec.toml").write_text(spec_text, encoding="utf-8")
    generate(tmp_path / "docs", 30, seed=3)
    report = train_classifier(tmp_path / "docs", spec=load_spec(spec_dir / "spec.toml"), folds=2)
    assert report.model_file == spec_dir / "classifier.json"
    assert report.model_file.is_file()


def test_train_classifier_without_sklearn_says_how_to_install(tmp_path: Path) -> None:
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'sklearn':\n"
        "            raise ImportError('No module named ' + repr(name))\n"
        "        return None\n"
        "sys.meta_path.insert(0, Block())\n"
        "from docmill.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    generate(tmp_path / "docs", 10, seed=4)
    proc = _run(blocker, "train-classifier", str(tmp_path / "docs"), "--spec", str(SPEC),
                "-o", str(tmp_path / "m.json"), cwd=tmp_path)
    assert proc.returncode == 1
    assert "pip install docmill[classifier]" in proc.stderr
    assert not (tmp_path / "m.json").exists()
