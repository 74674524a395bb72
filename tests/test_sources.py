"""Source enumeration (folders, globs, @list.txt, symlinks) and content sniffing."""

from __future__ import annotations

import io
import itertools
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pytest

from docmill.model import SourceFile
from docmill.settings import SourceSettings
from docmill.sources import SourceError, iter_sources, sniff
from docmill.sources import filetype as ft
from docmill.sources.discover import check_sources
from docmill.sources.filetype import sniff_bytes
from pdfgen import make_pdf

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def rels(found: Iterable[SourceFile], root: Path) -> list[str]:
    return [Path(f.source).relative_to(root).as_posix() for f in found]


def walk(root: Path, **options: object) -> list[str]:
    return rels(iter_sources([str(root)], SourceSettings(**options)), root)  # type: ignore[arg-type]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    for rel in (
        "b.pdf",
        "a.pdf",
        "notes.txt",
        "scratch.tmp",
        "sub/c.pdf",
        "sub/c.tmp",
        "sub/deep/d.pdf",
        "sub/deep/e.txt",
        "zed/f.pdf",
        "Upper.PDF",
    ):
        touch(root / rel, rel.encode())
    return root


# --- folders -------------------------------------------------------------------------


def test_folder_walk_is_recursive_and_yields_absolute_paths_with_stat(tree: Path) -> None:
    found = list(iter_sources([str(tree)], SourceSettings()))
    assert sorted(rels(found, tree)) == sorted(
        [
            "a.pdf",
            "b.pdf",
            "notes.txt",
            "scratch.tmp",
            "sub/c.pdf",
            "sub/c.tmp",
            "sub/deep/d.pdf",
            "sub/deep/e.txt",
            "zed/f.pdf",
            "Upper.PDF",
        ]
    )
    for f in found:
        assert os.path.isabs(f.source)
        st = os.stat(f.source)
        assert (f.size, f.mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_folder_walk_order_is_sorted_depth_first_and_stable(tree: Path) -> None:
    order = walk(tree)
    assert order == walk(tree)  # stable between calls
    # each folder's own files come in name order ...
    by_folder: dict[str, list[str]] = {}
    for rel in order:
        by_folder.setdefault(rel.rsplit("/", 1)[0] if "/" in rel else "", []).append(rel)
    for files in by_folder.values():
        assert files == sorted(files)
    # ... and a folder's whole subtree is contiguous (depth-first), subfolders in name order
    first = {p: min(i for i, r in enumerate(order) if r.startswith(p)) for p in ("sub/", "zed/")}
    assert first["sub/"] < first["zed/"]
    sub = [i for i, r in enumerate(order) if r.startswith("sub/")]
    assert sub == list(range(sub[0], sub[0] + len(sub)))


def test_relative_folder_source_yields_absolute_paths(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree.parent)
    found = list(iter_sources(["docs"], SourceSettings()))
    assert len(found) == 10
    assert all(f.source.startswith(str(tree) + os.sep) for f in found)


def test_an_unnormalised_folder_source_yields_normalised_paths_and_relative_patterns(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree.parent)
    for spelled in ("./docs/", "docs/sub/../", f"{tree}//"):
        found = list(iter_sources([spelled], SourceSettings(include=("sub/deep/*.pdf",))))
        assert [f.source for f in found] == [str(tree / "sub" / "deep" / "d.pdf")], spelled
        every = list(iter_sources([spelled], SourceSettings()))
        assert all(f.source == os.path.normpath(f.source) for f in every), spelled
        assert len(every) == 10, spelled


def test_enumeration_is_lazy(tmp_path: Path) -> None:
    root = tmp_path / "lazy"
    touch(root / "a" / "1.pdf")
    (root / "b").mkdir()
    found = iter_sources([str(root)], SourceSettings())
    assert iter(found) is found  # an iterator, not a list
    first = next(found)
    assert first.source == str(root / "a" / "1.pdf")
    # folder b has not been listed yet: a file created now is still found
    touch(root / "b" / "2.pdf")
    assert [f.source for f in found] == [str(root / "b" / "2.pdf")]


def test_iter_sources_does_nothing_until_iterated(tmp_path: Path) -> None:
    # a generator: even a missing @list only fails when consumed
    found = iter_sources([f"@{tmp_path / 'missing.txt'}"], SourceSettings())
    with pytest.raises(SourceError):
        next(found)


def test_single_file_source(tree: Path) -> None:
    found = list(iter_sources([str(tree / "sub" / "c.pdf")], SourceSettings()))
    assert [f.source for f in found] == [str(tree / "sub" / "c.pdf")]


def test_several_sources_are_yielded_in_argument_order(tree: Path) -> None:
    found = list(iter_sources([str(tree / "zed"), str(tree / "a.pdf")], SourceSettings()))
    assert [f.source for f in found] == [str(tree / "zed" / "f.pdf"), str(tree / "a.pdf")]


# --- include / exclude ---------------------------------------------------------------


def test_include_double_star_matches_every_depth_including_the_top(tree: Path) -> None:
    assert sorted(walk(tree, include=("**/*.pdf",))) == [
        "a.pdf",
        "b.pdf",
        "sub/c.pdf",
        "sub/deep/d.pdf",
        "zed/f.pdf",
    ]


def test_include_is_case_sensitive(tree: Path) -> None:
    assert walk(tree, include=("*.PDF",)) == ["Upper.PDF"]


def test_plain_name_pattern_matches_at_any_depth(tree: Path) -> None:
    assert sorted(walk(tree, include=("*.txt",))) == ["notes.txt", "sub/deep/e.txt"]


def test_exclude_name_pattern_at_any_depth(tree: Path) -> None:
    found = walk(tree, exclude=("*.tmp",))
    assert "scratch.tmp" not in found
    assert "sub/c.tmp" not in found
    assert len(found) == 8


def test_subfolder_patterns(tree: Path) -> None:
    assert sorted(walk(tree, include=("sub/deep/*",))) == ["sub/deep/d.pdf", "sub/deep/e.txt"]
    assert walk(tree, include=("zed/*.pdf",)) == ["zed/f.pdf"]
    no_sub = walk(tree, exclude=("sub/**",))
    assert not any(r.startswith("sub/") for r in no_sub)
    assert len(no_sub) == 6
    no_deep = walk(tree, exclude=("sub/deep/*",))
    assert "sub/c.pdf" in no_deep
    assert not any(r.startswith("sub/deep/") for r in no_deep)


def test_readme_example_excludes_drafts_folders_at_any_depth(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    for rel in ("a.pdf", "drafts/b.pdf", "x/drafts/c.pdf", "x/y/drafts/d.pdf", "x/e.pdf"):
        touch(root / rel)
    found = walk(root, include=("**/*.pdf",), exclude=("**/drafts/*",))
    assert sorted(found) == ["a.pdf", "x/e.pdf"]


def test_exclude_wins_over_include(tree: Path) -> None:
    assert sorted(walk(tree, include=("**/*.pdf",), exclude=("sub/**", "b.pdf"))) == [
        "a.pdf",
        "zed/f.pdf",
    ]


def test_several_include_patterns_are_ored(tree: Path) -> None:
    assert sorted(walk(tree, include=("*.txt", "zed/*"))) == [
        "notes.txt",
        "sub/deep/e.txt",
        "zed/f.pdf",
    ]


def test_patterns_are_relative_to_the_folder_source(tree: Path) -> None:
    # the folder's own name (docs/) is not part of the relative path
    assert walk(tree, include=("docs/*",)) == []
    sub = tree / "sub"
    assert rels(iter_sources([str(sub)], SourceSettings(include=("deep/*.pdf",))), sub) == [
        "deep/d.pdf"
    ]


# --- @list.txt -----------------------------------------------------------------------


def test_list_file_relative_absolute_comments_blank_lines_and_folders(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lists = tmp_path / "lists"
    lists.mkdir()
    elsewhere = touch(tmp_path / "elsewhere" / "abs.pdf")
    (lists / "inputs.txt").write_text(
        "# the inputs\n"
        "\n"
        "../docs/a.pdf\n"  # relative to the list's own folder
        f"{elsewhere}\n"  # absolute
        "   \n"
        "  ../docs/b.pdf  \n"  # surrounding whitespace is ignored
        "# ../docs/notes.txt\n"
        "../docs/sub\n",  # a folder: walked, filtered by the globs
        encoding="utf-8",
    )
    monkeypatch.chdir(tree)  # relative entries must not resolve against the cwd
    found = list(iter_sources([f"@{lists / 'inputs.txt'}"], SourceSettings(include=("*.pdf",))))
    assert [f.source for f in found] == [
        str(tree / "a.pdf"),
        str(elsewhere),
        str(tree / "b.pdf"),
        str(tree / "sub" / "c.pdf"),
        str(tree / "sub" / "deep" / "d.pdf"),
    ]


def test_relative_list_path_resolves_entries_against_the_list_folder(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "l.txt").write_text("../docs/zed/f.pdf\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    found = list(iter_sources(["@lists/l.txt"], SourceSettings()))
    assert [f.source for f in found] == [str(tree / "zed" / "f.pdf")]


def test_list_file_entries_are_not_filtered_by_globs_but_folder_entries_are(
    tree: Path, tmp_path: Path
) -> None:
    listing = tmp_path / "l.txt"
    listing.write_text(f"{tree / 'notes.txt'}\n{tree / 'sub' / 'deep'}\n", encoding="utf-8")
    found = list(iter_sources([f"@{listing}"], SourceSettings(include=("*.pdf",))))
    assert [f.source for f in found] == [str(tree / "notes.txt"), str(tree / "sub/deep/d.pdf")]


# --- check_sources -------------------------------------------------------------------


def test_check_sources_accepts_existing_files_folders_and_lists(tree: Path, tmp_path: Path) -> None:
    listing = tmp_path / "l.txt"
    listing.write_text("", encoding="utf-8")
    check_sources([str(tree), str(tree / "a.pdf"), f"@{listing}"])


def test_missing_source_raises_naming_the_path(tree: Path) -> None:
    missing = tree / "no-such-folder"
    with pytest.raises(SourceError, match="no-such-folder"):
        check_sources([str(tree), str(missing)])


def test_missing_list_raises(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"missing\.txt"):
        check_sources([f"@{tmp_path / 'missing.txt'}"])


def test_no_source_raises() -> None:
    with pytest.raises(SourceError, match="no SOURCE"):
        check_sources([])


def test_source_error_is_a_value_error() -> None:
    assert issubclass(SourceError, ValueError)


# --- symlinks ------------------------------------------------------------------------


@pytest.mark.timeout(20)
@pytest.mark.parametrize("follow", [False, True])
def test_symlink_loop_does_not_hang(tmp_path: Path, follow: bool) -> None:
    root = tmp_path / "root"
    touch(root / "a.pdf")
    touch(root / "sub" / "b.pdf")
    os.symlink(root, root / "sub" / "loop")
    os.symlink(root / "sub", root / "sub" / "self")
    found = list(
        itertools.islice(iter_sources([str(root)], SourceSettings(follow_symlinks=follow)), 100)
    )
    assert sorted(rels(found, root)) == ["a.pdf", "sub/b.pdf"]


def test_symlinked_folder_is_walked_only_when_following(tmp_path: Path) -> None:
    target = tmp_path / "target"
    touch(target / "x.pdf")
    root = tmp_path / "root"
    touch(root / "a.pdf")
    os.symlink(target, root / "linked")
    assert walk(root) == ["a.pdf"]
    assert walk(root, follow_symlinks=True) == ["a.pdf", "linked/x.pdf"]


def test_symlinked_file_counts_and_dangling_link_is_skipped(tmp_path: Path) -> None:
    target = touch(tmp_path / "outside" / "real.pdf", b"%PDF-1.4")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(target, root / "link.pdf")
    os.symlink(tmp_path / "gone.pdf", root / "dangling.pdf")
    found = list(iter_sources([str(root)], SourceSettings()))
    assert rels(found, root) == ["link.pdf"]
    assert found[0].size == len(b"%PDF-1.4")


def test_unreadable_folder_is_skipped_not_fatal(tmp_path: Path) -> None:
    root = tmp_path / "root"
    touch(root / "a.pdf")
    locked = root / "locked"
    touch(locked / "hidden.pdf")
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            pytest.skip("running with privileges that ignore folder permissions")
        assert walk(root) == ["a.pdf"]
    finally:
        locked.chmod(0o755)


# --- sniffing ------------------------------------------------------------------------


def epub_bytes(compress_mimetype: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(
            zipfile.ZipInfo("mimetype"),
            "application/epub+zip",
            compress_type=zipfile.ZIP_DEFLATED if compress_mimetype else zipfile.ZIP_STORED,
        )
        z.writestr("META-INF/container.xml", "<container/>", compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def ooxml_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
    return buf.getvalue()


def plain_zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("readme.txt", "hello")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (make_pdf(["hello"]), ft.PDF),
        (b"%PDF-1.7\n", ft.PDF),
        (b"\x00" * 500 + b"%PDF-1.4\n", ft.PDF),  # junk before the header, within 1 KB
        (b"garbage\r\n" * 100 + b"%PDF-1.4\n", ft.PDF),
        (PNG_BYTES, ft.PNG),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", ft.JPEG),
        (b"II*\x00\x08\x00\x00\x00", ft.TIFF),
        (b"MM\x00*\x00\x00\x00\x08", ft.TIFF),
        (b"GIF87a\x01\x00\x01\x00", ft.GIF),
        (b"GIF89a\x01\x00\x01\x00", ft.GIF),
        (plain_zip_bytes(), ft.ZIP),
        (epub_bytes(), ft.EPUB),
        (epub_bytes(compress_mimetype=True), ft.ZIP),  # EPUB requires it stored
        (b"<!DOCTYPE html><html><body>hi</body></html>", ft.HTML),
        (b"\xef\xbb\xbf\n  <HTML lang='en'>", ft.HTML),
        (b"Just some words.\nAnd a second line.\n", ft.TEXT),
        ("Grüße, naïve café — €".encode(), ft.TEXT),
        (b"", ft.EMPTY),
        (b"\x00\x01\x02\x03binary\x00data", ft.BINARY),
        (b"caf\xe9 au lait is latin-1, not utf-8", ft.BINARY),
    ],
)
def test_sniff_bytes(data: bytes, expected: str) -> None:
    assert sniff_bytes(data) == expected


def test_pdf_header_beyond_one_kilobyte_is_not_a_pdf() -> None:
    assert sniff_bytes(b"x" * 1100 + b"%PDF-1.4\n") == ft.TEXT


def test_text_cut_mid_character_at_the_end_of_the_sample_is_still_text(tmp_path: Path) -> None:
    path = touch(tmp_path / "euros.txt", "€".encode() * 4000)  # 3 bytes each: 8 KB cuts one
    assert sniff(str(path)) == ft.TEXT


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("doc.pdf", make_pdf(["one", "two"]), ft.PDF),
        ("image.pdf", PNG_BYTES, ft.PNG),  # the name says PDF, the bytes say PNG
        ("report.docx", ooxml_bytes(), ft.DOCX),
        ("book.epub", epub_bytes(), ft.EPUB),
        ("archive.zip", plain_zip_bytes(), ft.ZIP),
        ("broken.docx", b"PK\x03\x04" + b"\x00" * 60, ft.ZIP),  # not a readable zip
        ("page.html", b"<html><p>x</p></html>", ft.HTML),
        ("noext", b"plain words", ft.TEXT),
        ("empty.pdf", b"", ft.EMPTY),
        ("blob.pdf", bytes(range(256)) * 4, ft.BINARY),
    ],
)
def test_sniff_file_uses_content_not_name(
    tmp_path: Path, name: str, data: bytes, expected: str
) -> None:
    path = touch(tmp_path / name, data)
    assert sniff(str(path)) == expected


def test_sniff_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        sniff(str(tmp_path / "gone.pdf"))
