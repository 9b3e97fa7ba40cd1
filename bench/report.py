"""Medians over runs, and the Markdown of ``BENCHMARKS.md``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench._common import Check, median


@dataclass
class Summary:
    name: str
    runs: int
    seconds: float
    checks: list[Check]
    facts: dict[str, Any] = field(default_factory=dict)
    peak_rss_mb: float = 0.0


def summarize(name: str, results: list[dict[str, Any]], seconds: float) -> Summary:
    """Each check's median value (and baseline) over the runs; the facts of the run
    whose first check is closest to that median."""
    checks: list[Check] = []
    for index, first in enumerate(results[0]["checks"]):
        values = [r["checks"][index]["value"] for r in results]
        baselines = [
            r["checks"][index]["baseline"]
            for r in results
            if r["checks"][index]["baseline"] is not None
        ]
        checks.append(
            Check(
                first["name"],
                median(values),
                first["unit"],
                first["op"],
                first["target"],
                median(baselines) if baselines else None,
            )
        )
    middle = min(results, key=lambda r: abs(r["checks"][0]["value"] - checks[0].value))
    return Summary(
        name,
        len(results),
        seconds,
        checks,
        dict(middle["facts"]),
        max(r["peak_rss_mb"] for r in results),
    )


NOTES = """\
## How each figure is measured

- **B1** `monitors.reconcile.run_diff`'s steps in its order (`read_all`, `drift.diff`,
  `ledger.record_levels`) timed one by one, with the cyclic collector paused as
  `run_diff` pauses it, and then the pause's end and the collector's first walk once back
  on (`collector`, since 2026-12-06). Since 2026-12-06 night a full diff's pause ends by
  freezing what it left alive, and every 8th runs a full collection first
  (`monitors/collector.py`). Neither of B1's two runs is one of those, so B1 times that
  full collection once after them, with the memo's levels alive
  (`full_collection_cpu_s`), and adds an eighth of it (`full_collection_share_s`) to both
  runs' product CPU in the table; the facts' `*_total_cpu_s` leave it out. The measured
  runs go against the fake Shopify (bulk operation
  JSONL), the fake WMS (paged REST, 500 per page) and the fake ERP (one CSV export), into
  a SQLite ledger (B1) and a fresh PostgreSQL schema (B1PG). The fakes run in their own
  process (`bench/fakes.py`), so peak RSS is the product's process. Product CPU =
  `getrusage(RUSAGE_SELF)` user + system of that process (every thread, the SQLite
  driver's included); the fakes' CPU (`/proc/PID/stat` of their process) and, on
  PostgreSQL, the database server's (its backends for this run's connections) are reported
  beside it, and wall time too. Two knobs remove costs of the fakes only: the bulk
  operation completes as soon as it is polled, and the fake WMS keeps its levels sorted
  between pages (it sorts the whole table per request). The product still waits its first
  bulk poll interval (1 s).
- **B1F** the floor under B1's first run on SQLite: B1's 6.5 million keys (13 per SKU ×
  location), since migration 0014 1.5 million rows of `levels` (one per SKU × location
  and system, a quantity per state; a first read writes no history), written into the
  ledger's own schema by the standard library's `sqlite3` alone, with the statement the
  ledger writes a first read's levels with (one `executemany` per chunk of 20,000 keys,
  all in one transaction as a batch is recorded, WAL, `synchronous=NORMAL`), rows built
  before the clock starts. `per_state_cpu_s` writes the same keys as 0013 did, a
  `level_current` row per key, into a database at revision 0013 (the A/B of the row per
  level); `chunk_commits_cpu_s` commits after every chunk; `page_16k_cpu_s` writes into a
  database made with 16 KiB pages (the default is 4 KiB); the `with_history` probe writes
  the keys as before 0013, a history row beside each. No Driftwatch code runs while it
  is timed. Probes beside it: key and quantity alone, a row per key (`bare`); a row per
  level with a column per state and its `since` once (`wide`), and the history row per
  level a first read would write without 0013 (`wide_history`); the ledger's own steps
  into a 14-column `levels` with no own columns and no partial index (`lean`: what
  moving a state's own columns to a table of their own could keep).
- **B2** `monitors.drift.diff` on Level objects built before the clock starts. Baseline:
  a polars full outer join of the three systems' rows on (sku, location) computing each
  gap to the truth (loading included; polars uses every core, the engine one); a Python
  dict join is reported beside it.
- **B3** bucket time on a ManualClock shared by the connector and the fake Shopify: only
  the connector's own waits move it, so waited time ÷ `max(0, cost − 2,000) ÷ 100` is
  how close it paces to the bucket. The one-call-per-item baseline runs on a sample and
  is scaled linearly to the full count.
- **B4** signed requests over HTTP to `Service`'s `/slack/events` (the real bolt app);
  the 200 concurrent commands come from a load generator in another process
  (`bench/b4_sender.py`), so it does not take the bot's event loop; bot and fakes share
  one process. `/drift SKU` answers
  through the response_url without a chart; the chart comes with its Share button, so a
  "full answer" sample is `/drift` → private answer → Share → chart upload completed.
  Baseline: the same on an empty ledger.
- **B5** `Service` on a ManualClock (shared with the fake Slack): latency = wall time
  from the change in the fake Shopify to `chat.postMessage` + the clock seconds the
  service waited (the 2 s debounce). Baseline: polling every 180 s, a change waiting
  for the next poll (phases spread evenly) plus one measured full diff and delivery.
- **B6** drifts → `build_pipeline()` → ledger outbox → `OutboxWorker` every 2 clock
  seconds → fake Slack (1 post/s/channel, burst 3). Baseline: one message per drift.
- **B7** `bot.charts.sku.render_sku_chart` (Agg in the chart worker process,
  `bot.charts.sku.off_loop`); lag = how late a 5 ms ticker on the loop wakes, while all
  charts render at once. Baseline: the same charts rendered on the loop.
- **B8** three `driftwatch serve` processes on one PostgreSQL schema, the fakes in a
  process of their own (`sandbox/fleet.py`), a round-robin TCP balancer in front
  (`bench/cluster.py`), 2 s ticks on real time. Runs per tick: `driftwatch_job_runs_total
  {job="diff"}` summed over the replicas' `/metrics` ÷ the most ticks one timer fires
  in the window (`ceil(seconds ÷ 2)`). Duplicate
  alerts: Slack alerts beyond one per drifting SKU once the outbox is empty. Failover:
  kill -9 of the drift-diff lease holder → a survivor's diff counter moves.
  Webhooks/s: signed `inventory_levels/update` deliveries posted concurrently through
  the balancer, 2xx per second of wall time, with the balancer sending to one replica
  and to all three in turn, 1, 3, 3, 1 (in the facts below; a replica is CPU-bound, so three add
  throughput only on free cores, which a 2-core machine shared with PostgreSQL, the
  fakes and the balancer does not have). The target is the replicas' own CPU per
  delivery (user + system from `/proc`, until every delivery is processed): with three
  replicas at most 1.25× one's, so throughput on N free cores is about N ÷ that cost.
- **B9** one SKU looked up in a ledger holding B1's first-run rows (written before the
  clock starts), on SQLite and on PostgreSQL, wall time, medians of 15: a known SKU's
  levels (`Ledger.current_levels`, what `/drift` renders from) and an unknown SKU's
  answer (`is_known_sku`, `known_skus`, `bot.matches.close_matches`: "Did you mean").
  Baselines in the same run: the reads before (`WHERE sku = ...` on `level_current`,
  whose key leads with `system`; every current row's SKU) and difflib; and the SKUs
  read by seeks of history's index by SKU (what `known_skus` did before `level_skus`).
"""


def _num(value: float) -> str:
    if value != value:  # NaN
        return "n/a"
    if value == int(value) and abs(value) >= 1:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _ratio(check: Check) -> str:
    if check.baseline is None or check.baseline == 0:
        return "—"
    return f"{check.value / check.baseline:.3g}×"


def render(
    summaries: list[Summary],
    info: dict[str, str],
    command: str,
    started: datetime,
    *,
    quick: bool,
) -> str:
    lines = [
        "# Driftwatch benchmarks",
        "",
        f"Measured {started:%Y-%m-%d %H:%M} UTC with `{command}`"
        + (" (quick sizes: not the targets' sizes)." if quick else "."),
        "",
        f"Machine: {info['cpus']} CPUs ({info['machine']}), Python {info['python']}, "
        f"{info['os']}; load average at start {info['load_average_at_start']}.",
        "",
        "Each figure is the median over the runs shown; every run is a fresh process. "
        "Peak memory is `getrusage(RUSAGE_SELF).ru_maxrss` of the benchmark's process. "
        "Ratio = figure ÷ baseline measured in the same run.",
        "",
        "| | figure | median | target | met? | baseline | ratio | runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        for c in s.checks:
            unit = f" {c.unit}" if c.unit else ""
            baseline = "—" if c.baseline is None else f"{_num(c.baseline)}{unit}"
            lines.append(
                f"| {s.name} | {c.name} | {_num(c.value)}{unit} | {c.op} {_num(c.target)}{unit} "
                f"| {'met' if c.met else '**not met**'} | {baseline} | {_ratio(c)} | {s.runs} |"
            )
    lines += ["", NOTES, "## Details per benchmark", ""]
    for s in summaries:
        lines.append(
            f"**{s.name}** — {s.runs} run(s), {s.seconds:.0f} s in all, peak RSS "
            f"{s.peak_rss_mb:.0f} MiB."
        )
        lines.append("")
        for key, value in s.facts.items():
            lines.append(f"- `{key}`: {value}")
        lines.append("")
    return "\n".join(lines) + "\n"
