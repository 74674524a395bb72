"""The corpus subset the repository carries (tests/data/corpus): every file listed with
its origin and licence, the hostile manifests' lines true of the carried files, and,
with the full corpus at ../shared/corpus, each file a byte-identical copy of it."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from engine_kit import CARRIED_CORPUS, SHARED_CORPUS, corpus_file

README = CARRIED_CORPUS / "README.md"
HAND_WRITTEN = {"README.md", "hostile/real/LICENSE-Apache-2.0"}


def make_corpus() -> ModuleType:
    path = CARRIED_CORPUS.parent / "make_corpus.py"
    spec = importlib.util.spec_from_file_location("make_corpus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _carried() -> set[str]:
    return {p.relative_to(CARRIED_CORPUS).as_posix() for p in CARRIED_CORPUS.rglob("*") if p.is_file()}


def _expanded(rel: str) -> Path:
    """A carried document (``rel`` as the corpus names it), expanded if carried packed."""
    return corpus_file(CARRIED_CORPUS / rel)


def _manifest(rel: str) -> dict[str, dict[str, str]]:
    header, *lines = (CARRIED_CORPUS / rel).read_text(encoding="utf-8").splitlines()
    columns = header.split("\t")
    return {row["file"]: row for row in (dict(zip(columns, line.split("\t"), strict=True)) for line in lines)}


def test_the_folder_holds_what_make_corpus_lists_each_file_in_the_readme() -> None:
    mc = make_corpus()
    documents = {mc.carried_name(rel, _expanded(rel).stat().st_size) for rel in mc.FILES}
    assert _carried() == documents | set(mc.LICENCES) | set(mc.MANIFESTS) | HAND_WRITTEN
    readme = README.read_text(encoding="utf-8")
    unlisted = [rel for rel in mc.FILES if Path(rel).name not in readme]
    assert not unlisted, f"not in {README}: {unlisted}"
    # each folder's licence beside its documents
    for rel in mc.FILES:
        top = "/".join(rel.split("/")[:2])
        licences = [p for p in mc.LICENCES + sorted(HAND_WRITTEN) if p.startswith(top + "/")]
        assert licences or top == "hostile/generated", f"no licence for {rel}"
    total = sum((CARRIED_CORPUS / rel).stat().st_size for rel in _carried())
    assert total < 6_500_000, f"the carried corpus grew to {total:,} bytes"


def test_the_hostile_manifests_are_true_of_the_carried_files() -> None:
    mc = make_corpus()
    for manifest in mc.MANIFESTS:
        folder = manifest.rsplit("/", 1)[0]
        rows = _manifest(manifest)
        carried = sorted(Path(rel).name for rel in mc.FILES if rel.startswith(folder + "/"))
        assert sorted(rows) == carried, manifest
        for name, row in rows.items():
            data = _expanded(f"{folder}/{name}").read_bytes()
            assert len(data) == int(row["bytes"]), name
            if "sha256" in row:
                assert hashlib.sha256(data).hexdigest() == row["sha256"], name


@pytest.mark.corpus_wide
def test_each_carried_file_is_a_copy_of_the_full_corpus() -> None:
    mc = make_corpus()
    for rel in mc.FILES + mc.LICENCES:
        assert _expanded(rel).read_bytes() == (SHARED_CORPUS / rel).read_bytes(), rel
    for rel in mc.MANIFESTS:
        full = (SHARED_CORPUS / rel).read_text(encoding="utf-8").splitlines()
        carried = (CARRIED_CORPUS / rel).read_text(encoding="utf-8").splitlines()
        assert carried[0] == full[0] and set(carried[1:]) <= set(full[1:]), rel
