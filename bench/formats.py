"""DOCX, XLSX, PPTX, EPUB and HTML from other projects' test suites: docmill against
Kreuzberg and markitdown, per format.

    python bench/formats_corpus.py                 # fetch the corpus (once)
    python bench/formats.py [--corpus DIR] [--peers-venv DIR] [--formats docx,epub] [--rounds 3]

Prints per format and tool: files ok / failed / empty, characters, each tool's
characters ÷ the best peer's, seconds (the extraction calls only, one process, one
core; ``--rounds`` times over, the tools in turn, each file's fastest round counted, so
that a burst of other work on a shared machine lands on no tool alone), and the share
of footnote, endnote, comment, speaker-note and header/footer snippets found. docmill's output is its body text plus its parts; a peer's, its whole
output. Characters are letters and digits only (so Markdown syntax, link targets,
inline data: images and HTML comments a peer writes count for nothing); for DOCX and
PPTX only those of the words the file's own text holds (its text runs, comments,
pictures' descriptions, charts' cached points, numbers by value), each word at most as
often as the file holds it (:func:`seen_chars`): a heading a tool adds ("### Chart",
"### Notes:"), a shape's name ("Picture 4") or "2.0" for the 2 a chart shows count for
nothing, and an output with none of those words is ``empty``. The snippets are taken
from each file's own XML (the first 40 letters and digits of each note, comment, notes
page or header/footer part), and a tool finds one when its output, reduced to letters
and digits, contains it. The peers run in their own virtual environment
(``--peers-venv``, default bench/results/peers-venv, made with ``pip install kreuzberg
'markitdown[docx,pptx,xlsx]'`` when missing), never in docmill's.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import venv
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from docmill.processors import ExtractOptions, Task, process_task
from docmill.processors.formats.numfmt import BUILTIN, format_number

HERE = Path(__file__).resolve().parent
PEERS = ("kreuzberg", "markitdown")
KINDS = ("footnotes", "endnotes", "comments", "notes", "header_footer")
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_P = "{http://schemas.openxmlformats.org/presentationml/2006/main}"
_S = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_C = "{http://schemas.openxmlformats.org/drawingml/2006/chart}"
_KEEP = re.compile(r"[\W_]+", re.UNICODE)
# what a reader never sees in a peer's Markdown: link and image targets, HTML comments
_SCAFFOLD = re.compile(r"\]\([^)]*\)|<!--.*?-->", re.S)


def visible(text: str) -> str:
    return _SCAFFOLD.sub("]", text)


def squash(text: str) -> str:
    """Letters and digits only, lower case: what snippet matching compares."""
    return _KEEP.sub("", text).lower()


# the parts of a DOCX, PPTX or XLSX whose text a reader sees: the body, notes, comments,
# headers and footers, charts, SmartArt data (not layouts, masters, themes, properties)
_SEEN_PARTS = {
    "docx": re.compile(r"word/(document|footnotes|endnotes|comments|header\d*|footer\d*)\.xml|word/(charts|diagrams)/[^/]+\.xml"),
    "pptx": re.compile(r"ppt/(slides|notesSlides|charts|comments|diagrams)/[^/]+\.xml"),
    "xlsx": re.compile(r"xl/comments\d*\.xml|xl/charts/[^/]+\.xml"),  # with the cells: _xlsx_words
}
_NUMBER_CACHES = {f"{_C}numCache", f"{_C}numLit"}
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[^\W\d_]+", re.UNICODE)


def words(text: str) -> Counter[str]:
    """Letter runs (lower case) and numbers (by value: "2.0", "2" and "02" are one
    word, "2"), each as often as the text holds it."""
    out: Counter[str] = Counter()
    for token in _TOKEN.findall(text.lower()):
        if token[0].isdigit():
            value = float(token)
            token = str(int(value)) if value.is_integer() and value < 1e15 else f"{value:.15g}"
        out[token] += 1
    return out


def own_words(path: Path, fmt: str) -> Counter[str] | None:
    """The words of a DOCX, XLSX or PPTX file's own text, as often as it holds them:
    its text runs (``w:t``, ``a:t``, ``m:t``), comments' text, pictures' descriptions
    (``descr``, VML ``alt``), charts' cached points (a number both as stored and as its
    format code shows it), and a workbook's sheet names and cells (:func:`_xlsx_words`).
    None for other formats."""
    pattern = _SEEN_PARTS.get(fmt)
    if pattern is None:
        return None
    found: Counter[str] = Counter()
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return found
    with archive:
        if fmt == "xlsx":
            found.update(_xlsx_words(archive))
        for name in archive.namelist():
            if not pattern.fullmatch(name):
                continue
            try:
                root = ET.fromstring(archive.read(name))
            except (ET.ParseError, KeyError, zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError):
                continue
            numbers: set[int] = set()  # the c:v of numeric caches, read below
            for cache in root.iter():
                if cache.tag not in _NUMBER_CACHES:
                    continue
                code = cache.findtext(f"{_C}formatCode") or "General"
                for point in cache.iter(f"{_C}pt"):
                    value = point.find(f"{_C}v")
                    if value is None:
                        continue
                    numbers.add(id(value))
                    raw = value.text or ""
                    try:
                        shown = format_number(float(raw), point.get("formatCode") or code)
                    except ValueError:
                        shown = raw
                    found.update(words(raw if shown == raw else f"{raw} {shown}"))
            # text runs joined by paragraph (a word can be split over runs: "F" "ee")
            paragraphs: dict[int, list[str]] = {}
            _runs(root, None, paragraphs)
            for runs in paragraphs.values():
                found.update(words("".join(runs)))
            for el in root.iter():
                if el.tag == f"{_C}v" and id(el) not in numbers:
                    found.update(words(el.text or ""))
                alt = el.get("descr") or el.get("alt")  # a picture's description (DrawingML, VML)
                if alt:
                    found.update(words(alt))
    return found


def _xlsx_words(archive: zipfile.ZipFile) -> Counter[str]:
    """The words of a workbook's sheet names and cells: strings as stored (phonetic
    guides left out), numbers both as stored and as their style's format code shows
    them, booleans both as 0/1 and as TRUE/FALSE."""
    found: Counter[str] = Counter()

    def part(name: str) -> ET.Element | None:
        try:
            return ET.fromstring(archive.read(name))
        except (ET.ParseError, KeyError, zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError):
            return None

    def string(si: ET.Element) -> str:
        return "".join(t.text or "" for child in si if child.tag in (f"{_S}t", f"{_S}r")
                       for t in ([child] if child.tag == f"{_S}t" else child.iter(f"{_S}t")))

    names = archive.namelist()
    workbook = part("xl/workbook.xml")
    date1904 = False
    if workbook is not None:
        for sheet in workbook.iter(f"{_S}sheet"):
            found.update(words(sheet.get("name", "")))
        pr = workbook.find(f"{_S}workbookPr")
        date1904 = pr is not None and pr.get("date1904", "").lower() in ("1", "true")
    shared_part = next((n for n in names if re.fullmatch(r"xl/sharedStrings\d*\.xml", n, re.I)), "")
    root = part(shared_part) if shared_part else None
    shared = [string(si) for si in root.iter(f"{_S}si")] if root is not None else []
    codes: list[str] = []
    styles = part("xl/styles.xml")
    if styles is not None:
        custom = {fmt.get("numFmtId"): fmt.get("formatCode", "") for fmt in styles.iter(f"{_S}numFmt")}
        xfs = styles.find(f"{_S}cellXfs")
        for xf in xfs if xfs is not None else ():
            number = xf.get("numFmtId", "0")
            codes.append(custom.get(number) or BUILTIN.get(int(number) if number.isdigit() else 0, "General"))
    for name in names:
        if not re.fullmatch(r"xl/worksheets/[^/]+\.xml", name):
            continue
        sheet = part(name)
        for c in sheet.iter(f"{_S}c") if sheet is not None else ():
            kind, raw = c.get("t", "n"), c.findtext(f"{_S}v") or ""
            if kind == "s":
                found.update(words(shared[int(raw)] if raw.isdigit() and int(raw) < len(shared) else ""))
            elif kind == "inlineStr":
                inline = c.find(f"{_S}is")
                found.update(words(string(inline) if inline is not None else ""))
            elif kind == "b":
                found.update(words(f"{raw} {'TRUE' if raw.strip() == '1' else 'FALSE'}"))
            elif kind in ("str", "e", "d") or not raw:
                found.update(words(raw))
            else:
                style = c.get("s", "0")
                code = codes[int(style)] if style.isdigit() and int(style) < len(codes) else "General"
                try:
                    shown = format_number(float(raw), code, date1904)
                except ValueError:
                    shown = raw
                found.update(words(raw if shown == raw else f"{raw} {shown}"))
    return found


def _runs(el: ET.Element, paragraph: int | None, out: dict[int, list[str]]) -> None:
    """Text of ``t`` elements (and comments' ``text``) under ``el``, by the paragraph
    (``w:p``, ``a:p``) nearest around each."""
    for child in el:
        tag = child.tag.rpartition("}")[2]
        if tag in ("t", "text") and not len(child):
            out.setdefault(paragraph if paragraph is not None else id(child), []).append(child.text or "")
        elif tag in ("tab", "br", "cr") and paragraph is not None:  # a run's tab or line break
            out.setdefault(paragraph, []).append(" ")
        else:
            _runs(child, id(child) if tag == "p" else paragraph, out)


def seen_chars(output: str, own: Counter[str]) -> int:
    """Characters of the words of ``output`` that the file's own text holds, each word
    counted at most as often as the file holds it: what a tool adds (headings of its
    own, shape names, "2.0" for the 2 a chart shows) counts for nothing."""
    return sum(min(n, own[word]) * len(word) for word, n in words(output).items() if word in own)


def chars_of(text: str, own: Counter[str] | None) -> int:
    """The characters a tool's output counts: for DOCX, XLSX and PPTX those of the
    file's own words (:func:`seen_chars`), else every letter and digit."""
    return len(squash(text)) if own is None else seen_chars(text, own)


def _texts(root: ET.Element, item: str, text_tag: str, skip_types: bool = False) -> list[str]:
    out = []
    for el in root.iter(item):
        if skip_types and el.get(f"{_W}type", "normal") != "normal":
            continue
        out.append("".join(t.text or "" for t in el.iter(text_tag)))
    return out


def snippets(path: Path) -> dict[str, list[str]]:
    """Snippets per kind from an Office file's XML (squashed, 8 to 40 characters)."""
    found: dict[str, list[str]] = defaultdict(list)
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return found
    with archive:
        for name in archive.namelist():
            try:
                if re.fullmatch(r"word/(footnotes|endnotes)\.xml", name):
                    kind = name[5:-4]
                    root = ET.fromstring(archive.read(name))
                    found[kind] += _texts(root, f"{_W}{kind[:-1]}", f"{_W}t", skip_types=True)
                elif name == "word/comments.xml":
                    found["comments"] += _texts(ET.fromstring(archive.read(name)), f"{_W}comment", f"{_W}t")
                elif re.fullmatch(r"word/(header|footer)\d*\.xml", name):
                    root = ET.fromstring(archive.read(name))
                    found["header_footer"].append("".join(t.text or "" for t in root.iter(f"{_W}t")))
                elif re.fullmatch(r"xl/comments\d*\.xml", name):
                    root = ET.fromstring(archive.read(name))
                    found["comments"] += _texts(root, f"{_S}comment", f"{_S}t")
                elif re.fullmatch(r"ppt/comments/.*\.xml", name):
                    root = ET.fromstring(archive.read(name))
                    for cm in root.iter():
                        if cm.tag.rpartition("}")[2] == "cm":
                            found["comments"].append(
                                " ".join(t.text or "" for t in cm.iter() if t.tag in (f"{_A}t", f"{_P}text"))
                            )
                elif re.fullmatch(r"ppt/notesSlides/notesSlide\d+\.xml", name):
                    root = ET.fromstring(archive.read(name))
                    for sp in root.iter(f"{_P}sp"):
                        ph = sp.find(f"{_P}nvSpPr/{_P}nvPr/{_P}ph")
                        if ph is not None and ph.get("type", "body") == "body":
                            found["notes"].append(" ".join(t.text or "" for t in sp.iter(f"{_A}t")))
            except (ET.ParseError, KeyError, zipfile.BadZipFile, OSError, EOFError, ValueError):
                continue
    out: dict[str, list[str]] = {}
    for kind, texts in found.items():
        keep = sorted({squash(t)[:40] for t in texts if len(squash(t)) >= 8})
        if keep:
            out[kind] = keep
    return out


def docmill_run(files: list[Path]) -> list[dict[str, Any]]:
    rows = []
    options = ExtractOptions()
    process_task(Task(0, 0, str(files[0]), None, 1 << 31, options))  # imports, once
    for i, path in enumerate(files):
        started = time.perf_counter()
        out = process_task(Task(i, i, str(path), None, 1 << 31, options))
        seconds = time.perf_counter() - started
        parts = [p["text"] for p in out.extra.get("parts", [])]
        names = [t["name"] for t in out.extra.get("tables", []) if t.get("name")]  # sheets'
        text = "\n".join([*names, *out.text, *parts])
        if out.error is not None and out.error.category != "empty":
            status = "failed"
        else:
            status = "ok" if squash(text) else "empty"
        rows.append({"file": str(path), "status": status, "seconds": seconds, "text": text,
                     "error": out.error.to_dict() if out.error else None})
    return rows


def peer_run(python: Path, tool: str, files: list[Path]) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(python), str(HERE / "formats_peers.py"), tool],
        input="\n".join(str(f) for f in files),
        capture_output=True, text=True, timeout=3600, check=False,
    )
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    for row in rows:
        row["text"] = visible(row["text"])
        if row["status"] == "ok" and not squash(row["text"]):
            row["status"] = "empty"
    seen = {r["file"] for r in rows}
    for f in files:  # a crash of the whole process fails the files it never answered
        if str(f) not in seen:
            rows.append({"file": str(f), "status": "failed", "seconds": 0.0, "text": "",
                         "error": f"{tool} process ended: {done.stderr[-200:]}"})
    return rows


def ensure_peers(folder: Path) -> Path:
    python = folder / "bin" / "python"
    if not python.exists():
        venv.create(folder, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "kreuzberg",
                        "markitdown[docx,pptx,xlsx]"], check=True)
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=HERE / "results" / "formats-corpus")
    parser.add_argument("--peers-venv", type=Path, default=HERE / "results" / "peers-venv")
    parser.add_argument("--formats", default="docx,xlsx,pptx,epub,html")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "formats.json")
    parser.add_argument("--rounds", type=int, default=3,
                        help="timing rounds, the tools in turn; a file's seconds are its fastest round's")
    args = parser.parse_args()
    python = ensure_peers(args.peers_venv)
    summary: dict[str, Any] = {}
    header = (f"{'format':6} {'tool':10} {'files':>5} {'ok':>4} {'fail':>4} {'empty':>5} "
              f"{'chars':>10} {'÷best':>6} {'seconds':>8}  " + " ".join(f"{k:>13}" for k in KINDS))
    print(header)
    for fmt in args.formats.split(","):
        files = sorted(p for p in (args.corpus / fmt).glob("*") if p.is_file())
        if not files:
            continue
        wanted = {str(f): snippets(f) for f in files}
        results: dict[str, list[dict[str, Any]]] = {}
        for _ in range(max(args.rounds, 1)):  # each tool in turn, round after round
            for tool in ("docmill", *PEERS):
                rows = docmill_run(files) if tool == "docmill" else peer_run(python, tool, files)
                if tool not in results:
                    results[tool] = rows
                    continue
                fastest = {r["file"]: r["seconds"] for r in rows}
                for r in results[tool]:  # a file's time: its fastest round
                    r["seconds"] = min(r["seconds"], fastest.get(r["file"], r["seconds"]))
        own = {str(f): own_words(f, fmt) for f in files}
        for rows in results.values():  # an output without any of the file's words is empty
            for r in rows:
                if r["status"] == "ok" and not chars_of(r["text"], own[r["file"]]):
                    r["status"] = "empty"
        chars = {tool: sum(chars_of(r["text"], own[r["file"]]) for r in rows) for tool, rows in results.items()}
        best_peer = max(chars[t] for t in PEERS) or 1
        summary[fmt] = {}
        for tool, rows in results.items():
            by_file = {r["file"]: r for r in rows}
            counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "empty")}
            shares = {}
            for kind in KINDS:
                total = found = 0
                for f, kinds in wanted.items():
                    squashed = None
                    for snippet in kinds.get(kind, []):
                        total += 1
                        if squashed is None:
                            squashed = squash(by_file[f]["text"])
                        found += snippet in squashed
                shares[kind] = (found, total)
            seconds = sum(r["seconds"] for r in rows)
            ratio = chars[tool] / best_peer
            summary[fmt][tool] = {**counts, "files": len(files), "chars": chars[tool],
                                  "ratio": ratio, "seconds": seconds, "snippets": shares,
                                  "failures": [(Path(r["file"]).name, r["error"]) for r in rows if r["status"] == "failed"][:20]}
            share_text = " ".join(
                f"{f'{n}/{t}':>13}" if t else f"{'-':>13}" for n, t in shares.values()
            )
            print(f"{fmt:6} {tool:10} {len(files):5} {counts['ok']:4} {counts['failed']:4} "
                  f"{counts['empty']:5} {chars[tool]:10,} {ratio:6.2f} {seconds:8.2f}  {share_text}",
                  flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    print(f"details: {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
