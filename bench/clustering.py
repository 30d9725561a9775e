"""Loghub-2k template benchmark: Healer's ``cluster_templates`` vs Drain3, in one run.

Run: ``python bench/clustering.py [--loghub PATH] [--check] [--datasets A,B] [--runs 3]``

Data: LogPAI Loghub-2k (16 systems x 2,000 lines). The *corrected* ground truth
(``<S>_2k.log_structured_corrected.csv``, Khan et al. ICSE'22) is used when present,
otherwise the original ``<S>_2k.log_structured.csv``. The input to both parsers is the
``Content`` column, as in LogPAI's benchmark.

Grouping accuracy (GA, LogPAI definition): a line is correct when the set of lines in its
predicted group equals the set of lines in its ground-truth group; GA = correct / all.
Parsing accuracy (PA): a line is correct when its template equals the ground-truth template
(exact string, runs of whitespace as one space); PA = correct / all.
FTA (Loghub-2.0, Jiang et al. 2023): a predicted template is correct when its group equals a
ground-truth group and its text equals that group's template; FTA is the F1 of the correct
templates' precision (over predicted templates) and recall (over ground-truth templates).

Drain3 runs as its users run it: ``TemplateMiner()`` with its default configuration and its
default in-memory state (no persistence handler, so no snapshots), and, beside it, with the
masking and parameters of its shipped example config (``drain3.ini``). Drain3 templates are
compared after its ``<:NAME:>`` masks are written as ``<*>``.
Throughput: lines per second of CPU time (``time.process_time``: the machine is shared, and wall
time would measure the neighbours) over one full dataset pass, best of ``--runs`` runs, summed
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

from healers.errors.templates import cluster_templates  # noqa: E402

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
    templates: list[str]


def load_dataset(root: Path, name: str) -> Dataset:
    folder = root / name
    corrected = folder / f"{name}_2k.log_structured_corrected.csv"
    path = corrected if corrected.is_file() else folder / f"{name}_2k.log_structured.csv"
    contents: list[str] = []
    truth: list[str] = []
    templates: list[str] = []
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            contents.append(row["Content"])
            truth.append(row["EventId"])
            templates.append(row["EventTemplate"])
    return Dataset(name, contents, truth, path == corrected, templates)


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


def _norm(template: str) -> str:
    return " ".join(template.split())


def parsing_accuracy(truth_templates: Sequence[str], predicted: Sequence[str]) -> float:
    """PA: fraction of lines whose predicted template equals the ground-truth template."""
    if not truth_templates:
        return 1.0
    return sum(_norm(t) == _norm(p) for t, p in zip(truth_templates, predicted)) / len(truth_templates)


def template_f1(truth_templates: Sequence[str], predicted: Sequence[str]) -> float:
    """FTA: F1 over templates that have both the right group and the right text."""
    truth_groups: dict[str, set[int]] = defaultdict(set)
    pred_groups: dict[str, set[int]] = defaultdict(set)
    for i, (t, p) in enumerate(zip(truth_templates, predicted)):
        truth_groups[_norm(t)].add(i)
        pred_groups[_norm(p)].add(i)
    correct = sum(1 for p, members in pred_groups.items() if truth_groups.get(p) == members)
    if not correct:
        return 0.0
    precision, recall = correct / len(pred_groups), correct / len(truth_groups)
    return 2 * precision * recall / (precision + recall)


_DRAIN3_MASK = __import__("re").compile(r"<:[A-Z]+:>")


def make_drain3(example_config: bool = False) -> Callable[[list[str]], list[str]]:
    """Drain3 TemplateMiner with its default in-memory state (no persistence handler). Templates per line
    are read after the whole pass (a cluster's template generalises as it grows), with masks as <*>."""
    import logging
    from drain3 import TemplateMiner
    from drain3.masking import MaskingInstruction
    from drain3.template_miner_config import TemplateMinerConfig
    logging.getLogger("drain3").setLevel(logging.WARNING)

    def run(messages: list[str]) -> list[str]:
        config = TemplateMinerConfig()
        config.profiling_enabled = False
        if not example_config:
            miner = TemplateMiner(config=config)
            ids = [miner.add_log_message(m)["cluster_id"] for m in messages]
            return _templates_of(miner, ids)
        config.profiling_enabled = False
        config.drain_sim_th = 0.4
        config.drain_depth = 4
        config.drain_max_children = 100
        config.drain_max_clusters = 1024
        config.drain_extra_delimiters = ["_"]
        config.mask_prefix, config.mask_suffix = "<:", ":>"
        config.masking_instructions = [MaskingInstruction(p, m) for p, m in DRAIN3_MASKING]
        miner = TemplateMiner(config=config)
        ids = [miner.add_log_message(m)["cluster_id"] for m in messages]
        return _templates_of(miner, ids)

    return run


def _templates_of(miner: object, ids: list[int]) -> list[str]:
    by_id = {c.cluster_id: c.get_template() for c in miner.drain.clusters}  # type: ignore[attr-defined]
    return [_DRAIN3_MASK.sub("<*>", by_id[i]) for i in ids]


def timed(fn: Callable[[list[str]], list[str]], messages: list[str], runs: int) -> tuple[list[str], float]:
    best = float("inf")
    result: list[str] = []
    for _ in range(max(1, runs)):
        start = time.process_time()
        result = fn(list(messages))
        best = min(best, time.process_time() - start)
    return result, best


def hostile_line() -> str:
    """CPU time of Healer's templating on hostile batches of 2,000 distinct ~2,000-character messages."""
    import random
    from healers.errors import masking
    rng = random.Random(3)
    worst = ("", 0.0)
    for alphabet in ("ab.", "a1.:/-_@=\"( ", "x@y.x@y.x@y. ", "abcdefghij "):
        batch = ["".join(rng.choice(alphabet) for _ in range(2000)) + str(i) for i in range(2000)]
        start = time.process_time()
        cluster_templates(batch)
        spent = time.process_time() - start
        if spent > worst[1]:
            worst = (alphabet, spent)
    return (f"hostile input: 2,000 distinct 2,000-character messages, worst alphabet {worst[0]!r}: "
            f"{worst[1]:.2f} s CPU (caps: {masking.MAX_MESSAGE_CHARS} characters and {masking.MAX_WORDS} words per "
            f"message, {masking.MAX_TOKEN_CHARS} per word, {masking.MAX_CLASSIFIED_CHARS:,} characters of distinct "
            f"words fully classified per batch)")


@dataclass
class Scores:
    ga: list[float]
    pa: list[float]
    fta: list[float]
    seconds: float = 0.0

    def add(self, ds: Dataset, templates: list[str], seconds: float) -> str:
        self.ga.append(grouping_accuracy(ds.truth, templates))
        self.pa.append(parsing_accuracy(ds.templates, templates))
        self.fta.append(template_f1(ds.templates, templates))
        self.seconds += seconds
        return f"{self.ga[-1]:>6.3f} {self.pa[-1]:>6.3f} {self.fta[-1]:>6.3f} {len(templates) / seconds:>9,.0f}"

    def average(self, lines: int) -> str:
        n = len(self.ga)
        return (f"{sum(self.ga) / n:>6.3f} {sum(self.pa) / n:>6.3f} {sum(self.fta) / n:>6.3f} "
                f"{lines / self.seconds:>9,.0f}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loghub", type=Path, default=DEFAULT_LOGHUB, help="Loghub-2k folder")
    ap.add_argument("--check", action="store_true", help="exit 1 when Healer's average GA < 0.975")
    ap.add_argument("--datasets", default="", help="comma-separated subset (default: all 16)")
    ap.add_argument("--runs", type=int, default=3, help="timing runs per parser (best is kept)")
    ap.add_argument("--no-drain3", action="store_true", help="skip the Drain3 baselines")
    args = ap.parse_args(argv)

    names = available_datasets(args.loghub)
    if args.datasets:
        wanted = {d.strip().lower() for d in args.datasets.split(",") if d.strip()}
        names = [n for n in names if n.lower() in wanted]
    if not names:
        print(f"no Loghub-2k datasets found under {args.loghub}", file=sys.stderr)
        return 2
    parsers: list[tuple[str, Callable[[list[str]], list[str]]]] = [("Healer", cluster_templates)]
    if not args.no_drain3:
        parsers += [("Drain3 defaults", make_drain3()), ("Drain3 example cfg", make_drain3(example_config=True))]
    scores = {name: Scores([], [], []) for name, _ in parsers}
    cols = " | ".join(f"{name:^32}" for name, _ in parsers)
    sub = " | ".join(f"{'GA':>6} {'PA':>6} {'FTA':>6} {'lines/s':>9}" + " " * 3 for _ in parsers)
    print(f"{'':<12} {cols}\n{'dataset':<12} {sub}")
    lines = 0
    for name in names:
        ds = load_dataset(args.loghub, name)
        lines += len(ds.contents)
        row = [scores[p].add(ds, *timed(fn, ds.contents, args.runs)) for p, fn in parsers]
        print(f"{name:<12} " + " |    ".join(row))
    print(f"{'average':<12} " + " |    ".join(scores[p].average(lines) for p, _ in parsers))
    healer = scores["Healer"]
    ga = sum(healer.ga) / len(healer.ga)
    summary = [f"Healer {lines / healer.seconds:,.0f} lines/s"]
    for p, _ in parsers[1:]:
        summary.append(f"{p} {lines / scores[p].seconds:,.0f} lines/s "
                       f"(Healer {scores[p].seconds / healer.seconds:.2f}x)")
    print("throughput (CPU time): " + "; ".join(summary) + f" (best of {args.runs} runs per dataset, {lines} lines, "
          f"{'corrected' if all(load_dataset(args.loghub, n).corrected for n in names) else 'mixed'} ground truth)")
    print(hostile_line())
    if args.check and ga < 0.975:
        print(f"FAIL: Healer average GA {ga:.4f} < 0.975", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
