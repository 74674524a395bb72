"""gdrive:// deliveries against the Drive simulator on loopback: the production Drive
client and destination, only their two base URLs pointed at the simulator. In this
process first (the destination on its own: folders found or created once, uploads
whole, resumed, checked), then through the real CLI (a Drive folder classified and
filed by class; kill -9 around uploads, then a rerun: each file once in Drive, counted
in the simulator's model; moves within Drive; secrets by reference)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from docmill.deliver.destinations import DestinationContext, open_destination
from docmill.deliver.errors import DeliveryFailed
from docmill.deliver.gdrive import SHA_KEY, DriveDestination
from docmill.deliver.work import new_retrier
from docmill.settings import SourceSettings
from docmill.sources.backend import Secrets
from docmill.sources.urls import parse
from docmill.testkit.drive_model import Item
from docmill.testkit.drive_sim import DriveSimConfig, SimHandle, serve_in_thread
from docmill.testkit.labelled import generate
from docmill.testkit.llm_sim import SimConfig
from docmill.testkit.llm_sim import serve_in_thread as serve_llm
from drive_kit import Tree, drive_env, write_key
from engine_kit import ROOT, docmill_cmd, read_parts
from remote_kit import grep_tree, run_docmill

pytest.importorskip("cryptography", reason="service-account keys need the gdrive extra (cryptography)")

KiB = 1 << 10
MiB = 1 << 20


@pytest.fixture
def sim() -> Iterator[SimHandle]:
    with serve_in_thread(DriveSimConfig(seed=11)) as handle:
        yield handle


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def destination(sim: SimHandle, root: str, tmp_path: Path, **kwargs: Any) -> DriveDestination:
    key = write_key(tmp_path / "secrets", sim.service_account())
    options = SourceSettings(gdrive_api_url=sim.api_url, gdrive_token_url=sim.token_url,
                             gdrive_credentials=str(key))
    return DriveDestination(DestinationContext(root, parse(root), 30.0, Secrets(frozenset()), options),
                            **kwargs)


def files_below(sim: SimHandle, folder: str) -> dict[str, list[Item]]:
    """Every path below ``folder`` (folders end in /), with each item of that path:
    more than one is a duplicate Drive allowed."""
    found: dict[str, list[Item]] = {}
    for path, item in sim.data.walk(folder):
        found.setdefault(path, []).append(item)
    return found


def contents(sim: SimHandle, folder: str) -> dict[str, bytes]:
    """Each file below ``folder`` by path, asserting that no path holds two items."""
    found = files_below(sim, folder)
    twice = {p: len(items) for p, items in found.items() if len(items) > 1}
    assert not twice, f"paths held more than once: {twice}"
    return {p: items[0].content for p, items in found.items() if not p.endswith("/")}


# --- the destination in this process ---------------------------------------------------------


def test_threads_filing_into_new_folders_create_each_once_and_uploads_land_whole(
    sim: SimHandle, tmp_path: Path
) -> None:
    top = sim.data.add_folder("Cases")
    dest = destination(sim, f"gdrive://{top}/filed/", tmp_path)
    docs = {f"invoice/2024/{m:02d}/doc-{i}.txt": f"document {i} of month {m}\n".encode()
            for m in (1, 2) for i in range(12)}
    errors: list[BaseException] = []

    def deliver(keys: list[str]) -> None:
        try:
            for key in keys:
                data = docs[key]
                if not dest.holds(key, len(data), sha(data)):
                    dest.put(key, iter([data]), len(data), sha(data), f"archive-{key}")
        except BaseException as exc:
            errors.append(exc)

    keys = sorted(docs)
    threads = [threading.Thread(target=deliver, args=(keys[i::6],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    tree = contents(sim, top)  # no folder and no file twice
    assert {p for p in files_below(sim, top) if p.endswith("/")} == {
        "filed/", "filed/invoice/", "filed/invoice/2024/", "filed/invoice/2024/01/",
        "filed/invoice/2024/02/"}
    assert tree == {f"filed/{k}": v for k, v in docs.items()}
    stats = sim.stats()
    assert stats["created"] == {"folder": 5, "multipart": len(docs)}
    # every file carries its item and its sha256; holds says so, and a second put is a no-op
    item = files_below(sim, top)["filed/invoice/2024/01/doc-0.txt"][0]
    assert item.app_properties == {"docmill": "archive-invoice/2024/01/doc-0.txt",
                                   SHA_KEY: sha(docs["invoice/2024/01/doc-0.txt"])}
    assert item.mime == "text/plain"
    assert dest.holds("invoice/2024/01/doc-0.txt", item_size := len(item.content), sha(item.content))
    assert not dest.holds("invoice/2024/01/doc-0.txt", item_size, sha(b"other bytes"))
    assert not dest.holds("invoice/2030/none.txt", 1, sha(b"x"))  # creates nothing
    assert "filed/invoice/2030/" not in files_below(sim, top)
    dest.close()


def test_a_twin_folder_is_never_used_the_oldest_is(sim: SimHandle, tmp_path: Path) -> None:
    top = sim.data.add_folder("Cases")
    # two folders of one name, as two creators at once (or a lagging listing) leave them
    older = sim.data.add_folder("letter", top)
    newer = sim.data.add_folder("letter", top)
    for run in range(2):  # two runs (two destinations): the same folder, every time
        dest = destination(sim, f"gdrive://{top}/", tmp_path)
        data = f"letter {run}\n".encode()
        dest.put(f"letter/l{run}.txt", iter([data]), len(data), sha(data), f"a-{run}")
        dest.close()
    assert [n for n, _ in sim.data.walk(older)] == ["l0.txt", "l1.txt"]
    assert sim.data.walk(newer) == []


def test_put_replaces_its_own_older_file_and_leaves_a_strangers_alone(sim: SimHandle, tmp_path: Path) -> None:
    top = sim.data.add_folder("Records")
    stranger = sim.data.add_file("part-000001.jsonl", b"someone else's\n", top)
    dest = destination(sim, f"gdrive://{top}/", tmp_path)
    dest.put("part-000001.jsonl", iter([b"v1\n"]), 3, None, "parts-1")
    dest.put("part-000001.jsonl", iter([b"version 2\n"]), 10, None, "parts-1")  # rewritten
    found = files_below(sim, top)["part-000001.jsonl"]
    assert [i.content for i in found] == [b"someone else's\n", b"version 2\n"]
    assert found[0].id == stranger and found[1].version == 2  # one file of ours, a new revision
    dest.delete("part-000001.jsonl")  # ours is trashed, the stranger's stays
    assert [i.id for i in files_below(sim, top)["part-000001.jsonl"]] == [stranger]
    dest.delete("part-000001.jsonl")  # nothing left of ours: fine
    dest.delete("no/such/folder/x")
    dest.close()


def test_a_resumable_upload_resumes_after_dropped_connections_and_checks_the_sha256(
    sim: SimHandle, tmp_path: Path
) -> None:
    top = sim.data.add_folder("Big")
    dest = destination(sim, f"gdrive://{top}/", tmp_path, multipart_max=64 * KiB, chunk_size=256 * KiB)
    data = random.Random(5).randbytes(5 * 256 * KiB + 1234)  # 6 chunks, the last short
    sim.reconfigure(drop_upload_every=3)
    retrier = new_retrier(retries=10, requests_per_s=0, stop=threading.Event())
    reads = []

    def attempt() -> None:
        reads.append(1)  # each try reads the source again from its start
        dest.put("scans/big.bin", iter(data[i : i + 100 * KiB] for i in range(0, len(data), 100 * KiB)),
                 len(data), sha(data), "archive-7")

    retrier.call(attempt)
    stats = sim.stats()
    assert stats["sessions"] == 1  # resumed each time, never started over
    assert stats["dropped_uploads"] >= 2 and stats["status_queries"] == stats["dropped_uploads"]
    assert len(reads) == stats["dropped_uploads"] + 1
    assert contents(sim, top) == {"scans/big.bin": data}
    # a source that no longer has its record's bytes: nothing appears, the session is cancelled
    sim.reconfigure(drop_upload_every=0)
    with pytest.raises(DeliveryFailed) as failed:
        dest.put("scans/other.bin", iter([data[:-1] + b"!"]), len(data), sha(data), "archive-8")
    assert failed.value.category == "changed"
    assert "scans/other.bin" not in contents(sim, top)
    assert sim.data.sessions == {} or all(s.done for s in sim.data.sessions.values())
    dest.close()


def test_an_unknown_root_and_a_refused_token_fail_deliveries_naming_them(sim: SimHandle, tmp_path: Path) -> None:
    dest = destination(sim, "gdrive://1NoSuchFolderAnywhere000000000/", tmp_path)
    with pytest.raises(DeliveryFailed) as missing:
        dest.put("a.txt", iter([b"a"]), 1, sha(b"a"), "x-1")
    assert missing.value.category == "missing" and "no folder with the id" in missing.value.message
    dest.close()
    token = sim.access_token()
    options = SourceSettings(gdrive_api_url=sim.api_url, gdrive_token_url=sim.token_url,
                             gdrive_token_env="DRIVE_TOKEN_FOR_TEST")
    os.environ["DRIVE_TOKEN_FOR_TEST"] = token + "-revoked"
    try:
        refused = open_destination("gdrive://root/filed/", secrets=Secrets(frozenset()), timeout_s=5,
                                   options=options)
        with pytest.raises(DeliveryFailed) as denied:
            refused.holds("a.txt", 1, None)
        refused.close()
    finally:
        del os.environ["DRIVE_TOKEN_FOR_TEST"]
    assert denied.value.category == "denied" and "is not accepted" in denied.value.message
    assert token not in denied.value.message


# --- through the CLI ---------------------------------------------------------------------------


def config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def llm_spec(folder: Path, base_url: str) -> Path:
    """The example spec (examples/llm/) pointed at the LLM simulator."""
    shutil.copytree(ROOT / "examples" / "llm", folder)
    spec = folder / "spec.toml"
    text = spec.read_text(encoding="utf-8")
    assert 'base_url = "http://127.0.0.1:8765/v1"' in text
    spec.write_text(text.replace('base_url = "http://127.0.0.1:8765/v1"', f'base_url = "{base_url}"'),
                    encoding="utf-8")
    return spec


def status(env: dict[str, str], out: Path) -> dict[str, Any]:
    result = run_docmill(env, "status", str(out), "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def delivered(out: Path, name: str) -> int:
    try:
        with sqlite3.connect(out / "docmill.db", timeout=10) as conn:
            return int(conn.execute(
                "SELECT COUNT(*) FROM deliveries WHERE name = ? AND state = 'done'", (name,)).fetchone()[0])
    except sqlite3.Error:
        return 0


def start_docmill(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(docmill_cmd(*args), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def wait_for(check: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert proc.poll() is None, f"docmill ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_a_drive_folder_classified_and_filed_by_class_into_nested_drive_folders(tmp_path: Path) -> None:
    # the user's quota: 10 queries a second, a burst check of 4 in 0.2 s (429 with
    # Retry-After), and a few 5xx: every upload meets the throttling a listing does
    drive_config = DriveSimConfig(queries_per_window=10, window_s=1.0, burst_limit=4,
                                  burst_window_s=0.2, retry_after_s=0.3, error_rate=0.03, seed=4)
    rows = generate(tmp_path / "labelled", n=10, seed=3)
    with serve_in_thread(drive_config) as sim, serve_llm(SimConfig(seed=1)) as llm:
        inbox = sim.data.add_folder("Inbox")
        tree = Tree(sim, f"gdrive://{inbox}", inbox)
        originals = {}
        for row in rows:
            name = row["file"].rsplit("/", 1)[1]
            data = (tmp_path / "labelled" / row["file"]).read_bytes()
            tree.file(name, data, mime="application/pdf")
            originals[name] = data
        cases = sim.data.add_folder("Cases")
        spec = llm_spec(tmp_path / "spec", llm.base_url)
        cfg = config(tmp_path / "docmill.toml", f"""
[llm]
spec = "{spec}"

[output]
part_max_records = 4

[[deliver]]
name = "filed"
kind = "files"
to = "gdrive://{cases}/by-class/{{class.label}}/{{date:%Y/%m}}/{{name}}"
statuses = ["done", "failed"]
retries = 12

[[deliver]]
name = "parts"
kind = "records"
to = "gdrive://{cases}/records/"
retries = 12
""")
        env = drive_env(sim, write_key(tmp_path / "secrets", sim.service_account()),
                        DOCMILL_SIM_KEY="sim-key")
        out = tmp_path / "out"
        args = ("run", tree.source, "--out", str(out), "--config", str(cfg), "--workers", "2",
                "--set", "sources.gdrive_queries_per_100s=2000", "--set", "sources.retries=12")
        result = run_docmill(env, *args)
        stats = sim.stats()
        assert result.returncode == 0, result.stderr[-3000:]
        records = read_parts(out)
        assert len(records) == len(rows)
        # the simulated LLM leaves some invoices without a currency: failed, classified all the same
        assert {r["status"] if r["status"] == "done" else r["error"]["category"] for r in records} <= {
            "done", "invalid_output"}
        labels = {r["source"].rsplit("/", 1)[1]: r["class"]["label"] for r in records}
        assert len(set(labels.values())) >= 3  # several classes: several folders
        month = {name: time.strftime("%Y/%m", time.gmtime(sim.data.get(fid).modified))  # type: ignore[union-attr]
                 for fid, name in ((f, n.rsplit("/", 1)[1]) for f, n in tree.urls.items())}
        tree_now = contents(sim, cases)  # no path twice: no folder, no file
        filed = {p: v for p, v in tree_now.items() if p.startswith("by-class/")}
        assert filed == {f"by-class/{labels[name]}/{month[name]}/{name}": data
                         for name, data in originals.items()}, "\n".join(
            line for line in result.stderr.splitlines() if "deliver" in line)[-5000:]
        # the records folder mirrors DIR/records, part for part
        local = {p.name: p.read_bytes() for p in sorted((out / "records").glob("part-*"))}
        assert {p: v for p, v in tree_now.items() if p.startswith("records/")} == {
            f"records/{k}": v for k, v in local.items()}
        # throttled and retried (each of the run's Drive clients honours the Retry-After
        # it receives; the listing's, the delivery's reads' and the destination's are three)
        assert stats["rate_limited_403"] + stats["rate_limited_429"] > 0, stats
        assert stats["server_errors"] > 0, stats
        # what the destination did, in one line at the end
        line = next(x for x in result.stderr.splitlines() if f"gdrive://{cases}/by-class/: " in x)
        assert re.search(rf"\d+ Drive queries, \d+ folders created, {len(rows)} uploaded", line), line
        counts = status(env, out)["deliveries"]
        assert (counts["filed"]["done"], counts["filed"]["failed"]) == (len(rows), 0)
        assert counts["parts"]["parts"]["done"] == len(local)
        # a second run lists, and uploads nothing again
        created = sum(stats["created"].values())
        again = run_docmill(env, *args)
        assert again.returncode == 0, again.stderr[-3000:]
        assert sum(sim.stats()["created"].values()) == created
        assert contents(sim, cases) == tree_now


def small_corpus(folder: Path, n: int = 6) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    out = {}
    for i in range(n):
        data = f"Invoice {i}\nTotal {10 + i}.00 EUR\n".encode()
        (folder / f"note-{i}.txt").write_bytes(data)
        out[f"note-{i}.txt"] = data
    return out


@pytest.mark.parametrize("moment", ["before", "after", "chunk"])
def test_kill_9_around_an_upload_then_a_rerun_files_each_document_once(tmp_path: Path, moment: str) -> None:
    src = tmp_path / "in"
    files = small_corpus(src)
    big = random.Random(8).randbytes(9 * MiB)  # resumable: a chunk of 8 MiB, then the rest
    (src / "scan.bin").write_bytes(big)  # skipped (no extractor), filed all the same
    files["scan.bin"] = big
    with serve_in_thread(DriveSimConfig(seed=6)) as sim:
        cases = sim.data.add_folder("Cases")
        cfg = config(tmp_path / "docmill.toml", f"""
[[deliver]]
name = "filed"
kind = "files"
to = "gdrive://{cases}/{{status}}/{{ext}}/{{name}}"
statuses = ["done", "skipped"]
threads = 2
""")
        env = drive_env(sim, write_key(tmp_path / "secrets", sim.service_account()))
        out = tmp_path / "out"
        args = ("run", str(src), "--out", str(out), "--config", str(cfg), "--workers", "1")
        sim.reconfigure(hold_uploads=moment)
        proc = start_docmill(env, *args)
        try:
            wait_for(lambda: sim.stats()["held"].get(moment, 0) >= 1, proc, f"an upload held {moment}")
            if moment != "chunk":
                wait_for(lambda: sim.stats()["held"].get(moment, 0) >= 2, proc, "both threads held")
        finally:
            kill(proc)
        landed = contents(sim, cases)
        if moment == "chunk":  # the other thread filed small ones; the big one is half sent
            assert "skipped/bin/scan.bin" not in landed
            assert delivered(out, "filed") == len(landed) < len(files)
        else:  # both threads held: nothing delivered as far as the ledger knows
            assert delivered(out, "filed") == 0
            assert len(landed) == (2 if moment == "after" else 0)  # after: stored, unanswered
        sim.reconfigure(hold_uploads="")
        sim.release_uploads()  # those held before are dropped; the rest answer a dead client
        result = run_docmill(env, *args)
        assert result.returncode == 0, result.stderr[-3000:]
        statuses = {r["source"].rsplit("/", 1)[1]: r["status"] for r in read_parts(out)}
        assert contents(sim, cases) == {
            f"{statuses[name]}/{name.rsplit('.', 1)[1]}/{name}": data for name, data in files.items()}
        assert status(env, out)["deliveries"]["filed"]["done"] == len(files)
        stats = sim.stats()
        if moment == "chunk":  # the killed session never completed: a new one did
            assert stats["sessions"] == 2 and stats["held"] == {"chunk": 1}


def test_kill_9_at_random_moments_then_a_rerun_files_each_document_once_in_drive(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    n = 80
    for i in range(n):
        (src / f"doc-{i:03d}.txt").write_text(f"document {i}\n" * 5)
    with serve_in_thread(DriveSimConfig(seed=9, latency_min_s=0.0, latency_max_s=0.01)) as sim:
        cases = sim.data.add_folder("Cases")
        # folders shared by many documents, made by 4 threads at once: each once
        cfg = config(tmp_path / "docmill.toml", f"""
[output]
part_max_records = 5
part_max_seconds = 0.05

[[deliver]]
name = "filed"
kind = "files"
to = "gdrive://{cases}/{{sha256:1}}/{{sha256:2}}/{{name}}"
threads = 4
""")
        env = drive_env(sim, write_key(tmp_path / "secrets", sim.service_account()))
        out = tmp_path / "out"
        args = ("run", str(src), "--out", str(out), "--config", str(cfg), "--workers", "2")
        rng = random.Random(int(os.environ.get("DOCMILL_TEST_SEED", "13")))
        kills = 0
        for target in sorted(rng.sample(range(5, n - 20), 3)):
            proc = start_docmill(env, *args)
            try:
                deadline = time.monotonic() + 120
                while proc.poll() is None and sum(sim.stats()["created"].values()) < target \
                        and time.monotonic() < deadline:
                    time.sleep(rng.uniform(0.0, 0.02))
            finally:
                if proc.poll() is None:
                    kills += 1
                kill(proc)
        assert kills >= 2
        result = run_docmill(env, *args)
        assert result.returncode == 0, result.stderr[-3000:]
        expected = {}
        for i in range(n):
            data = (f"document {i}\n" * 5).encode()
            digest = sha(data)
            expected[f"{digest[:1]}/{digest[:2]}/doc-{i:03d}.txt"] = data
        assert contents(sim, cases) == expected  # every folder and file once
        assert status(env, out)["deliveries"]["filed"]["done"] == n


def test_a_large_file_is_uploaded_in_chunks_resumed_after_dropped_connections(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    data = random.Random(2).randbytes(20 * MiB + 12345)  # three 8-MiB chunks
    (src / "archive.bin").write_bytes(data)
    with serve_in_thread(DriveSimConfig(seed=3, drop_upload_every=2)) as sim:
        cases = sim.data.add_folder("Cases")
        cfg = config(tmp_path / "docmill.toml", f"""
[[deliver]]
name = "filed"
kind = "files"
to = "gdrive://{cases}/{{name}}"
statuses = ["skipped"]
""")
        env = drive_env(sim, write_key(tmp_path / "secrets", sim.service_account()))
        result = run_docmill(env, "run", str(src), "--out", str(tmp_path / "out"), "--config", str(cfg))
        stats = sim.stats()
    assert result.returncode == 0, result.stderr[-3000:]
    assert contents(sim, cases) == {"archive.bin": data}
    assert stats["sessions"] == 1 and stats["dropped_uploads"] >= 1
    assert stats["status_queries"] == stats["dropped_uploads"]  # asked what arrived, resumed there
    assert stats["created"] == {"resumable": 1}


def test_move_within_drive_files_each_original_once_without_a_byte_uploaded(tmp_path: Path) -> None:
    with serve_in_thread(DriveSimConfig(seed=12)) as sim:
        inbox = sim.data.add_folder("Inbox")
        tree = Tree(sim, f"gdrive://{inbox}", inbox)
        names = {}
        for i in range(6):
            names[tree.pdf(f"letter-{i}.pdf", f"Dear customer {i}, kind regards")] = f"letter-{i}.pdf"
        tree.native("Minutes", "document", ["Minutes of the board"])
        cases = sim.data.add_folder("Cases")
        cfg = config(tmp_path / "docmill.toml", f"""
[[deliver]]
name = "filed"
kind = "files"
to = "gdrive://{cases}/{{ext}}/{{name}}"
mode = "move"
threads = 2
""")
        env = drive_env(sim, write_key(tmp_path / "secrets", sim.service_account()))
        out = tmp_path / "out"
        args = ("run", tree.source, "--out", str(out), "--config", str(cfg), "--workers", "1")
        sim.reconfigure(hold_uploads="after")  # two moves done, their answers held; killed
        proc = start_docmill(env, *args)
        try:
            wait_for(lambda: sim.stats()["held"].get("after", 0) >= 2, proc, "two moves held")
        finally:
            kill(proc)
        assert len(contents(sim, cases)) == 2 and delivered(out, "filed") == 0
        sim.reconfigure(hold_uploads="")
        sim.release_uploads()
        result = run_docmill(env, *args)
        stats = sim.stats()
    assert result.returncode == 0, result.stderr[-3000:]
    filed = files_below(sim, cases)
    assert sorted(p for p in filed if not p.endswith("/")) == sorted(
        [f"pdf/{n}" for n in names.values()] + ["pdf/Minutes"])  # a Google Doc keeps its name
    for file_id, name in names.items():
        [item] = filed[f"pdf/{name}"]
        assert item.id == file_id and item.content == tree.data[file_id]  # the same file, moved
    assert files_below(sim, inbox) == {}
    assert stats["created"] == {"folder": 1}  # nothing uploaded
    assert stats["moved"] == 7 and sum(stats["media_by_file"].values()) == 6  # read once, to process
    assert re.search(rf"gdrive://{cases}/: \d+ Drive queries, 5 moved\n", result.stderr)


def test_move_from_a_shared_drive_to_a_local_folder_trashes_each_source_once_copied(tmp_path: Path) -> None:
    with serve_in_thread(DriveSimConfig(seed=14)) as sim:
        drive = sim.data.add_shared_drive("Team Inbox")
        scans = sim.data.add_folder("Scans", drive)
        tree = Tree(sim, "gdrive://shared/Team Inbox/Scans", scans)
        for i in range(4):
            tree.file(f"note-{i}.txt", f"note {i}\n".encode(), mime="text/plain")
        filed = tmp_path / "filed"
        cfg = config(tmp_path / "docmill.toml", f"""
[[deliver]]
name = "local"
kind = "files"
to = "{filed}/{{name}}"
mode = "move"
""")
        env = drive_env(sim, write_key(tmp_path / "secrets", sim.service_account()))
        result = run_docmill(env, "run", tree.source, "--out", str(tmp_path / "out"), "--config", str(cfg))
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p.name: p.read_bytes() for p in filed.iterdir()} == {
        f"note-{i}.txt": f"note {i}\n".encode() for i in range(4)}
    assert files_below(sim, scans) == {}
    assert {item.id for item in sim.data.items.values() if item.trashed} == set(tree.data)


def test_a_gdrive_destination_without_credentials_or_with_a_bad_root_stops_the_run_saying_so(
    sim: SimHandle, tmp_path: Path
) -> None:
    src = tmp_path / "in"
    small_corpus(src, 1)
    for to, message in (
        ("gdrive://root/filed/{name}", "no Google credentials"),
        ("gdrive://not!an!id/{name}", "expected gdrive://FOLDER_ID"),
    ):
        cfg = config(tmp_path / "docmill.toml", f"""
[[deliver]]
name = "filed"
kind = "files"
to = "{to}"
""")
        result = run_docmill(drive_env(sim), "run", str(src), "--out", str(tmp_path / "out"), "--config", str(cfg))
        assert result.returncode == 1 and message in result.stderr, result.stderr[-2000:]
        assert "Traceback" not in result.stderr


def test_a_secret_given_by_reference_appears_nowhere(tmp_path: Path) -> None:
    with serve_in_thread(DriveSimConfig(seed=15, error_rate=0.05)) as sim:
        src = tmp_path / "in"
        small_corpus(src, 3)
        cases = sim.data.add_folder("Cases")
        key_info = sim.service_account()
        key = write_key(tmp_path / "secrets", key_info)
        token = sim.access_token()
        cfg = config(tmp_path / "docmill.toml", f"""
[[deliver]]
name = "filed"
kind = "files"
to = "gdrive://{cases}/{{name}}"

[[deliver]]
name = "nowhere"
kind = "files"
to = "gdrive://1NoSuchFolderAnywhere000000000/{{name}}"
""")
        runs = [
            (drive_env(sim, key), ("run", str(src), "--out", str(tmp_path / "o1"), "--config", str(cfg))),
            (drive_env(sim, key), ("status", str(tmp_path / "o1"), "--json")),
            # a variable name no scrubber would guess: only the reference tells
            (drive_env(sim, DOCMILL_SOURCES__GDRIVE_TOKEN_ENV="CASE_ACCESS", CASE_ACCESS=token),
             ("run", str(src), "--out", str(tmp_path / "o2"), "--config", str(cfg))),
            (drive_env(sim, DOCMILL_SOURCES__GDRIVE_TOKEN_ENV="CASE_ACCESS", CASE_ACCESS=token + "-revoked"),
             ("run", str(src), "--out", str(tmp_path / "o3"), "--config", str(cfg))),
        ]
        outputs = []
        for env, args in runs:
            done = run_docmill(env, *args)
            assert done.returncode == 0, done.stderr[-3000:]
            outputs.append(done.stdout + done.stderr)
        issued = list(sim.data.grants)
    assert len(contents(sim, cases)) == 3
    first = json.loads(outputs[1])["deliveries"]
    assert (first["filed"]["done"], first["nowhere"]["failures"]) == (3, {"missing": 3})
    assert "no folder with the id 1NoSuchFolderAnywhere" in first["nowhere"]["examples"][0]["message"]
    assert "is not accepted" in outputs[3]  # a refused token: deliveries fail denied, named
    pem = [line for line in key_info["private_key"].splitlines() if "-----" not in line]
    for secret in [token, *pem, *issued]:
        assert all(secret not in text for text in outputs), secret[:12]
        for n in (1, 2, 3):
            assert grep_tree(tmp_path / f"o{n}", secret.encode()) == [], (n, secret[:12])
