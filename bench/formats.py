"""DOCX, XLSX, PPTX, EPUB and HTML from other projects' test suites: docmill against
Kreuzberg and markitdown, per format.

    python bench/formats_corpus.py                 # fetch the corpus (once)
    python bench/formats.py [--corpus DIR] [--peers-venv DIR] [--formats docx,epub]

Prints per format and tool: files ok / failed / empty, characters (letters and digits
only, so that Markdown syntax, link targets, inline data: images and HTML comments a
peer writes count for nothing: docmill's body text plus its parts; a peer's whole
output), each tool's characters ÷ the best peer's, seconds
(the extraction calls only, one process, one core), and the share of footnote, endnote,
comment, speaker-note and header/footer snippets found. The snippets are taken from
each file's own XML (the first 40 letters and digits of each note, comment, notes page
or header/footer part), and a tool finds one when its output, reduced to letters and
digits, contains it. The peers run in their own virtual environment
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
from collections import defaultdict
from pathlib import Path
from typing import Any

from docmill.processors import ExtractOptions, Task, process_task

HERE = Path(__file__).resolve().parent
PEERS = ("kreuzberg", "markitdown")
KINDS = ("footnotes", "endnotes", "comments", "notes", "header_footer")
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_P = "{http://schemas.openxmlformats.org/presentationml/2006/main}"
_S = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_KEEP = re.compile(r"[\W_]+", re.UNICODE)
# what a reader never sees in a peer's Markdown: link and image targets, HTML comments
_SCAFFOLD = re.compile(r"\]\([^)]*\)|<!--.*?-->", re.S)


def visible(text: str) -> str:
    return _SCAFFOLD.sub("]", text)


def squash(text: str) -> str:
    """Letters and digits only, lower case: what snippet matching compares."""
    return _KEEP.sub("", text).lower()


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
        text = "\n".join([*out.text, *parts])
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
        results = {"docmill": docmill_run(files)}
        for tool in PEERS:
            results[tool] = peer_run(python, tool, files)
        chars = {tool: sum(len(squash(r["text"])) for r in rows) for tool, rows in results.items()}
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
