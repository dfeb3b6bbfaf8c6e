"""The generate stage's preference dataset: candidates (`nba_dpo.generation.candidates`) -> verification-backed
pairs (`pairing`, `hard_negatives`) -> reference log-probs (`ref_logprobs`) -> a train/test split by prompt ->
<generate.output_dir>/pairs/{train,test}.parquet and summary.json.

Pairs are made part by part into a staging folder and streamed (through the reference-model actors) into the split
files, so the driver holds counters only. summary.json is written last: its presence marks a finished stage.
"""
from __future__ import annotations

import time
from collections import Counter, defaultdict
from contextlib import ExitStack

import pyarrow as pa
import pyarrow.compute as pc
from omegaconf import DictConfig
from tqdm import tqdm

from nba_dpo import storage
from nba_dpo.errors import UserError
from nba_dpo.generation.candidates import generate_candidates, pool_has_gold, prompt_ids, retrying
from nba_dpo.prefs.pairing import make_pairs, prompt_of
from nba_dpo.prefs.schema import CANDIDATE_SCHEMA, PAIR_SCHEMA
from nba_dpo.scoring.execution import ExecutionVerifier
from nba_dpo.seeds import stable_seed


def _split_of(prompt_id: str, seed: int, test_fraction: float) -> str:
    return "test" if stable_seed(seed, "pairs", prompt_id) / 2**32 < test_fraction else "train"


class Tally:
    """The stage's counts, gathered part by part."""

    def __init__(self) -> None:
        self.candidates = self.errors = self.tokens = self.correct = self.labelled = 0
        self.prompts: set[str] = set()
        self.by_difficulty: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self.reasons: Counter = Counter()
        self.strategies: Counter = Counter()
        self.pairs: Counter = Counter()  # per split
        self.prompts_with_pairs = 0
        self.sides: dict[str, list[int]] = {"chosen": [0, 0], "rejected": [0, 0]}  # [right by gold, known]

    def add_candidates(self, rows: list[dict]) -> None:
        for c in rows:
            self.prompts.add(c["prompt_id"])
            self.candidates += 1
            self.tokens += c["n_tokens"]
            self.errors += bool(c["error"] and c["error"].startswith(("generation", "missing")))
            if c["correct"] is not None:  # a label-free prompt's candidates are not known to be right or wrong
                self.labelled += 1
                self.correct += c["correct"]
                self.by_difficulty[c["difficulty"]][0] += c["correct"]
                self.by_difficulty[c["difficulty"]][1] += 1

    def add_pairs(self, pairs: list[dict], reasons: Counter) -> None:
        self.reasons.update(reasons)
        self.strategies.update(p["strategy"].split(":")[0] for p in pairs)
        self.prompts_with_pairs += len({p["prompt_id"] for p in pairs})
        for side, (right, known) in self.sides.items():
            verdicts = [p[f"{side}_correct"] for p in pairs if p[f"{side}_correct"] is not None]
            self.sides[side] = [right + sum(verdicts), known + len(verdicts)]


def pair_parts(cfg: DictConfig, parts: list[str], staging: str, tally: Tally) -> list[str]:
    """Pairs of every candidates part, one staged Parquet file per part; returns the staged files."""
    verifier = ExecutionVerifier(cfg.data.db_path, cfg.score.sql_timeout_s)
    staged = []
    with tqdm(parts, desc="[generate] pairing", unit="part") as bar:
        for i, part in enumerate(bar):
            rows = storage.read_table(part, schema=CANDIDATE_SCHEMA).to_pylist()
            tally.add_candidates(rows)
            prompts = list({r["prompt_id"]: prompt_of(r) for r in rows}.values())
            pairs, reasons = make_pairs(prompts, rows, cfg.pairs, verifier, seed=cfg.seed)
            tally.add_pairs(pairs, reasons)
            if pairs:
                staged.append(storage.write_parquet([{**p, "ref_chosen_logps": None, "ref_rejected_logps": None}
                                                     for p in pairs], f"{staging}/part-{i:05d}.parquet",
                                                    schema=PAIR_SCHEMA))
    return staged


def write_pairs(cfg: DictConfig, staged: list[str], tally: Tally) -> None:
    """The staged pairs, with reference log-probs (Ray Data actors) when asked, split train/test by prompt into
    <output_dir>/pairs/{train,test}.parquet, streamed in order."""
    import ray

    from nba_dpo.cluster import actor_resources
    from nba_dpo.prefs.ref_logprobs import RefLogProbs

    gen, cluster = cfg.generate, cfg.cluster
    tally.pairs.clear()  # a retried write counts again from nothing
    with ExitStack() as stack:
        writers = {name: stack.enter_context(storage.parquet_writer(f"{gen.output_dir}/pairs/{name}.parquet",
                                                                     PAIR_SCHEMA)) for name in ("train", "test")}
        if not staged:
            return
        # blocks of 64 pairs, one per actor call
        ds = storage.read_dataset(staged[0].rsplit("/", 1)[0]).repartition(target_num_rows_per_block=64)
        if gen.ref_logprobs:
            ds = ds.map_batches(RefLogProbs, batch_size=64, compute=ray.data.ActorPoolStrategy(size=gen.concurrency),
                                **actor_resources(cluster, num_cpus=1, num_gpus=1 if cluster.use_gpu else 0),
                                fn_constructor_kwargs=dict(model_path=gen.ref_model_path, dtype=cfg.model.dtype,
                                                           max_length=cfg.model.max_length, use_gpu=cluster.use_gpu))
        ds.context.execution_options.preserve_order = True  # the same files, row for row, on every run
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=4096):
            batch = batch.select(PAIR_SCHEMA.names).cast(PAIR_SCHEMA)
            test = pc.equal(pa.array([_split_of(p, cfg.seed, cfg.pairs.test_fraction) for p in
                                      batch["prompt_id"].to_pylist()]), "test")
            for name, mask in (("train", pc.invert(test)), ("test", test)):
                part = batch.filter(mask)
                writers[name].write_table(part)
                tally.pairs[name] += part.num_rows


def generate_preferences(cfg: DictConfig) -> dict:
    """Run the whole stage; returns the summary (also written to <output_dir>/summary.json, last)."""
    from nba_dpo.cluster import start_ray

    gen = cfg.generate
    start = time.perf_counter()
    start_ray(cfg)
    storage.delete(f"{gen.output_dir}/summary.json")
    ids = prompt_ids(cfg)
    label_free = cfg.pairs.chosen == "consensus" or (cfg.pairs.chosen == "best" and cfg.score.reward_model)
    if not label_free and not pool_has_gold(gen.prompts):
        raise UserError(f"{gen.prompts} holds questions without gold SQL, and pairs.chosen={cfg.pairs.chosen} "
                        f"{'needs it' if cfg.pairs.chosen == 'gold' else 'ranks them by it'}: choose pairs=consensus, "
                        "or rank with a reward model (score=learned pairs=best_over_worst)")
    made = generate_candidates(cfg, ids)
    gen_seconds = time.perf_counter() - start
    staging = f"{gen.output_dir}/pairs/staging"
    storage.delete(staging)
    tally = Tally()
    parts = storage.list_files(f"{gen.output_dir}/candidates", ".parquet")
    staged = pair_parts(cfg, parts, staging, tally)
    retrying(lambda: write_pairs(cfg, staged, tally), gen.retries, "writing the pairs")
    storage.delete(staging)
    summary = summarize(len(ids), tally, made, gen_seconds, time.perf_counter() - start)
    storage.write_json(summary, f"{gen.output_dir}/summary.json")
    return summary


def summarize(n_prompts: int, t: Tally, made: dict, gen_seconds: float, seconds: float) -> dict:
    """The stage's closing numbers; tokens/s counts only the candidates this run generated (not resumed ones)."""
    n_pairs = sum(t.pairs.values())
    return {
        "prompts": n_prompts, "candidates": t.candidates, "errors": t.errors,
        "pass_rate": t.correct / t.labelled if t.labelled else None,
        "pass_rate_by_difficulty": {d: ok / n for d, (ok, n) in sorted(t.by_difficulty.items())},
        "pairs": {"n": n_pairs, "train": t.pairs["train"], "test": t.pairs["test"],
                  "prompts_with_pairs": t.prompts_with_pairs, "per_prompt": n_pairs / max(1, n_prompts),
                  "by_strategy": dict(t.strategies),
                  # the share of pairs whose chosen (rejected) answer is right by the gold SQL, where the pool has it
                  **{f"{side}_correct": right / known if known else None
                     for side, (right, known) in t.sides.items()}},
        "no_pair_reasons": dict(t.reasons), "generated_tokens": t.tokens,
        "resumed_candidates": t.candidates - made["candidates"],
        "tokens_per_s": made["tokens"] / gen_seconds if made["tokens"] and gen_seconds > 0 else None,
        "seconds": round(seconds, 1)}
