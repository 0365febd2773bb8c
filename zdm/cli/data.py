"""`zdm migrate`, `zdm validate` and `zdm repair`: thin commands over zdm.migrate / zdm.validate."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from zdm.cli.common import DEFAULT_CONFIG, ConfigPath, command, config_from, console
from zdm.clock import parse_time
from zdm.errors import ZdmError
from zdm.ranges.events import Planned, RangeDone, RangeFailed, Rows
from zdm.errors import ConfigError
from zdm.migrate import MigrationSettings, migrate as run_migrate
from zdm.ranges import engine as engines
from zdm.ranges.context import RunSettings, consistency
from zdm.scope import Scope
from zdm.validate import ValidationParams, ValidationSettings, repair as run_repair, validate as run_validate

Keyspaces = Annotated[list[str], typer.Option("--keyspace", "-k", help="Keyspace to include (repeatable; default: scope.keyspaces).")]
Tables = Annotated[list[str], typer.Option("--table", "-t", help="Only this ks.table (repeatable).")]
ExcludeTables = Annotated[list[str], typer.Option("--exclude-table", help="Skip this ks.table (repeatable).")]
ExcludeKeyspaces = Annotated[list[str], typer.Option("--exclude-keyspace", help="Skip this keyspace (repeatable).")]
Workers = Annotated[Optional[int], typer.Option("--workers", "-w", help="Worker processes (0: in this process; default 2); local engine only.")]
Concurrency = Annotated[Optional[int], typer.Option("--concurrency", help="Ranges in flight per worker (default 4); local engine only.")]
Engine = Annotated[str, typer.Option("--engine", help="What runs the ranges: local (worker processes) or spark (a Spark cluster's executors, through pyspark: pip install 'zdm\\[spark]').")]
Master = Annotated[Optional[str], typer.Option("--master", metavar="URL", help="Spark master for --engine spark: local[N], spark://HOST:PORT, yarn, k8s://... (default under spark-submit: its --master).")]
FetchSize = Annotated[int, typer.Option("--fetch-size", help="Rows per page.")]
RateLimit = Annotated[Optional[float], typer.Option("--rate-limit", help="Rows/s over all workers (default: unlimited).")]
ReadCL = Annotated[str, typer.Option("--read-consistency", help="Consistency level of reads.")]
WriteCL = Annotated[str, typer.Option("--write-consistency", help="Consistency level of writes.")]
Splits = Annotated[Optional[int], typer.Option("--splits", help="Token ranges to cut the ring into.")]
JsonOut = Annotated[Optional[Path], typer.Option("--json", help="Write the report as JSON to this file.", dir_okay=False)]
NoProgress = Annotated[bool, typer.Option("--no-progress", help="No live progress display.")]
DualWritesSince = Annotated[Optional[str], typer.Option(
    "--dual-writes-since", metavar="ISO-TIME",
    help="When dual writes began (default: when the migration entered phase 1). Only tables "
         "whose non-frozen collections/UDTs origin cannot read cell by cell (before 5.0) use it.")]


def _since(text: str | None, option: str = "--dual-writes-since"):
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not an ISO 8601 time",
                          hint="e.g. 2024-05-01T12:00:00+00:00 (a time without zone is UTC)") from None


def _fallback_note(tables) -> str | None:
    """One line naming the columns copied (or compared) by the fallback, if any."""
    parts = [f"{t.table} ({', '.join(cols)})" for t in tables
             if (cols := getattr(t, "fallback_columns", None) or getattr(t, "contents_only", None))]
    return "; ".join(parts) or None


def _run_settings(engine, master, workers, concurrency, fetch_size, rate_limit, read_cl, write_cl,
                  splits):
    if engine == "spark":
        for name, value in (("--workers", workers), ("--concurrency", concurrency)):
            if value is not None:
                raise ConfigError(f"{name} is for the local engine", path=name,
                                  hint="on Spark each executor core runs one range at a time: size "
                                       "the run with the master (local[N]) or the executors "
                                       "(spark-submit --total-executor-cores, --num-executors)")
    workers = 2 if workers is None else workers
    concurrency = 4 if concurrency is None else concurrency
    for name, value in (("--workers", workers), ("--concurrency", concurrency - 1),
                        ("--fetch-size", fetch_size - 1)):
        if value < 0:
            raise ConfigError(f"{name} is too small", hint="use a positive number")
    consistency(read_cl), consistency(write_cl)
    run = RunSettings(engine=engine, master=master, workers=workers, concurrency=concurrency,
                      fetch_size=fetch_size, rate_limit=rate_limit, read_consistency=read_cl,
                      write_consistency=write_cl, splits=splits)
    engines.check(run)
    return run


class _Progress:
    """Rich live display: one line per table (ranges done, rows, rows/s, ETA)."""

    def __init__(self, enabled: bool) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeRemainingColumn)

        self.enabled = enabled and console.is_terminal
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("ranges  {task.fields[rows]:>10,} rows  {task.fields[rate]:>8,.0f} rows/s"),
                                 TimeRemainingColumn(), console=console, disable=not self.enabled)
        self.tasks: dict[str, int] = {}
        self.rows: dict[str, int] = {}
        self.start = time.monotonic()

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def plan(self, table: str, total: int, done: int = 0) -> None:
        self.tasks[table] = self.progress.add_task(table, total=total, completed=done, rows=0, rate=0.0)
        self.rows[table] = 0

    def rows_copied(self, table: str, n: int) -> None:
        self.rows[table] += n
        rate = self.rows[table] / max(1e-6, time.monotonic() - self.start)
        self.progress.update(self.tasks[table], rows=self.rows[table], rate=rate)

    def range_done(self, table: str) -> None:
        self.progress.advance(self.tasks[table])

    def on_event(self, e: object) -> None:
        """Follow range work's events (:mod:`zdm.ranges.events`)."""
        if isinstance(e, Planned):
            self.plan(e.table, e.ranges_total, e.ranges_total - e.ranges_remaining)
        elif isinstance(e, Rows):
            self.rows_copied(e.table, e.rows)
        elif isinstance(e, RangeDone):
            self.range_done(e.table)


def _write_json(path: Path | None, data: dict) -> None:
    if path is not None:
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")
        console.print(f"Report written to {path}.")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `zdm` app."""

    @app.command()
    @command
    def migrate(
        config: ConfigPath = DEFAULT_CONFIG, keyspace: Keyspaces = [], table: Tables = [],
        exclude_table: ExcludeTables = [], exclude_keyspace: ExcludeKeyspaces = [],
        resume: Annotated[bool, typer.Option("--resume", help="Redo only ranges an earlier run did not finish.")] = False,
        engine: Engine = "local", master: Master = None,
        workers: Workers = None, concurrency: Concurrency = None, fetch_size: FetchSize = 1000,
        rate_limit: RateLimit = None, read_consistency: ReadCL = "LOCAL_QUORUM",
        write_consistency: WriteCL = "LOCAL_QUORUM", splits: Splits = None,
        json_out: JsonOut = None, no_progress: NoProgress = False,
        dual_writes_since: DualWritesSince = None,
        since: Annotated[Optional[str], typer.Option("--since", metavar="TIME", help="A catch-up: copy only the cells written at or after TIME (ISO 8601; without a zone, UTC), e.g. after a rollback or an outage of target.")] = None,
    ) -> None:
        """Copy the tables in scope from origin to target, keeping every cell's writetime and TTL."""
        from rich.table import Table

        settings = MigrationSettings(
            scope=Scope(keyspaces=keyspace, tables=table, exclude_tables=exclude_table,
                        exclude_keyspaces=exclude_keyspace),
            run=_run_settings(engine, master, workers, concurrency, fetch_size, rate_limit,
                              read_consistency, write_consistency, splits),
            resume=resume, dual_writes_since=_since(dual_writes_since),
            since=_since(since, "--since"))
        cfg = config_from(config)
        with _Progress(not no_progress) as progress:
            def on_event(e):
                progress.on_event(e)
                if isinstance(e, RangeFailed):
                    progress.progress.console.print(
                        f"[yellow]range {e.range} of {e.table} failed (attempt {e.attempt})"
                        f"{'' if e.final else ', retrying in smaller pieces'}:[/] {e.error}")

            report = run_migrate(cfg, settings, on_event)
        summary = Table(title="Migration" if report.since is None else
                        f"Catch-up: cells written since {report.since.isoformat()}")
        summary.add_column("table", no_wrap=True)
        for col in ("ranges", "resumed", "rows", "failed", "complete"):
            summary.add_column(col, justify="right")
        for t in report.tables:
            summary.add_row(t.table, str(t.ranges_total), str(t.ranges_skipped), f"{t.rows_copied:,}",
                            str(len(t.failed_ranges)), "yes" if t.complete else "[red]no[/]")
        console.print(summary)
        console.print(f"{report.rows_copied:,} rows in {report.elapsed_s:.1f} s "
                      f"({report.rows_per_s:,.0f} rows/s).")
        note = _fallback_note(report.tables)
        if note:
            console.print(f"[yellow]Fallback[/] (origin cannot read per-element writetimes): {note} "
                          f"written at timestamp {report.fallback_timestamp}, below the start of "
                          f"dual writes ({report.dual_writes_since.isoformat()}); their element "
                          "writetimes and TTLs are not origin's.", soft_wrap=True)
        if report.since is not None:
            console.print("A catch-up leaves the migration's evidence as the full copy recorded it; "
                          "run `zdm validate` to prove the clusters agree.", soft_wrap=True)
        _write_json(json_out, report.to_json())
        again = "zdm migrate --resume" + (f" --since {since}" if since else "")
        if report.interrupted:
            console.print("[yellow]Interrupted.[/] Finished ranges are checkpointed: "
                          f"run `{again}` to continue.")
            raise typer.Exit(130)
        if not report.complete:
            console.print("[red]The migration is not complete:[/] some ranges failed. "
                          f"Fix the cause, then run `{again}`.")
            raise typer.Exit(1)
        console.print("[green]Migration complete.[/] Recorded as evidence for `zdm phase advance`.")

    @app.command()
    @command
    def validate(
        config: ConfigPath = DEFAULT_CONFIG, keyspace: Keyspaces = [], table: Tables = [],
        exclude_table: ExcludeTables = [], exclude_keyspace: ExcludeKeyspaces = [],
        autocorrect: Annotated[bool, typer.Option("--autocorrect", help="Write origin's differing cells to target (original writetime/TTL; rows only on target are never deleted).")] = False,
        final: Annotated[bool, typer.Option("--final", help="Record as the final validation (after reads moved to target).")] = False,
        ttl_tolerance: Annotated[float, typer.Option("--ttl-tolerance", help="Seconds two TTLs may differ by.")] = 5.0,
        max_listed: Annotated[int, typer.Option("--max-listed", help="Differences listed per table.")] = 100,
        engine: Engine = "local", master: Master = None,
        workers: Workers = None, concurrency: Concurrency = None, fetch_size: FetchSize = 1000,
        rate_limit: RateLimit = None, read_consistency: ReadCL = "LOCAL_QUORUM",
        write_consistency: WriteCL = "LOCAL_QUORUM", splits: Splits = None,
        json_out: JsonOut = None, no_progress: NoProgress = False,
        dual_writes_since: DualWritesSince = None,
        resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted validation: skip the ranges it finished, count what they found.")] = False,
        only_failed: Annotated[bool, typer.Option("--only-failed", help="Re-check only the ranges that differed or failed in the last validation.")] = False,
    ) -> None:
        """Compare origin and target range by range; exit 0 only when they agree."""
        from rich.table import Table

        cfg = config_from(config)
        settings = ValidationSettings(
            scope=Scope(keyspaces=keyspace, tables=table, exclude_tables=exclude_table,
                        exclude_keyspaces=exclude_keyspace),
            run=_run_settings(engine, master, workers, concurrency, fetch_size, rate_limit,
                              read_consistency, write_consistency, splits),
            params=ValidationParams(ttl_tolerance_s=ttl_tolerance, autocorrect=autocorrect,
                                    max_listed=max_listed),
            final=final, dual_writes_since=_since(dual_writes_since), resume=resume,
            only_failed=only_failed)
        if resume and only_failed:
            raise ZdmError("--resume and --only-failed do not go together",
                           hint="--resume finishes an interrupted validation; --only-failed re-checks "
                                "what the last one found")
        with _Progress(not no_progress) as progress:
            report = run_validate(cfg, settings, progress.on_event)
        _print_recorded(report.recorded, repaired=autocorrect)
        summary = Table(title="Validation")
        summary.add_column("table", no_wrap=True)
        carried = any(t.ranges_carried for t in report.tables)
        for col in ("rows (origin)", "missing on target", "only on target", "cells differ",
                    "fixed", "clean") + (("ranges carried",) if carried else ()):
            summary.add_column(col)
        for t in report.tables:
            summary.add_row(t.table, f"{t.rows_origin:,}", str(t.missing_on_target), str(t.only_on_target),
                            str(t.cells_differ), str(t.fixed), "yes" if t.clean else "[red]no[/]",
                            *((f"{t.ranges_carried} of {t.ranges_total}",) if carried else ()))
        console.print(summary)
        if carried:
            console.print("Ranges carried were not compared in this run: the earlier run's findings "
                          "stand for them.", soft_wrap=True)
        note = _fallback_note(report.tables)
        if note:
            console.print(f"[yellow]Compared by contents only[/], not element writetimes or TTLs "
                          f"(origin cannot read them): {note}.", soft_wrap=True)
        for t in report.tables:
            for d in t.differences[:10]:
                cells = ", ".join(f"{c['column']} {c['aspect']}: {c['origin']!r} vs {c['target']!r}"
                                  for c in d["cells"])
                console.print(f"  {t.table} {d['kind']} {d['key']}{' ' + cells if cells else ''}"
                              f"{' (fixed)' if d['fixed'] else ''}", soft_wrap=True)
        _write_json(json_out, report.to_json())
        if report.interrupted:
            console.print("[yellow]Interrupted.[/]")
            raise typer.Exit(130)
        if not report.clean:
            console.print(f"[red]{report.differences} difference(s) remain.[/] "
                          + ("" if autocorrect else "Run with --autocorrect to repair target."))
            raise typer.Exit(1)
        console.print("[green]Origin and target agree.[/] Recorded as evidence.")

    @app.command()
    @command
    def repair(
        config: ConfigPath = DEFAULT_CONFIG,
        json_out: JsonOut = None,
    ) -> None:
        """Copy the rows the proxies recorded as divergent from the cluster that has them right.

        A write the secondary cluster missed (`proxy.secondary_write_failure: record`) or an LWT
        the clusters decided differently: each recorded row is compared and copied with its
        writetimes, so a newer write by the application always wins; safe while it writes.
        """
        report = run_repair(config_from(config))
        _print_recorded(report, repaired=True)
        _write_json(json_out, report.to_json())
        if report.pending:
            console.print(f"[red]{len(report.pending)} recorded row(s) still differ.[/] Check that both "
                          "clusters are up, then run `zdm repair` again.")
            raise typer.Exit(1)
        console.print("[green]Every recorded row agrees on both clusters.[/]" if report.checks else
                      "Nothing recorded: no row is known to differ.")


def _print_recorded(report, *, repaired: bool) -> None:
    """What became of the rows the proxies recorded as divergent."""
    if not report.checks:
        return
    console.print(f"Recorded rows re-checked first: {len(report.checks)}, "
                  f"{report.resolved} {'fixed or ' if repaired else ''}in agreement now, "
                  f"{len(report.pending)} still differ.", soft_wrap=True)
    for c in report.pending[:10]:
        console.print(f"  {c.kind} {c.key} (right on {c.source}): {c.state} {c.detail}".rstrip(),
                      soft_wrap=True)
