"""Loghub-2k grouping-accuracy benchmark: Healer's ``cluster_messages`` vs Drain3.

Run: ``python bench/clustering.py [--loghub PATH] [--check] [--datasets A,B] [--runs 3]``

Data: LogPAI Loghub-2k (16 systems x 2,000 lines). The *corrected* ground truth
(``<S>_2k.log_structured_corrected.csv``, Khan et al. ICSE'22) is used when present,
otherwise the original ``<S>_2k.log_structured.csv``. The input to both parsers is the
``Content`` column, as in LogPAI's benchmark.

Grouping accuracy (GA, LogPAI definition): a line is correct when the set of lines in its
predicted group equals the set of lines in its ground-truth group; GA = correct / all.
Throughput: lines per second over one full dataset pass, best of ``--runs`` runs, summed
over all datasets (total lines / total best times).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from healers.errors.templates import cluster_messages  # noqa: E402

DEFAULT_LOGHUB = REPO.parent / "shared" / "loghub_2k"

DATASETS = (
    "Android", "Apache", "BGL", "HDFS", "HPC", "Hadoop", "HealthApp", "Linux",
    "Mac", "OpenSSH", "OpenStack", "Proxifier", "Spark", "Thunderbird", "Windows", "Zookeeper",
)

# Drain3 ships no masking in the wheel; this is the masking of its shipped example config
# (github.com/logpai/Drain3 examples/drain3.ini), with that file's Drain parameters.
DRAIN3_MASKING = (
    (r"((?<=[^A-Za-z0-9])|^)(([0-9a-f]{2,}:){3,}([0-9a-f]{2,}))((?=[^A-Za-z0-9])|$)", "ID"),
    (r"((?<=[^A-Za-z0-9])|^)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})((?=[^A-Za-z0-9])|$)", "IP"),
    (r"((?<=[^A-Za-z0-9])|^)([0-9a-f]{6,} ?){3,}((?=[^A-Za-z0-9])|$)", "SEQ"),
    (r"((?<=[^A-Za-z0-9])|^)([0-9A-F]{4} ?){4,}((?=[^A-Za-z0-9])|$)", "SEQ"),
    (r"((?<=[^A-Za-z0-9])|^)(0x[a-f0-9A-F]+)((?=[^A-Za-z0-9])|$)", "HEX"),
    (r"((?<=[^A-Za-z0-9])|^)([\-\+]?\d+)((?=[^A-Za-z0-9])|$)", "NUM"),
    (r"(?<=executed cmd )(\".+?\")", "CMD"),
)


@dataclass(frozen=True)
class Dataset:
    name: str
    contents: list[str]
    truth: list[str]
    corrected: bool


def load_dataset(root: Path, name: str) -> Dataset:
    folder = root / name
    corrected = folder / f"{name}_2k.log_structured_corrected.csv"
    path = corrected if corrected.is_file() else folder / f"{name}_2k.log_structured.csv"
    contents: list[str] = []
    truth: list[str] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            contents.append(row["Content"])
            truth.append(row["EventId"])
    return Dataset(name, contents, truth, path == corrected)


def available_datasets(root: Path) -> list[str]:
    return [d for d in DATASETS
            if (root / d / f"{d}_2k.log_structured_corrected.csv").is_file()
            or (root / d / f"{d}_2k.log_structured.csv").is_file()]


def grouping_accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """LogPAI GA: fraction of lines whose predicted group equals their true group, as sets."""
    if len(truth) != len(predicted):
        raise ValueError("truth and prediction lengths differ")
    if not truth:
        return 1.0
    true_groups: dict[str, list[int]] = defaultdict(list)
    pred_groups: dict[str, list[int]] = defaultdict(list)
    for i, (t, p) in enumerate(zip(truth, predicted)):
        true_groups[t].append(i)
        pred_groups[p].append(i)
    correct = 0
    for members in true_groups.values():
        preds = {predicted[i] for i in members}
        if len(preds) == 1 and len(pred_groups[next(iter(preds))]) == len(members):
            correct += len(members)
    return correct / len(truth)


def make_drain3(persistence: str = "memory") -> Callable[[list[str]], list[str]]:
    """Drain3 TemplateMiner with its example config; persistence "memory" (MemoryBufferPersistence,
    snapshots on every new/changed cluster, as Drain3 does) or "none" (no snapshots)."""
    from drain3 import TemplateMiner
    from drain3.memory_buffer_persistence import MemoryBufferPersistence
    from drain3.masking import MaskingInstruction
    from drain3.template_miner_config import TemplateMinerConfig

    def run(messages: list[str]) -> list[str]:
        config = TemplateMinerConfig()
        config.profiling_enabled = False
        config.drain_sim_th = 0.4
        config.drain_depth = 4
        config.drain_max_children = 100
        config.drain_max_clusters = 1024
        config.drain_extra_delimiters = ["_"]
        config.mask_prefix, config.mask_suffix = "<:", ":>"
        config.masking_instructions = [MaskingInstruction(p, m) for p, m in DRAIN3_MASKING]
        handler = MemoryBufferPersistence() if persistence == "memory" else None
        miner = TemplateMiner(persistence_handler=handler, config=config)
        return [str(miner.add_log_message(m)["cluster_id"]) for m in messages]

    return run


def timed(fn: Callable[[list[str]], list[str]], messages: list[str], runs: int) -> tuple[list[str], float]:
    best = float("inf")
    result: list[str] = []
    for _ in range(max(1, runs)):
        start = time.perf_counter()
        result = fn(list(messages))
        best = min(best, time.perf_counter() - start)
    return result, best


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loghub", type=Path, default=DEFAULT_LOGHUB, help="Loghub-2k folder")
    ap.add_argument("--check", action="store_true", help="exit 1 when Healer's average GA < 0.95")
    ap.add_argument("--datasets", default="", help="comma-separated subset (default: all 16)")
    ap.add_argument("--runs", type=int, default=3, help="timing runs per parser (best is kept)")
    ap.add_argument("--no-drain3", action="store_true", help="skip the Drain3 baseline")
    ap.add_argument("--drain3-persistence", choices=("memory", "none"), default="memory",
                    help="Drain3 state persistence: in-memory buffer (default) or none")
    args = ap.parse_args(argv)

    names = available_datasets(args.loghub)
    if args.datasets:
        wanted = {d.strip().lower() for d in args.datasets.split(",") if d.strip()}
        names = [n for n in names if n.lower() in wanted]
    if not names:
        print(f"no Loghub-2k datasets found under {args.loghub}", file=sys.stderr)
        return 2

    drain3 = None if args.no_drain3 else make_drain3(args.drain3_persistence)
    header = f"{'dataset':<12} {'truth':<9} {'Healer GA':>9} {'Drain3 GA':>9} {'Healer l/s':>11} {'Drain3 l/s':>11}"
    print(header)
    print("-" * len(header))
    ga_h: list[float] = []
    ga_d: list[float] = []
    lines = 0
    t_h = t_d = 0.0
    for name in names:
        ds = load_dataset(args.loghub, name)
        lines += len(ds.contents)
        pred_h, sec_h = timed(cluster_messages, ds.contents, args.runs)
        ga_h.append(grouping_accuracy(ds.truth, pred_h))
        t_h += sec_h
        d_ga = d_rate = "-"
        if drain3 is not None:
            pred_d, sec_d = timed(drain3, ds.contents, args.runs)
            ga_d.append(grouping_accuracy(ds.truth, pred_d))
            t_d += sec_d
            d_ga, d_rate = f"{ga_d[-1]:.4f}", f"{len(ds.contents) / sec_d:,.0f}"
        print(f"{name:<12} {'corrected' if ds.corrected else 'original':<9} {ga_h[-1]:>9.4f} {d_ga:>9} "
              f"{len(ds.contents) / sec_h:>11,.0f} {d_rate:>11}")
    print("-" * len(header))
    avg_h = sum(ga_h) / len(ga_h)
    avg_d = f"{sum(ga_d) / len(ga_d):.4f}" if ga_d else "-"
    rate_d = f"{lines / t_d:,.0f}" if ga_d else "-"
    print(f"{'average':<12} {'':<9} {avg_h:>9.4f} {avg_d:>9} {lines / t_h:>11,.0f} {rate_d:>11}")
    print(f"throughput: Healer {lines / t_h:,.0f} lines/s, Drain3 {rate_d} lines/s "
          f"(Drain3 persistence: {args.drain3_persistence}; best of {args.runs} runs per dataset, {lines} lines)")
    if args.check and avg_h < 0.95:
        print(f"FAIL: Healer average GA {avg_h:.4f} < 0.95", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
