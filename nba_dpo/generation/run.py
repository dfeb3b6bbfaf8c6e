"""The generate stage: prompts -> Ray Data (prompt builder -> generator actors -> execution verifier -> reward model)
-> candidates -> composite score -> pairs -> reference log-probs -> Parquet.

Streaming, so that the driver's memory does not grow with the pool: Ray Data reads the prompts from storage, the
driver writes candidates in part files of `chunk_prompts` complete prompts as they arrive, pairs them part by part
into a staging folder, and streams the staged pairs (through the reference-model actors) into the train/test files.
What it keeps for the whole run is prompt ids and counters.

Resumable: a part file is the unit of resume (written atomically); a rerun skips the prompts of the parts it finds
and generates the rest. Every prompt id appears once per sample index, as a candidate or as an error row with its
reason, even when a Ray task or actor was retried.
"""
from __future__ import annotations

import hashlib
import time
from collections import Counter, defaultdict
from contextlib import ExitStack

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from omegaconf import DictConfig
from tqdm import tqdm

from nba_dpo import storage
from nba_dpo.errors import UserError
from nba_dpo.prefs.pairing import make_pairs, prompt_of
from nba_dpo.prefs.schema import CANDIDATE_SCHEMA, PAIR_SCHEMA
from nba_dpo.scoring.composite import composite_score
from nba_dpo.scoring.execution import ExecutionVerifier

PROMPT_COLUMNS = ["id", "question", "schema", "sql", "reasoning", "difficulty", "template_id"]


def _seed(*parts) -> int:
    return int(hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def prompt_ids(cfg: DictConfig) -> list[str]:
    """The ids of this run's prompts: the pool's `limit` prompts from `offset` on (one column of the pool read)."""
    g = cfg.generate
    for uri, what in ((g.prompts, "prompts"), (f"{g.model_path}/config.json", "policy model")):
        if not storage.exists(uri):
            raise UserError(f"{what} not found at {uri}: run the earlier stages (build_data, sft) first")
    pool = storage.read_table(g.prompts, columns=["id"]).column("id").to_pylist()
    ids = pool[g.offset: g.offset + g.limit if g.limit else None]
    if not ids:
        raise UserError(f"{g.prompts} holds {len(pool)} prompts, none after generate.offset={g.offset}: lower "
                        "generate.limit or pipeline.rounds")
    return [str(i) for i in ids]


def _keep_ids(batch: pa.Table, ids: pa.Array) -> pa.Table:
    return batch.filter(pc.is_in(batch["id"], value_set=ids))


def sample_rows(items: list[dict], g: DictConfig) -> list[dict]:
    """The vllm backend's requests: one row per (prompt, sample index), each with its own seed."""
    return [{**it, "candidate_idx": k, "seed": _seed(g.seed, it["id"], k)} for it in items
            for k in range(g.num_samples)]


def _expand_samples(batch: dict, num_samples: int, seed: int) -> dict:
    """`sample_rows` for a Ray Data batch."""
    out = {k: np.repeat(v, num_samples, axis=0) for k, v in batch.items()}
    out["candidate_idx"] = np.tile(np.arange(num_samples), len(batch["id"]))
    out["seed"] = np.array([_seed(seed, i, k) for i, k in zip(out["id"], out["candidate_idx"])])
    return out


def candidate_dataset(cfg: DictConfig, todo: set[str]):
    """Ray Data pipeline: the pool's prompts in `todo` -> candidate rows with exec_ok/correct (and reward)."""
    import ray

    from nba_dpo.cluster import actor_resources, one_call_per_actor
    from nba_dpo.models.prompts import PromptBuilder

    g, s, c = cfg.generate, cfg.score, cfg.cluster
    ds = storage.read_dataset(g.prompts, columns=PROMPT_COLUMNS)
    ds = ds.map_batches(_keep_ids, fn_kwargs={"ids": pa.array(sorted(todo), pa.string())},
                        batch_format="pyarrow", num_cpus=0)
    # the prompt text in the policy's chat format
    ds = ds.map_batches(PromptBuilder, batch_size=256, compute=ray.data.ActorPoolStrategy(size=1),
                        **actor_resources(c, num_cpus=0),
                        fn_constructor_kwargs=dict(model_path=g.model_path, include_schema=cfg.model.include_schema))
    if g.backend == "vllm":  # one request per (prompt, sample)
        ds = ds.map_batches(_expand_samples, fn_kwargs={"num_samples": g.num_samples, "seed": g.seed},
                            batch_format="numpy", num_cpus=0)
    # one block per generator call, in the pool's order: the same prompts go together, and so get the same samples, on
    # every run. Materialised in Ray's object store (the driver holds references) before any generator starts: these
    # tasks take a CPU, which actor pools holding every core of a small machine would never leave them
    ds = ds.repartition(target_num_rows_per_block=g.batch_size)
    ds.context.execution_options.preserve_order = True
    ds = ds.materialize()
    if g.backend == "vllm":
        from nba_dpo.generation.vllm_backend import build_vllm_candidates

        ds = build_vllm_candidates(g, c)(ds)
    else:
        from nba_dpo.generation.hf import HFCandidates

        ds = ds.map_batches(HFCandidates, batch_size=g.batch_size, compute=one_call_per_actor(g.concurrency),
                            **actor_resources(c, num_cpus=1, num_gpus=1 if c.use_gpu else 0),
                            fn_constructor_kwargs=dict(model_path=g.model_path, max_new_tokens=g.max_new_tokens,
                                                       greedy=False, num_samples=g.num_samples,
                                                       temperature=g.temperature, top_p=g.top_p, top_k=g.top_k,
                                                       seed=g.seed, dtype=cfg.model.dtype,
                                                       sample_chunk=g.batch_size, use_gpu=c.use_gpu))
    # no CPU reserved: SQLite checks are light, and one that waited for a core would start only once the generator
    # actors holding every core (hf on CPU) had finished, instead of checking their output as it comes
    ds = ds.map_batches(ExecutionVerifier, batch_size=256, compute=ray.data.ActorPoolStrategy(size=1),
                        **actor_resources(c, num_cpus=0),
                        fn_constructor_kwargs=dict(db_path=cfg.data.db_path, timeout_s=s.sql_timeout_s))
    if s.reward_model:
        from nba_dpo.scoring.reward import with_rewards  # torch: after validation

        ds = with_rewards(ds, s.reward_model, c)
    return ds


def _candidate_row(r: dict, weights: DictConfig) -> dict:
    row = {"prompt_id": str(r["id"]), "candidate_idx": int(r["candidate_idx"]), "prompt": r["prompt"],
           "completion": str(r["completion"]), "sql": str(r["pred_sql"]), "exec_ok": bool(r["exec_ok"]),
           "correct": bool(r["correct_spider"]), "n_tokens": int(r["n_tokens"]),
           "reward": float(r["reward"]) if r.get("reward") is not None and not np.isnan(r["reward"]) else None,
           "error": r["error"] if isinstance(r.get("error"), str) else None, "question": r["question"],
           "difficulty": r["difficulty"], "template_id": r["template_id"], "gold_sql": r["sql"],
           "gold_reasoning": r["reasoning"]}
    row["score"] = composite_score(row, weights)
    return row


def lost_to_the_cluster(e: BaseException) -> bool:
    """A node, an actor, a worker or an object lost (what a retry on the remaining nodes can get past), as opposed to
    an error in the stage's own code. Ray Data marks failures inside Ray itself as a SystemException (an actor of
    its own that died with its node comes that way), and failures in the stage's code as a UserCodeException."""
    import ray.exceptions as rex
    from ray.data.exceptions import SystemException

    lost = (rex.NodeDiedError, rex.ActorDiedError, rex.ActorUnavailableError, rex.WorkerCrashedError,
            rex.ObjectLostError, rex.RaySystemError, SystemException)
    while e is not None:  # Ray wraps the loss in the failed task's error (`cause`), Ray Data in its own
        if isinstance(e, lost):
            return True
        e = getattr(e, "cause", None) or e.__cause__
    return False


def retrying(step, retries: int, what: str):
    """`step()`, run again (up to `retries` times) when the cluster loses a node or an actor beyond what Ray's own
    retries get past: a replacement node may have joined, or the work fits on the nodes left."""
    for attempt in range(retries + 1):
        try:
            return step()
        except Exception as e:
            if not lost_to_the_cluster(e) or attempt == retries:
                raise
            print(f"[generate] the cluster lost part of the pipeline ({type(e).__name__}); {what} again (retry "
                  f"{attempt + 1} of {retries})", flush=True)


def generate_candidates(cfg: DictConfig, ids: list[str]) -> dict:
    """Candidates for the prompts `ids`, written as part files below <output_dir>/candidates; the prompts of parts a
    previous run completed are skipped, and so are those of parts written before a lost node made the pipeline
    start again (`retrying`). Returns what this run generated: prompts, candidates, tokens."""
    g = cfg.generate
    parts = storage.list_files(f"{g.output_dir}/candidates", ".parquet")
    written = {i for part in parts for i in storage.read_table(part, columns=["prompt_id"]).column(0).to_pylist()}
    todo = [i for i in ids if i not in written]
    if written:
        print(f"[generate] resuming: {len(ids) - len(todo)} prompts already have candidates, {len(todo)} to go")
    made = {"prompts": len(todo), "candidates": 0, "tokens": 0, "part": len(parts)}
    if todo:
        # closed on an error too, so that the error's line starts on a line of its own
        with tqdm(total=len(todo), desc=f"[generate] prompts ({g.backend}, {g.num_samples} samples)",
                  unit="prompt") as bar:
            retrying(lambda: _stream_candidates(cfg, [i for i in todo if i not in written], written, made, bar),
                     g.retries, "generating the prompts not yet written")
    return made


def _stream_candidates(cfg: DictConfig, todo: list[str], written: set[str], made: dict, bar) -> None:
    """One pipeline over the prompts `todo`: part files of complete prompts, as they arrive; `written` and `made`
    grow with each part."""
    g = cfg.generate
    pending: dict[str, dict[int, dict]] = defaultdict(dict)
    complete: list[dict] = []
    done: set[str] = set()

    def flush() -> None:
        nonlocal complete
        storage.write_parquet(complete, f"{g.output_dir}/candidates/part-{made['part']:05d}.parquet",
                              schema=CANDIDATE_SCHEMA)
        written.update(c["prompt_id"] for c in complete)
        made["candidates"] += len(complete)
        made["tokens"] += sum(c["n_tokens"] for c in complete)
        made["part"] += 1
        complete = []

    ds = candidate_dataset(cfg, set(todo))
    ds.context.execution_options.preserve_order = True  # the same part files, row for row, on every run
    for r in ds.iter_rows():
        pid = str(r["id"])
        if pid in done:  # a retried task's second output of a finished prompt: each (prompt, sample) is kept once
            continue
        pending[pid][int(r["candidate_idx"])] = _candidate_row(r, cfg.score.weights)
        if len(pending[pid]) == g.num_samples:
            got = pending.pop(pid)
            done.add(pid)
            complete += [got[k] for k in range(g.num_samples)]
            bar.update(1)
        if len(complete) >= g.chunk_prompts * g.num_samples:
            flush()
    for pid, got in pending.items():  # should not happen; recorded rather than lost
        first = next(iter(got.values()))
        complete += [got.get(k) or {**first, "candidate_idx": k, "completion": "", "sql": "", "exec_ok": False,
                                    "correct": False, "n_tokens": 0, "reward": None, "score": float("-inf"),
                                    "error": "missing: no output for this sample"} for k in range(g.num_samples)]
    if complete:
        flush()


def _split_of(prompt_id: str, seed: int, test_fraction: float) -> str:
    return "test" if _seed(seed, "pairs", prompt_id) / 2**32 < test_fraction else "train"


class Tally:
    """The stage's counts, gathered part by part."""

    def __init__(self) -> None:
        self.candidates = self.errors = self.tokens = self.correct = 0
        self.prompts: set[str] = set()
        self.by_difficulty: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self.reasons: Counter = Counter()
        self.strategies: Counter = Counter()
        self.pairs: Counter = Counter()  # per split
        self.prompts_with_pairs = 0

    def add_candidates(self, rows: list[dict]) -> None:
        for c in rows:
            self.prompts.add(c["prompt_id"])
            self.candidates += 1
            self.tokens += c["n_tokens"]
            self.correct += c["correct"]
            self.errors += bool(c["error"] and c["error"].startswith(("generation", "missing")))
            self.by_difficulty[c["difficulty"]][0] += c["correct"]
            self.by_difficulty[c["difficulty"]][1] += 1

    def add_pairs(self, pairs: list[dict], reasons: Counter) -> None:
        self.reasons.update(reasons)
        self.strategies.update(p["strategy"].split(":")[0] for p in pairs)
        self.prompts_with_pairs += len({p["prompt_id"] for p in pairs})


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

    g, c = cfg.generate, cfg.cluster
    tally.pairs.clear()  # a retried write counts again from nothing
    with ExitStack() as stack:
        writers = {name: stack.enter_context(storage.parquet_writer(f"{g.output_dir}/pairs/{name}.parquet",
                                                                     PAIR_SCHEMA)) for name in ("train", "test")}
        if not staged:
            return
        # blocks of 64 pairs, one per actor call, materialised before the actors start (see candidate_dataset)
        ds = storage.read_dataset(staged[0].rsplit("/", 1)[0]).repartition(target_num_rows_per_block=64)
        ds.context.execution_options.preserve_order = True
        ds = ds.materialize()
        if g.ref_logprobs:
            ds = ds.map_batches(RefLogProbs, batch_size=64, compute=ray.data.ActorPoolStrategy(size=g.concurrency),
                                **actor_resources(c, num_cpus=1, num_gpus=1 if c.use_gpu else 0),
                                fn_constructor_kwargs=dict(model_path=g.ref_model_path, max_length=cfg.model.max_length,
                                                           dtype=cfg.model.dtype, use_gpu=c.use_gpu))
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

    g = cfg.generate
    start = time.perf_counter()
    start_ray(cfg)
    storage.delete(f"{g.output_dir}/summary.json")
    ids = prompt_ids(cfg)
    made = generate_candidates(cfg, ids)
    gen_seconds = time.perf_counter() - start
    staging = f"{g.output_dir}/pairs/staging"
    storage.delete(staging)
    tally = Tally()
    parts = storage.list_files(f"{g.output_dir}/candidates", ".parquet")
    staged = pair_parts(cfg, parts, staging, tally)
    retrying(lambda: write_pairs(cfg, staged, tally), g.retries, "writing the pairs")
    storage.delete(staging)
    summary = summarize(len(ids), tally, made, gen_seconds, time.perf_counter() - start)
    storage.write_json(summary, f"{g.output_dir}/summary.json")
    return summary


def summarize(n_prompts: int, t: Tally, made: dict, gen_seconds: float, seconds: float) -> dict:
    """The stage's closing numbers; tokens/s counts only the candidates this run generated (not resumed ones)."""
    n_pairs = sum(t.pairs.values())
    return {
        "prompts": n_prompts, "candidates": t.candidates, "errors": t.errors,
        "pass_rate": t.correct / t.candidates if t.candidates else 0.0,
        "pass_rate_by_difficulty": {d: ok / n for d, (ok, n) in sorted(t.by_difficulty.items())},
        "pairs": {"n": n_pairs, "train": t.pairs["train"], "test": t.pairs["test"],
                  "prompts_with_pairs": t.prompts_with_pairs, "per_prompt": n_pairs / max(1, n_prompts),
                  "by_strategy": dict(t.strategies)},
        "no_pair_reasons": dict(t.reasons), "generated_tokens": t.tokens,
        "resumed_candidates": t.candidates - made["candidates"],
        "tokens_per_s": made["tokens"] / gen_seconds if made["tokens"] and gen_seconds > 0 else None,
        "seconds": round(seconds, 1)}
