"""``docmill`` command line. Heavy modules are imported inside each command.

Exit status: 0 the run completed (every document terminal, failures included);
1 a run-level error (bad configuration, unusable ledger, missing source);
3 the LLM budget is spent (the rest stays pending); 130 interrupted (Ctrl-C); 2 a usage
error.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BUDGET = 3
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="docmill", description="Turn piles of documents into data (text, metadata, records)."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="process documents into an output folder (resumable)")
    run.add_argument(
        "sources", nargs="*", metavar="SOURCE",
        help="files, folders (recursive) or @list.txt; none: resume the last run's sources",
    )
    run.add_argument("--out", required=True, metavar="DIR", help="output folder (ledger, records)")
    run.add_argument("--workers", type=int, metavar="N", help="worker processes (default: cores)")
    run.add_argument("--config", metavar="FILE", help="TOML settings (default: ./docmill.toml)")
    run.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
        help="override a setting, e.g. --set extract.max_pages=3 (repeatable)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress display")
    run.add_argument(
        "--executor", metavar="KIND",
        help="where documents are processed: local (default) or ray (run.executor; the "
        "cluster: --set run.ray_address=...)",
    )

    status = sub.add_parser("status", help="counts, pages, throughput and failures of a folder")
    status.add_argument("dir", metavar="DIR")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    retry = sub.add_parser("retry", help="put failed documents (or deliveries) back to pending")
    retry.add_argument("dir", metavar="DIR")
    retry.add_argument("--category", metavar="C", help="only this failure category")
    retry.add_argument(
        "--delivery", nargs="?", const="", default=None, metavar="NAME",
        help="failed deliveries instead of documents: of [[deliver]] NAME, or of every one",
    )

    export = sub.add_parser("export", help="one consolidated file from the records")
    export.add_argument("dir", metavar="DIR")
    export.add_argument("--format", choices=("jsonl", "csv", "parquet"))
    export.add_argument("-o", "--output", metavar="FILE", help="output file (default: stdout)")
    export.add_argument(
        "--tables-dir", metavar="T",
        help="also write one CSV per table ({doc_id}-p{page}-t{n}.csv) into folder T",
    )

    train = sub.add_parser(
        "train-classifier",
        help="train the LLM stage's local classifier from a folder with one sub-folder per label",
    )
    train.add_argument("labelled_dir", metavar="LABELLED_DIR")
    train.add_argument("--spec", metavar="SPEC", help="LLM spec (default: the setting llm.spec)")
    train.add_argument(
        "-o", "--output", metavar="FILE",
        help="model file (default: the spec's classifier.model_file, else classifier.json beside it)",
    )
    train.add_argument("--config", metavar="FILE", help="TOML settings (default: ./docmill.toml)")
    train.add_argument("--folds", type=int, default=5, metavar="K", help="cross-validation folds")

    est = sub.add_parser(
        "estimate", help="predict the LLM stage's calls, tokens and cost from a sample (sends nothing)"
    )
    est.add_argument("sources", nargs="+", metavar="SOURCE", help="as for `docmill run`")
    est.add_argument("--config", metavar="FILE", help="TOML settings (default: ./docmill.toml)")
    est.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
        help="override a setting, e.g. --set llm.spec=spec.toml (repeatable)",
    )
    est.add_argument("--sample", type=int, default=50, metavar="N", help="documents to read (default 50)")
    est.add_argument("--json", action="store_true", help="machine-readable output")

    serve = sub.add_parser("serve", help="the HTTP API (jobs, one-document extract, metrics)")
    serve.add_argument("--host", metavar="HOST", help="address to listen on (service.host)")
    serve.add_argument("--port", type=int, metavar="PORT", help="port (service.port)")
    serve.add_argument(
        "--workers", type=int, default=1, metavar="N",
        help="HTTP worker processes on the one port (default 1); each has its own extract pool, "
        "job threads and /metrics over the shared ledger; with service.extract_workers=0 they "
        "split the usable cores",
    )
    worker = sub.add_parser("worker", help="run the service's queued jobs (no HTTP)")
    worker.add_argument(
        "--threads", type=int, metavar="N", help="jobs at once (default: service.job_workers, min 1)"
    )
    keys = sub.add_parser("keys", help="the service's API keys: create, list, revoke")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    k_create = keys_sub.add_parser("create", help="a new key (printed once, stored hashed)")
    k_create.add_argument("--tier", required=True, help="rate-limit tier (free, pro, ...)")
    k_create.add_argument("--name", default="", help="a label for people")
    k_create.add_argument(
        "--monthly-budget-usd", type=float, default=None, metavar="USD",
        help="what the key may spend on LLM calls a calendar month, over all its jobs "
        "(default: its tier's monthly_budget_usd)",
    )
    k_revoke = keys_sub.add_parser("revoke", help="revoke a key at once")
    k_revoke.add_argument("key_id", metavar="KEY_ID")
    k_budget = keys_sub.add_parser(
        "budget", help="set a key's own monthly LLM limit (USD), or 'tier' for its tier's"
    )
    k_budget.add_argument("key_id", metavar="KEY_ID")
    k_budget.add_argument("monthly_budget_usd", metavar="USD|tier")
    k_list = keys_sub.add_parser("list", help="every key (never the secrets)")
    service_cmds = [serve, worker, k_create, k_revoke, k_budget, k_list]
    for cmd in (k_create, k_list):
        cmd.add_argument("--json", action="store_true", help="machine-readable output")
    for cmd in (serve, worker):
        cmd.add_argument(
            "--executor", metavar="KIND",
            help="where jobs' documents are processed: local (default) or ray (run.executor)",
        )
    for cmd in service_cmds:
        cmd.add_argument("--config", metavar="FILE", help="TOML settings (default: ./docmill.toml)")
        cmd.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
            help="override a setting, e.g. --set service.data_dir=/srv/docmill (repeatable)",
        )
    return parser


def _overrides(pairs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = value
    return out


def _error(message: str) -> None:
    print(f"docmill: error: {message}", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    from docmill.observability.logs import configure_logging
    from docmill.settings import SettingsError, load_settings

    configure_logging("INFO")
    try:
        overrides: dict[str, Any] = _overrides(args.overrides)
    except ValueError as exc:
        _error(str(exc))
        return EXIT_USAGE
    if args.workers is not None:
        overrides["run.workers"] = str(args.workers)
    if args.executor:
        overrides["run.executor"] = args.executor
    try:
        settings = load_settings(args.config, overrides=overrides)
    except SettingsError as exc:
        _error(f"{exc} (fix the setting in the config file, DOCMILL_* env or --set)")
        return EXIT_ERROR
    if settings.run.executor == "local":
        from docmill.engine.preload import start_forkserver

        start_forkserver()  # its imports overlap the driver's, just below
    from docmill.engine.api import run
    from docmill.engine.executor import ExecutorError
    from docmill.engine.runner import StopToken
    from docmill.sources import SourceError
    from docmill.state import Store, StoreError

    sources = list(args.sources)
    try:
        if not sources:
            store = Store.open(args.out, create=False)
            sources = store.last_run_sources()
            store.close()
    except StoreError as exc:
        _error(str(exc))
        return EXIT_ERROR

    stop = StopToken()

    def on_sigint(_signum: int, _frame: object) -> None:
        stop.request()
        if stop.abandon:
            print("\ndocmill: stopping now; in-flight documents go back to pending", file=sys.stderr)
        else:
            print(
                "\ndocmill: draining (in-flight documents finish; LLM answers are waited for "
                f"at most run.drain_s = {settings.run.drain_s:g} s); Ctrl-C again to stop now",
                file=sys.stderr,
            )

    previous = signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGTERM, on_sigint)
    try:
        summary = run(sources, args.out, settings, stop=stop, progress=not args.quiet)
    except SourceError as exc:
        _error(str(exc))
        return EXIT_ERROR
    except StoreError as exc:
        _error(str(exc))
        return EXIT_ERROR
    except SettingsError as exc:  # e.g. the LLM spec, found only when the run starts
        _error(f"{exc} (fix the setting in the config file, DOCMILL_* env or --set)")
        return EXIT_ERROR
    except ExecutorError as exc:  # e.g. Ray missing, or its cluster unreachable
        _error(str(exc))
        return EXIT_ERROR
    finally:
        signal.signal(signal.SIGINT, previous)
    if summary.status == "budget":
        spent = (summary.llm or {}).get("cost_usd", 0.0)
        print(
            f"docmill: the LLM budget is spent ({spent:.4f} USD of llm.budget_usd="
            f"{settings.llm.budget_usd:g}); {summary.counts.get('pending', 0):,} documents stay"
            " pending: raise llm.budget_usd and run the same command again to continue",
            file=sys.stderr,
        )
        return EXIT_BUDGET
    if not summary.completed:
        print(
            f"docmill: interrupted; run the same command again to resume ({args.out})",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return EXIT_OK


def status_data(out_dir: str) -> dict[str, Any]:
    """What ``docmill status`` shows; failure examples (path, message) are PII-masked,
    as every log line is (the records and ``docmill export`` keep the real path)."""
    from docmill.llm.watch import published
    from docmill.observability.redact import redact
    from docmill.state import Store

    store = Store.open(out_dir, create=False)
    try:
        counts = store.counts()
        last = store.last_run()
        failures = [
            {
                "category": category,
                "count": count,
                "examples": [
                    {"source": redact(src), "message": redact(msg)}
                    for src, msg in store.failure_examples(category, 2)
                ],
            }
            for category, count, _example in store.failure_summary(10)
        ]
        data: dict[str, Any] = {
            "out_dir": out_dir,
            "documents": sum(counts.values()),
            "counts": counts,
            "pages": store.total_pages(),
            "failures": failures,
            "last_run": None,
            "llm": store.llm_totals(),
            "deliveries": store.delivery_counts(),
        }
        for entry in data["deliveries"].values():
            for example in entry["examples"]:
                example["message"] = redact(example["message"])
        running = store.run_in_progress()
        if last and last["status"] == "running" and not running:
            last["status"] = "crashed"  # killed without a chance to record it
        data["llm_limits"] = published(store.llm_limits(), running)
        if last:
            # a run not finished counts what it finished so far (Store.last_run), until its
            # last document (a crash) or now (still running)
            end = last["finished_at"] or (time.time() if running else last["last_at"])
            elapsed = max(0.0, (end or last["started_at"]) - last["started_at"])
            data["last_run"] = {
                "status": last["status"],
                "elapsed_s": round(elapsed, 2),
                "documents": last["docs_finished"],
                "pages": last["pages_finished"],
                "docs_per_min": round(last["docs_finished"] / elapsed * 60, 1) if elapsed else None,
                "pages_per_min": round(last["pages_finished"] / elapsed * 60, 1) if elapsed else None,
            }
        return data
    finally:
        store.close()


def _limit_text(value: float, source: str, unit: str) -> str:
    if not value:
        return f"{unit}/min not known"
    return f"{value:,.0f} {unit}/min ({ {'429': '429 figures'}.get(source, source) or '?'})"


def cmd_status(args: argparse.Namespace) -> int:
    from docmill.state import StoreError

    try:
        data = status_data(args.dir)
    except StoreError as exc:
        _error(str(exc))
        return EXIT_ERROR
    if args.json:
        print(json.dumps(data, indent=2))
        return EXIT_OK
    c = data["counts"]
    print(f"{data['out_dir']}: {data['documents']:,} documents, {data['pages']:,} pages done")
    print(
        "  " + "  ".join(f"{k} {c.get(k, 0):,}" for k in ("done", "failed", "skipped", "pending", "running"))
    )
    run = data["last_run"]
    if run:
        print(
            f"  last run: {run['status']}, {run['documents']:,} documents and {run['pages']:,} pages"
            f" in {run['elapsed_s']:.1f}s ({run['pages_per_min'] or 0:,.0f} pages/min,"
            f" {run['docs_per_min'] or 0:,.0f} docs/min)"
        )
    llm = data["llm"]
    if llm["cost_usd"] or llm["labels"]:
        labels = ", ".join(f"{k} {v:,}" for k, v in llm["labels"].items())
        print(
            f"  llm: {llm['cost_usd']:.4f} USD, {llm['tokens_in']:,} tokens in,"
            f" {llm['tokens_out']:,} out; labels: {labels or 'none'}"
        )
    limits = data["llm_limits"]
    if limits and limits["models"]:
        age = time.time() - (limits["updated_at"] or 0)
        print(f"  llm limits ({'now' if limits['live'] else 'as the last run left them'}, {age:,.0f}s ago):")
        for m in limits["models"]:
            print(
                f"    {m['model']:<16} {_limit_text(m['rpm'], m['rpm_source'], 'requests')}, "
                f"{_limit_text(m['tpm'], m['tpm_source'], 'tokens')}, per {m['scope']}; "
                f"in flight {m['in_flight']:,} (of {m['concurrency']:,}), waiting {m['waiting']:,}"
                + (f", breaker {m['breaker']}" if m["breaker"] != "closed" else "")
            )
    if data["failures"]:
        print("  failures:")
        for f in data["failures"]:
            print(f"    {f['category']:<12} {f['count']:>7,}")
            for ex in f["examples"]:
                print(f"        e.g. {ex['source']}: {ex['message'][:120]}")
    for name, d in data["deliveries"].items():
        parts = d.get("parts")
        extra = f" (parts: {parts['done']:,} done, {parts['pending']:,} pending, {parts['failed']:,} failed)" if parts else ""
        print(
            f"  delivery {name} ({d['kind']}): done {d['done']:,}  pending {d['pending']:,}"
            f"  failed {d['failed']:,}{extra}"
        )
        for category, count in d["failures"].items():
            print(f"    {category:<12} {count:>7,}")
        for ex in d.get("examples", []):
            print(f"        e.g. item {ex['item']}: {ex['message'][:120]}")
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    from docmill.state import Store, StoreError

    if args.delivery is not None and args.category:
        _error("--category is for documents; --delivery puts every failed delivery back")
        return EXIT_USAGE
    try:
        store = Store.open(args.dir, create=False)
        try:
            if args.delivery is not None:
                n = store.deliveries.retry(args.delivery or None)
            else:
                n = store.retry_failed(args.category)
        finally:
            store.close()
    except StoreError as exc:
        _error(str(exc))
        return EXIT_ERROR
    if args.delivery is not None:
        which = f" of {args.delivery}" if args.delivery else ""
        print(
            f"{n:,} failed deliveries{which} are pending again; run `docmill run --out "
            f"{args.dir}` to deliver them"
        )
        return EXIT_OK
    what = f"failed ({args.category})" if args.category else "failed"
    print(f"{n:,} {what} documents are pending again; run `docmill run --out {args.dir}` to process them")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from docmill.outputs import export_records, export_tables
    from docmill.state import Store, StoreError

    if args.format is None and args.tables_dir is None:
        _error("export needs --format, --tables-dir or both")
        return EXIT_USAGE
    try:
        store = Store.open(args.dir, create=False)
    except StoreError as exc:
        _error(str(exc))
        return EXIT_ERROR
    count = tables = 0
    try:
        if args.tables_dir is not None:
            tables = export_tables(store.iter_records(), args.tables_dir)
            print(f"{tables:,} table files written to {args.tables_dir}", file=sys.stderr)
        if args.format is not None:
            count = export_records(store.iter_records(), args.format, args.output)
    except BrokenPipeError:  # `docmill export ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except ValueError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except OSError as exc:
        _error(f"cannot write the export: {exc}")
        return EXIT_ERROR
    finally:
        store.close()
    if args.output and args.format is not None:
        print(f"{count:,} records written to {args.output}", file=sys.stderr)
    return EXIT_OK


def cmd_train_classifier(args: argparse.Namespace) -> int:
    from docmill.llm.spec import load_spec
    from docmill.llm.train import TrainingError, require_sklearn, train_classifier
    from docmill.settings import SettingsError, load_settings

    try:
        require_sklearn()
        settings = load_settings(args.config)
        spec_path = args.spec or settings.llm.spec or None
        spec = load_spec(spec_path) if spec_path else None
        if spec is None and args.output is None:
            _error("train-classifier needs --spec (or the setting llm.spec) or -o FILE")
            return EXIT_USAGE
        print(f"docmill: extracting text from {args.labelled_dir} ...", file=sys.stderr)
        report = train_classifier(
            args.labelled_dir, spec=spec, output=args.output,
            max_pages=settings.llm.max_pages, folds=args.folds,
        )
    except (TrainingError, SettingsError) as exc:
        _error(str(exc))
        return EXIT_ERROR
    for path, why in report.skipped:
        print(f"  skipped {path}: {why}", file=sys.stderr)
    if report.folds:
        print(
            f"{report.folds}-fold cross-validated accuracy: {report.accuracy:.1%}"
            f" ({report.examples} documents); decided at confidence >= {report.min_confidence}:"
            f" {report.decided_share:.1%}, of which correct {report.decided_accuracy:.1%}"
        )
        for s in report.per_label:
            print(
                f"  {s.label:<16} {s.examples:>6} documents  accuracy {s.accuracy:6.1%}"
                f"  decided {s.decided / s.examples if s.examples else 0:6.1%}"
            )
    else:
        print(f"too few documents per label to cross-validate ({report.examples} documents)")
    missing = report.meta.get("labels_without_examples") or []
    if missing:
        print(f"  labels of the spec without documents (never predicted by the model): {missing}")
    print(f"model written to {report.model_file} ({report.features:,} features)")
    return EXIT_OK


def cmd_estimate(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from docmill.engine.runner import extract_options
    from docmill.llm.classify import ModelFileError
    from docmill.llm.cost import UnknownModelError
    from docmill.llm.estimate import estimate_run
    from docmill.llm.spec import SpecError, load_spec
    from docmill.settings import SettingsError, load_settings
    from docmill.sources import SourceError

    if args.sample < 1:
        _error("--sample must be at least 1")
        return EXIT_USAGE
    try:
        settings = load_settings(args.config, overrides=_overrides(args.overrides))
    except ValueError as exc:  # a bad --set pair
        if isinstance(exc, SettingsError):
            _error(f"{exc} (fix the setting in the config file, DOCMILL_* env or --set)")
            return EXIT_ERROR
        _error(str(exc))
        return EXIT_USAGE
    if not settings.llm.spec:
        _error("estimate needs an LLM spec: set llm.spec (e.g. --set llm.spec=spec.toml)")
        return EXIT_USAGE
    try:
        spec = load_spec(settings.llm.spec)
        report = estimate_run(
            args.sources, spec, settings.llm, settings.sources,
            replace(extract_options(settings), tables=False, markdown=False),
            sample=args.sample, max_file_bytes=settings.run.max_file_mb << 20,
        )
    except (SpecError, SourceError, ModelFileError, UnknownModelError) as exc:
        _error(str(exc).strip('"'))
        return EXIT_ERROR
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return EXIT_OK
    r = report
    print(
        f"{r.documents:,} documents, {r.sampled:,} sampled ({r.sent_to_llm:,} with text for the LLM,"
        f" {r.decided_share:.0%} of them decided locally)"
    )
    print(f"  classify calls  {r.classify_calls:>12,.0f}  ({r.models['classify']})")
    print(f"  extract calls   {r.extract_calls:>12,.0f}  ({r.models['extract']}; and about {r.repair_calls:,.0f} repairs)")
    print(f"  input tokens    {r.input_tokens:>12,.0f}")
    print(f"  output tokens   {r.output_tokens:>12,.0f}  (typical answers; up to llm.max_output_tokens each)")
    print(f"  cost USD        {r.cost_expected:>12,.4f}  (range {r.cost_low:,.4f} - {r.cost_high:,.4f})")
    verdict = (
        "suffices" if r.budget_suffices
        else "covers the expected cost, not the high end" if r.cost_expected <= r.budget_usd
        else "does NOT suffice"
    )
    print(f"  budget USD      {r.budget_usd:>12,.4f}  (llm.budget_usd: {verdict})")
    return EXIT_OK


def _service_settings(args: argparse.Namespace) -> Any:
    from docmill.settings import load_settings

    overrides: dict[str, Any] = _overrides(args.overrides)
    if getattr(args, "host", None):
        overrides["service.host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["service.port"] = str(args.port)
    if getattr(args, "executor", None):
        overrides["run.executor"] = args.executor
    return load_settings(args.config, overrides=overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    from docmill.observability.logs import configure_logging
    from docmill.settings import SettingsError

    configure_logging("INFO")
    try:
        settings = _service_settings(args)
    except (ValueError, SettingsError) as exc:
        _error(str(exc))
        return EXIT_ERROR
    if args.workers < 1:
        _error("--workers must be at least 1")
        return EXIT_USAGE
    from docmill.service.server import serve

    try:
        serve(settings, args.workers)
    except SettingsError as exc:  # e.g. a bad service.tiers_file
        _error(str(exc))
        return EXIT_ERROR
    return EXIT_OK


def cmd_worker(args: argparse.Namespace) -> int:
    from docmill.observability.logs import configure_logging
    from docmill.settings import SettingsError

    configure_logging("INFO")
    try:
        settings = _service_settings(args)
    except (ValueError, SettingsError) as exc:
        _error(str(exc))
        return EXIT_ERROR
    from docmill.service.server import work

    work(settings, args.threads or settings.service.job_workers)
    return EXIT_OK


def _monthly_budget(text: str) -> float | None:
    """``keys budget``'s value: USD >= 0, or ``tier`` (None: the tier's limit)."""
    if text.strip().lower() == "tier":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (0 <= value < float("inf")):
        raise ValueError(f"the monthly budget must be USD >= 0 or 'tier', got {text!r}")
    return value


def cmd_keys(args: argparse.Namespace) -> int:
    from docmill.settings import SettingsError

    try:
        settings = _service_settings(args)
        from docmill.service.keys import KeyStore
        from docmill.service.tiers import check_tier, load_tiers

        if args.keys_command == "create":
            tier = check_tier(load_tiers(settings.service.tiers_file), args.tier).name
            monthly = args.monthly_budget_usd
            if monthly is not None and not (monthly >= 0 and monthly < float("inf")):
                raise ValueError("--monthly-budget-usd must be a number >= 0")
        if args.keys_command == "budget":
            monthly = _monthly_budget(args.monthly_budget_usd)
    except (ValueError, SettingsError) as exc:
        _error(str(exc))
        return EXIT_ERROR
    with KeyStore.open(settings.service.data_dir) as store:
        if args.keys_command == "create":
            key, plaintext = store.create(tier, args.name, monthly)
            if args.json:
                print(json.dumps({**key.to_dict(), "key": plaintext}))
            else:
                print(plaintext)
                print(f"key {key.id} (tier {tier}): shown once, store it now", file=sys.stderr)
            return EXIT_OK
        if args.keys_command == "budget":
            changed = store.set_monthly_budget(args.key_id, monthly)
            if changed is None:
                _error(f"no key {args.key_id}")
                return EXIT_ERROR
            shown = "its tier's" if monthly is None else f"{monthly:g} USD"
            print(f"key {changed.id}: monthly LLM limit {shown}")
            return EXIT_OK
        if args.keys_command == "revoke":
            found = store.revoke(args.key_id)
            if found is None:
                _error(f"no key {args.key_id}")
                return EXIT_ERROR
            print(f"revoked {found.id}")
            return EXIT_OK
        rows = store.list()
    if args.json:
        print(json.dumps([k.to_dict() for k in rows]))
        return EXIT_OK
    import time

    for k in rows:
        state = "revoked" if k.revoked else "active"
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(k.created_at))
        monthly = "" if k.monthly_budget_usd is None else f"  (monthly LLM limit {k.monthly_budget_usd:g} USD)"
        print(f"{k.id}  {k.tier:<12} {state:<8} {created}Z  {k.name}{monthly}")
    return EXIT_OK


COMMANDS = {
    "run": cmd_run,
    "status": cmd_status,
    "retry": cmd_retry,
    "export": cmd_export,
    "train-classifier": cmd_train_classifier,
    "estimate": cmd_estimate,
    "serve": cmd_serve,
    "worker": cmd_worker,
    "keys": cmd_keys,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)  # exits with 2 on a usage error
    if args.version:
        from docmill import __version__

        print(f"docmill {__version__}")
        return EXIT_OK
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return COMMANDS[args.command](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
