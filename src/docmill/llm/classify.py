"""The local classifier: rules, then a linear model, before any LLM is asked.

The cascade, cheapest first (see :meth:`LocalClassifier.classify`):

1. **Rules.** For each label, the number of *hits*: its keywords found as whole words
   (case-insensitive; each keyword counts once) plus its regular expressions that match
   (each once). With ``top`` the hits of the best label and ``total`` the hits of all
   labels, the rules' confidence is ``top / total × (1 − 2 ** −top)``: the top label's
   share of the hits, discounted when the evidence is thin (one lone hit gives 0.5, two
   0.75, three 0.875). A tie for the top gives 0 (the share rule is the margin rule: a
   rival label's hits pull the share down).
2. **Model.** A linear text classifier stored as JSON (:class:`LinearModel`, written by
   ``docmill train-classifier``): TF-IDF of word uni- and bi-grams, one weight vector
   per label, probabilities by a softmax of the linear scores (a sigmoid for a model of
   two labels). Applied in pure Python: a sparse dot product over the document's own
   features; neither scikit-learn nor numpy is needed here.

A stage *decides* when its confidence reaches ``classifier.min_confidence``; otherwise
the guess has ``label=None`` and keeps every label's score in ``scores`` (``best`` names
the strongest candidate), so the caller asks the LLM.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from docmill.llm.spec import Label, LlmSpec

FORMAT = "docmill-linear-text-classifier"
VERSION = 1

DecidedBy = Literal["rules", "model"]

_TOKEN = re.compile(r"[^\W_]+")
_DIGITS = re.compile(r"\d+")


class ModelFileError(ValueError):
    """A classifier model file cannot be used (unreadable, wrong format, foreign labels)."""


@dataclass(frozen=True)
class Guess:
    """What the local classifier says about one document.

    ``label`` is set only when a stage decided (``decided_by``); ``confidence`` is the
    deciding (or last consulted) stage's confidence; ``scores`` maps each label to that
    stage's score for it (probabilities for the model, rule confidences for the rules).
    """

    label: str | None
    confidence: float
    decided_by: DecidedBy | None
    scores: Mapping[str, float] = field(default_factory=dict)

    @property
    def decided(self) -> bool:
        return self.label is not None

    @property
    def best(self) -> str | None:
        """The strongest candidate, decided or not (None when nothing scored)."""
        if not self.scores:
            return None
        top = max(self.scores.values())
        if top <= 0:
            return None
        return next(name for name, score in self.scores.items() if score == top)


# --- features --------------------------------------------------------------------------


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens; every run of digits reads ``0`` (``INV-2024-0012`` gives
    ``inv``, ``0``, ``0``), so amounts and dates count as shapes, not values."""
    return [_DIGITS.sub("0", t) for t in _TOKEN.findall(text.lower())]


def features(text: str) -> list[str]:
    """Word unigrams and bigrams (``"amount due"``): the model's analyzer, used both when
    training (scikit-learn is given this function) and when classifying."""
    words = tokens(text)
    return words + [f"{a} {b}" for a, b in itertools.pairwise(words)]


# --- rules -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _LabelRules:
    name: str
    keywords: tuple[re.Pattern[str], ...]
    patterns: tuple[re.Pattern[str], ...]

    def hits(self, text: str) -> int:
        return sum(1 for k in self.keywords if k.search(text)) + sum(
            1 for p in self.patterns if p.search(text)
        )


def _keyword(word: str) -> re.Pattern[str]:
    body = r"\s+".join(re.escape(part) for part in word.split())
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


def compile_rules(labels: Iterable[Label]) -> tuple[_LabelRules, ...]:
    return tuple(
        _LabelRules(lb.name, tuple(_keyword(k) for k in lb.keywords if k.strip()), tuple(lb.compiled()))
        for lb in labels
    )


def rule_hits(rules: Sequence[_LabelRules], text: str) -> dict[str, int]:
    return {r.name: r.hits(text) for r in rules}


def rules_confidence(top: int, total: int) -> float:
    """``top / total × (1 − 2 ** −top)`` (0 when nothing hit)."""
    if top <= 0 or total <= 0:
        return 0.0
    return top / total * (1.0 - 2.0**-top)


def rule_scores(hits: Mapping[str, int]) -> dict[str, float]:
    """Each label's rule confidence as if it were the top one; a tied top scores 0."""
    total = sum(hits.values())
    top = max(hits.values(), default=0)
    tied = sum(1 for h in hits.values() if h == top) > 1
    return {
        name: 0.0 if (h == top and tied) else rules_confidence(h, total) for name, h in hits.items()
    }


# --- the linear model ------------------------------------------------------------------


def softmax(scores: Sequence[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@dataclass(frozen=True)
class LinearModel:
    """TF-IDF (sublinear tf, smooth idf, l2 norm) + one linear scorer per class.

    ``coef`` has one row per class, or a single row for two classes (the score of
    ``classes[1]``, as scikit-learn stores a binary model).
    """

    classes: tuple[str, ...]
    vocabulary: tuple[str, ...]
    idf: tuple[float, ...]
    coef: tuple[tuple[float, ...], ...]
    intercept: tuple[float, ...]
    sublinear_tf: bool = True
    meta: Mapping[str, Any] = field(default_factory=dict)
    _index: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        rows = 1 if len(self.classes) == 2 else len(self.classes)
        if len(self.classes) < 2:
            raise ModelFileError("a model needs at least two classes")
        if len(self.idf) != len(self.vocabulary):
            raise ModelFileError("idf and vocabulary differ in length")
        if len(self.coef) != rows or len(self.intercept) != rows:
            raise ModelFileError(f"expected {rows} coefficient rows and intercepts")
        if any(len(row) != len(self.vocabulary) for row in self.coef):
            raise ModelFileError("a coefficient row and the vocabulary differ in length")
        object.__setattr__(self, "_index", {term: i for i, term in enumerate(self.vocabulary)})

    def vector(self, text: str) -> dict[int, float]:
        """The document's l2-normalised TF-IDF vector, sparse (feature index → weight)."""
        counts = Counter(f for f in features(text) if f in self._index)
        weights: dict[int, float] = {}
        for term, count in counts.items():
            i = self._index[term]
            tf = 1.0 + math.log(count) if self.sublinear_tf else float(count)
            weights[i] = tf * self.idf[i]
        norm = math.sqrt(sum(w * w for w in weights.values()))
        if norm > 0:
            weights = {i: w / norm for i, w in weights.items()}
        return weights

    def decision(self, text: str) -> list[float]:
        x = self.vector(text)
        return [
            b + sum(row[i] * w for i, w in x.items())
            for row, b in zip(self.coef, self.intercept, strict=True)
        ]

    def probabilities(self, text: str) -> dict[str, float]:
        scores = self.decision(text)
        if len(self.classes) == 2:
            p = sigmoid(scores[0])
            return {self.classes[0]: 1.0 - p, self.classes[1]: p}
        return dict(zip(self.classes, softmax(scores), strict=True))

    # -- JSON --

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "classes": list(self.classes),
            "sublinear_tf": self.sublinear_tf,
            "vocabulary": list(self.vocabulary),
            "idf": list(self.idf),
            "coef": [list(row) for row in self.coef],
            "intercept": list(self.intercept),
            "meta": dict(self.meta),
        }

    @classmethod
    def from_json(cls, data: Any) -> LinearModel:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ModelFileError(f"not a {FORMAT} file")
        if data.get("version") != VERSION:
            raise ModelFileError(f"model version {data.get('version')!r}; this docmill reads {VERSION}")
        try:
            return cls(
                classes=tuple(str(c) for c in data["classes"]),
                vocabulary=tuple(str(t) for t in data["vocabulary"]),
                idf=tuple(float(v) for v in data["idf"]),
                coef=tuple(tuple(float(v) for v in row) for row in data["coef"]),
                intercept=tuple(float(v) for v in data["intercept"]),
                sublinear_tf=bool(data.get("sublinear_tf", True)),
                meta=dict(data.get("meta") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ModelFileError):
                raise
            raise ModelFileError(f"malformed model: {exc!r}") from None

    def save(self, path: str | Path) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), separators=(",", ":")), encoding="utf-8")
        tmp.replace(target)
        return target

    @classmethod
    def load(cls, path: str | Path) -> LinearModel:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelFileError(f"cannot read classifier model {path}: {exc}") from None
        try:
            return cls.from_json(data)
        except ModelFileError as exc:
            raise ModelFileError(f"{path}: {exc}") from None


# --- the cascade -----------------------------------------------------------------------


@dataclass(frozen=True)
class LocalClassifier:
    """Rules, then the model (if any); decides at ``min_confidence`` or above."""

    labels: tuple[str, ...]
    rules: tuple[_LabelRules, ...]
    min_confidence: float = 0.8
    model: LinearModel | None = None

    @classmethod
    def from_spec(
        cls, spec: LlmSpec, model: LinearModel | str | Path | None = None
    ) -> LocalClassifier:
        """The spec's rules and threshold; the model given, else ``classifier.model_file``
        when that file exists (a missing file means rules only)."""
        if model is None and spec.classifier.model_file and spec.classifier.model_file.is_file():
            model = spec.classifier.model_file
        if isinstance(model, str | Path):
            model = LinearModel.load(model)
        if model is not None:
            foreign = sorted(set(model.classes) - set(spec.label_names))
            if foreign:
                raise ModelFileError(
                    f"the classifier model knows labels the spec {spec.path} does not: {foreign}"
                    " (retrain it with `docmill train-classifier`)"
                )
        return cls(
            labels=tuple(spec.label_names),
            rules=compile_rules(spec.labels),
            min_confidence=spec.classifier.min_confidence,
            model=model,
        )

    def by_rules(self, text: str) -> Guess:
        scores = rule_scores(rule_hits(self.rules, text))
        confidence = max(scores.values(), default=0.0)
        return self._guess(scores, confidence, "rules")

    def by_model(self, text: str) -> Guess | None:
        if self.model is None:
            return None
        probs = self.model.probabilities(text)
        scores = {name: probs.get(name, 0.0) for name in self.labels}
        return self._guess(scores, max(scores.values(), default=0.0), "model")

    def _guess(self, scores: dict[str, float], confidence: float, stage: DecidedBy) -> Guess:
        if confidence > 0 and confidence >= self.min_confidence:
            label = next(n for n, s in scores.items() if s == confidence)
            return Guess(label, confidence, stage, scores)
        return Guess(None, confidence, None, scores)

    def classify(self, text: str) -> Guess:
        """Rules first; the model when the rules do not decide; undecided: ``label=None``
        with the last stage's scores (the LLM is asked)."""
        ruled = self.by_rules(text)
        if ruled.decided:
            return ruled
        modelled = self.by_model(text)
        return modelled if modelled is not None else ruled
