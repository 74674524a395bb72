"""Training the local classifier's model (``docmill train-classifier``).

A labelled folder holds one sub-folder per label; every file in it that docmill reads is
extracted in-process (``processors.process_task``, first ``max_pages`` pages) and becomes
one training example. scikit-learn fits TF-IDF (the analyzer of
:func:`docmill.llm.classify.features`) and a logistic regression; the fitted numbers are
exported to a :class:`~docmill.llm.classify.LinearModel` (JSON), which classifies without
scikit-learn. Accuracy is estimated by stratified k-fold cross-validation, each fold's
model applied through the exported JSON form, so the figure is that of the code path
used at run time.

scikit-learn is an optional extra (``pip install docmill[classifier]``); it is imported
only here and only when training.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docmill.llm.classify import LinearModel, features
from docmill.llm.spec import LlmSpec
from docmill.model import DocState
from docmill.processors import ExtractOptions, Task, process_task

INSTALL_HINT = "pip install docmill[classifier]"


class TrainingError(Exception):
    """Training cannot run (missing scikit-learn, no usable examples, unknown labels)."""


@dataclass(frozen=True)
class Example:
    path: str
    label: str
    text: str


@dataclass(frozen=True)
class LabelScore:
    label: str
    examples: int
    correct: int  # cross-validated predictions equal to the label (argmax)
    decided: int  # of them, predictions at or above min_confidence
    decided_correct: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.examples if self.examples else 0.0


@dataclass(frozen=True)
class TrainReport:
    model_file: Path
    examples: int
    skipped: list[tuple[str, str]]  # (path, why) of files that gave no text
    folds: int  # 0: too few examples to cross-validate
    per_label: list[LabelScore]
    min_confidence: float
    features: int
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def accuracy(self) -> float:
        n = sum(s.examples for s in self.per_label)
        return sum(s.correct for s in self.per_label) / n if n else 0.0

    @property
    def decided_share(self) -> float:
        n = sum(s.examples for s in self.per_label)
        return sum(s.decided for s in self.per_label) / n if n else 0.0

    @property
    def decided_accuracy(self) -> float:
        d = sum(s.decided for s in self.per_label)
        return sum(s.decided_correct for s in self.per_label) / d if d else 0.0


def require_sklearn() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise TrainingError(
            f"training the classifier needs scikit-learn: {INSTALL_HINT}"
            " (classifying with a trained model does not)"
        ) from None


def labelled_files(folder: str | Path) -> list[tuple[str, Path]]:
    """(label, file) for every file under each sub-folder of ``folder``, sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise TrainingError(f"not a folder: {root}")
    out = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for dirpath, dirnames, filenames in os.walk(sub):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            out += [(sub.name, Path(dirpath) / f) for f in sorted(filenames) if not f.startswith(".")]
    return out


def extract_text(path: Path, max_pages: int, max_file_bytes: int = 2048 << 20) -> tuple[str, str]:
    """(text of the first ``max_pages`` pages, "" or why there is none)."""
    task = Task(0, 0, str(path), None, max_file_bytes, ExtractOptions(max_pages=max_pages))
    outcome = process_task(task).opened()
    if outcome.status != DocState.DONE:
        why = outcome.error.message if outcome.error else str(outcome.status)
        return "", why
    pages = outcome.text[:max_pages] if max_pages > 0 else outcome.text
    text = "\n".join(pages)
    return (text, "") if text.strip() else ("", "no text")


def load_examples(
    folder: str | Path, max_pages: int, on_file: Callable[[Path], None] | None = None
) -> tuple[list[Example], list[tuple[str, str]]]:
    examples, skipped = [], []
    for label, path in labelled_files(folder):
        if on_file:
            on_file(path)
        text, why = extract_text(path, max_pages)
        if why:
            skipped.append((str(path), why))
        else:
            examples.append(Example(str(path), label, text))
    return examples, skipped


def fit(texts: Sequence[str], labels: Sequence[str], c: float = 20.0, min_df: int = 2) -> LinearModel:
    """TF-IDF + logistic regression with scikit-learn, exported as a :class:`LinearModel`."""
    require_sklearn()
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(analyzer=features, sublinear_tf=True, min_df=min_df)
    x = vectorizer.fit_transform(texts)
    clf = LogisticRegression(C=c, max_iter=2000)
    clf.fit(x, list(labels))
    vocabulary = vectorizer.get_feature_names_out()
    keep = range(len(vocabulary))
    return LinearModel(
        classes=tuple(str(c) for c in clf.classes_),
        vocabulary=tuple(str(vocabulary[i]) for i in keep),
        idf=tuple(round(float(vectorizer.idf_[i]), 6) for i in keep),
        coef=tuple(tuple(round(float(row[i]), 6) for i in keep) for row in clf.coef_),
        intercept=tuple(round(float(b), 6) for b in clf.intercept_),
        sublinear_tf=True,
        meta={"trainer": "scikit-learn TfidfVectorizer + LogisticRegression", "C": c, "min_df": min_df,
              "examples": len(texts)},
    )


def _folds(labels: Sequence[str], k: int, seed: int) -> list[list[int]]:
    """Stratified folds: each label's indexes dealt round-robin after a seeded shuffle."""
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    rng = random.Random(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    start = 0
    for label in sorted(by_label):
        idx = by_label[label]
        rng.shuffle(idx)
        for j, i in enumerate(idx):
            folds[(start + j) % k].append(i)
        start += len(idx)
    return folds


def cross_validate(
    examples: Sequence[Example], folds: int, min_confidence: float, seed: int = 0
) -> list[LabelScore]:
    labels = [e.label for e in examples]
    tally: dict[str, Counter[str]] = {label: Counter() for label in sorted(set(labels))}
    for test in _folds(labels, folds, seed):
        held = set(test)
        train = [e for i, e in enumerate(examples) if i not in held]
        if len({e.label for e in train}) < 2:
            continue
        model = fit([e.text for e in train], [e.label for e in train])
        for i in test:
            probs = model.probabilities(examples[i].text)
            best = max(probs, key=lambda name: probs[name])
            t = tally[labels[i]]
            t["n"] += 1
            ok = best == labels[i]
            t["correct"] += ok
            if probs[best] >= min_confidence:
                t["decided"] += 1
                t["decided_correct"] += ok
    return [
        LabelScore(label, t["n"], t["correct"], t["decided"], t["decided_correct"])
        for label, t in tally.items()
    ]


def default_model_file(spec: LlmSpec | None) -> Path | None:
    if spec is None:
        return None
    return spec.classifier.model_file or spec.path.parent / "classifier.json"


def train_classifier(
    labelled_dir: str | Path,
    *,
    spec: LlmSpec | None = None,
    output: str | Path | None = None,
    max_pages: int = 3,
    folds: int = 5,
    min_confidence: float | None = None,
    seed: int = 0,
    on_file: Callable[[Path], None] | None = None,
) -> TrainReport:
    """Train on ``labelled_dir`` (one sub-folder per label), cross-validate, save the JSON
    model to ``output`` (default: the spec's ``classifier.model_file``, else
    ``classifier.json`` beside the spec) and report."""
    require_sklearn()
    target = Path(output) if output is not None else default_model_file(spec)
    if target is None:
        raise TrainingError("where should the model go? give a spec (--spec) or an output file (-o)")
    examples, skipped = load_examples(labelled_dir, max_pages, on_file)
    counts = Counter(e.label for e in examples)
    if spec is not None:
        unknown = sorted(set(counts) - set(spec.label_names))
        if unknown:
            raise TrainingError(
                f"{labelled_dir}: folders {unknown} are not labels of {spec.path}"
                f" (labels: {', '.join(spec.label_names)})"
            )
    if len(counts) < 2:
        raise TrainingError(
            f"{labelled_dir}: documents with text are needed for at least two labels"
            f" (one sub-folder per label); found {dict(counts) or 'none'}"
        )
    threshold = (
        min_confidence if min_confidence is not None
        else spec.classifier.min_confidence if spec is not None else 0.8
    )
    k = min(folds, min(counts.values()))
    per_label = cross_validate(examples, k, threshold, seed) if k >= 2 else [
        LabelScore(label, 0, 0, 0, 0) for label in sorted(counts)
    ]
    model = fit([e.text for e in examples], [e.label for e in examples])
    missing = sorted(set(spec.label_names) - set(counts)) if spec is not None else []
    meta = {**model.meta, "labels_without_examples": missing, "max_pages": max_pages}
    model = LinearModel(model.classes, model.vocabulary, model.idf, model.coef, model.intercept,
                        model.sublinear_tf, meta)
    model.save(target)
    return TrainReport(target, len(examples), skipped, k if k >= 2 else 0, per_label, threshold,
                       len(model.vocabulary), meta)
