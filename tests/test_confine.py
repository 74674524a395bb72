"""sources.confine_to_root: files that lead outside their SOURCE's folder are listed,
never read, and end failed (not_allowed); at enumeration, in the hashing threads and
again in the worker right before it opens the file (real files, real runs)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

import docmill
from docmill.model import DocState, FailureCategory
from docmill.processors import ExtractOptions, Task, process_task
from docmill.settings import SourceSettings, load_settings
from docmill.sources import confine, iter_sources
from docmill.sources.confine import NotAllowed, Roots
from pdfgen import write_pdf

MARKER = "MARKER-7f3a9c-outside-the-root"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/ (a.pdf, sub/b.pdf, link.txt -> ../outside/secret.txt, linkdir -> ../outside/dir,
    inside.pdf -> sub/b.pdf, sublink -> sub) next to outside/ (secret.txt, dir/c.pdf)."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    (outside / "dir").mkdir(parents=True)
    write_pdf(root / "a.pdf", ["alpha inside"])
    write_pdf(root / "sub" / "b.pdf", ["bravo inside"])
    (outside / "secret.txt").write_text(MARKER + "\n")
    write_pdf(outside / "dir" / "c.pdf", [MARKER])
    os.symlink(outside / "secret.txt", root / "link.txt")
    os.symlink(outside / "dir", root / "linkdir")
    os.symlink("sub/b.pdf", root / "inside.pdf")
    os.symlink("sub", root / "sublink")
    return root


def listed(root: Path, **options: object) -> dict[str, int]:
    found = iter_sources([str(root)], SourceSettings(**options))  # type: ignore[arg-type]
    return {Path(f.source).relative_to(root).as_posix(): f.size for f in found}


def test_without_confinement_links_out_are_followed(tree: Path) -> None:
    """What an unconfined CLI run does (unchanged): the reason confinement exists."""
    found = listed(tree, follow_symlinks=True)
    assert found["link.txt"] == len(MARKER) + 1
    assert "linkdir/c.pdf" in found


def test_enumeration_lists_links_out_unfollowed(tree: Path) -> None:
    found = listed(tree, follow_symlinks=True, confine_to_root=True)
    pdf = (tree / "a.pdf").stat().st_size
    # a link out is listed (so that it is reported), its target never statted (size 0);
    # a linked folder out is listed and never walked
    assert found == {
        "a.pdf": pdf,
        "inside.pdf": (tree / "sub" / "b.pdf").stat().st_size,
        "link.txt": 0,
        "linkdir": 0,
        "sub/b.pdf": (tree / "sub" / "b.pdf").stat().st_size,
    }  # sublink -> sub stays inside: not refused (and not walked twice: the same folder)


def test_links_inside_the_root_are_allowed(tree: Path) -> None:
    found = listed(tree, confine_to_root=True)
    assert found["inside.pdf"] == (tree / "sub" / "b.pdf").stat().st_size
    # a linked folder that stays inside is walked when following (first, by name: its
    # target is then not walked again)
    (tree / "sub").rename(tree / "zz-real")
    os.symlink("zz-real", tree / "sub", target_is_directory=True)
    found = listed(tree, confine_to_root=True, follow_symlinks=True)
    assert found["sub/b.pdf"] > 0 and "zz-real/b.pdf" not in found


def test_dot_dot_in_a_list_and_a_file_source_that_leads_out(tree: Path) -> None:
    listing = tree / "list.txt"
    listing.write_text("a.pdf\n../outside/secret.txt\nsub/../../outside/dir\n")
    options = SourceSettings(confine_to_root=True)
    found = {f.source: f.size for f in iter_sources([f"@{listing}"], options)}
    outside = tree.parent / "outside"
    assert found == {
        str(tree / "a.pdf"): (tree / "a.pdf").stat().st_size,
        str(outside / "secret.txt"): 0,
        str(outside / "dir"): 0,
    }
    # a file SOURCE's root is its folder: a link in it that leads out is refused
    only = list(iter_sources([str(tree / "link.txt")], options))
    assert [(f.source, f.size) for f in only] == [(str(tree / "link.txt"), 0)]


def test_roots_open_refuses_what_leads_out(tree: Path) -> None:
    roots = Roots.of_sources([str(tree)])
    assert roots.real == (os.path.realpath(tree),)
    for path in (tree / "link.txt", tree / "linkdir" / "c.pdf", tree / "sub" / ".." / ".." / "outside" / "secret.txt"):
        with pytest.raises(NotAllowed, match="outside the source's folder"):
            roots.open(str(path))
    fd, real = roots.open(str(tree / "inside.pdf"))
    try:
        assert real == os.path.realpath(tree / "sub" / "b.pdf")
        assert os.read(fd, 5) == b"%PDF-"
    finally:
        os.close(fd)
    os.mkfifo(tree / "pipe")
    with pytest.raises(NotAllowed, match="not a regular file"):
        roots.open(str(tree / "pipe"))  # O_NONBLOCK: never hangs on a FIFO
    with pytest.raises(FileNotFoundError):
        roots.open(str(tree / "gone.pdf"))


def test_roots_open_catches_a_swap_after_the_check(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The time of check to time of use window: the path resolved inside, then a folder
    on it (or the file itself) became a symlink out before the open. ``realpath`` is
    made to answer what it answered before the swap; the component-wise ``O_NOFOLLOW``
    open must still refuse."""
    roots = Roots.of_sources([str(tree)])
    outside = tree.parent / "outside"
    before = {
        str(tree / "sub" / "b.pdf"): os.path.realpath(tree / "sub" / "b.pdf"),
        str(tree / "a.pdf"): os.path.realpath(tree / "a.pdf"),
    }
    (tree / "sub").rename(tree / "sub-old")
    os.symlink(outside / "dir", tree / "sub")  # sub/ now leads out
    (tree / "a.pdf").unlink()
    os.symlink(outside / "secret.txt", tree / "a.pdf")  # a.pdf now leads out
    monkeypatch.setattr(confine.os.path, "realpath", lambda p: before.get(str(p), str(p)))
    for path in before:
        with pytest.raises(NotAllowed, match="changed while it was opened"):
            roots.open(path)


def _task(path: Path, roots: tuple[str, ...]) -> Task:
    return Task(1, 1, str(path), None, 1 << 30, ExtractOptions(confine_roots=roots))


def test_the_worker_refuses_a_file_swapped_after_enumeration(tree: Path) -> None:
    """The worker checks again right before it opens: a file that was fine when listed
    and hashed, and is a symlink out by the time it is processed, is never read."""
    roots = Roots.of_sources([str(tree)]).real
    assert process_task(_task(tree / "a.pdf", roots)).opened().text == ["alpha inside"]
    (tree / "a.pdf").unlink()
    os.symlink(tree.parent / "outside" / "secret.txt", tree / "a.pdf")
    outcome = process_task(_task(tree / "a.pdf", roots))
    assert outcome.status is DocState.FAILED
    assert outcome.error is not None and outcome.error.category is FailureCategory.NOT_ALLOWED
    assert outcome.error.stage == "read" and not outcome.opened().text
    assert not FailureCategory.NOT_ALLOWED.retryable
    # unconfined, the same task reads the file (the CLI's default)
    assert MARKER in process_task(_task(tree / "a.pdf", ())).opened().text[0]
    # a link that stays inside is read through the open file, named by its own name
    done = process_task(_task(tree / "inside.pdf", roots))
    assert done.status is DocState.DONE and done.opened().text == ["bravo inside"]


def test_error_messages_name_the_file_not_its_folder(tree: Path) -> None:
    """An OS error in the worker names the file by its name (no server folder)."""
    roots = Roots.of_sources([str(tree)]).real
    for options in (roots, ()):
        outcome = process_task(_task(tree / "gone.pdf", options))
        assert outcome.error is not None and outcome.error.category is FailureCategory.IO
        assert str(tree) not in outcome.error.message


def test_a_confined_run_reports_links_out_and_never_reads_them(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    settings = load_settings(
        env={},
        overrides={"sources.confine_to_root": "true", "sources.follow_symlinks": "true",
                   "run.workers": "1"},
    )
    summary = docmill.run([str(tree)], out, settings, progress=False)
    assert summary.completed
    records = {
        Path(r["source"]).relative_to(tree).as_posix(): r
        for part in sorted((out / "records").glob("part-*.jsonl"))
        for r in map(json.loads, part.read_text().splitlines())
    }
    assert sorted(records) == [
        "a.pdf", "inside.pdf", "link.txt", "linkdir", "sub/b.pdf",
    ]
    for name in ("link.txt", "linkdir"):
        record = records[name]
        assert record["status"] == "failed" and record["size"] == 0 and record["sha256"] is None
        assert record["error"]["category"] == "not_allowed", record
        assert "outside" in record["error"]["message"] and MARKER not in json.dumps(record)
    assert records["a.pdf"]["text"] == ["alpha inside"]
    assert records["inside.pdf"]["status"] == "done"
    assert all(MARKER not in p.read_text() for p in (out / "records").iterdir())


def test_retry_hashes_unread_files_again(tmp_path: Path) -> None:
    """A refused (or unreadable) file has no content hash: a retry hashes it again (and
    checks it again) instead of taking every unread file for a twin of the others."""
    from docmill.model import ErrorInfo, SourceFile
    from docmill.state import Store

    store = Store.open(tmp_path)
    try:
        store.upsert_sources(SourceFile(str(tmp_path / n), 0, 1) for n in ("a", "b", "c"))
        refused = ErrorInfo(FailureCategory.NOT_ALLOWED, "leads out", "read")
        failed: list[int] = []
        store.set_hashes([(1, None, refused), (2, None, "cannot read the file: gone"),
                          (3, "f" * 64, "")], failed)
        assert failed == [1, 2]
        record = store.record(1)
        assert record is not None and record.error == refused
        assert store.unhashed(10) == []
        assert store.retry_failed() == 2
        assert [doc_id for doc_id, _ in store.unhashed(10)] == [1, 2]
    finally:
        store.close()


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract is not installed")
def test_an_image_is_read_by_tesseract_through_the_open_file(tmp_path: Path) -> None:
    """Tesseract, a child process, reads an image document by path: confined, that path
    is the worker's open descriptor (/proc/<pid>/fd/<n>), and it still reads it."""
    from imagegen import png_bytes, render_grey

    root = tmp_path / "root"
    root.mkdir()
    pdf = write_pdf(tmp_path / "page.pdf", ["Confined scan reads fine"])
    grey, width, height = render_grey(pdf, 0, 150)
    (root / "scan.png").write_bytes(png_bytes(grey, width, height, 150))
    outcome = process_task(_task(root / "scan.png", Roots.of_sources([str(root)]).real))
    assert outcome.status is DocState.DONE, outcome.error
    assert "Confined scan reads fine" in outcome.opened().text[0]
