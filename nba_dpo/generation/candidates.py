"""Candidates: prompts -> Ray Data (prompt builder -> generator actors -> execution verifier -> reward model) ->
candidate rows with their composite score, in part files below <generate.output_dir>/candidates.

Streaming, so that the driver's memory does not grow with the pool: Ray Data reads the prompts from storage and the
driver writes candidates in part files of `chunk_prompts` complete prompts as they arrive, keeping only prompt ids
and counters. Resumable: a part file is the unit of resume (written atomically); a rerun skips the prompts of the
parts it finds and generates the rest. Every prompt id appears once per sample index, as a candidate or as an error
row with its reason, even when a Ray task or actor was retried. `nba_dpo.prefs.run` turns the parts into pairs.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from omegaconf import DictConfig
from tqdm import tqdm

from nba_dpo import storage
from nba_dpo.data.dataset import GOLD_COLUMNS
from nba_dpo.errors import UserError
from nba_dpo.prefs.schema import CANDIDATE_SCHEMA
from nba_dpo.scoring.composite import composite_score
from nba_dpo.seeds import stable_seed

PROMPT_COLUMNS = ["id", "question", "schema", "sql", "reasoning", "difficulty", "template_id"]
# what a prompt row carries through a vLLM engine, besides its completion
VLLM_PASSTHROUGH = ("id", "candidate_idx", "prompt", "sql", "reasoning", "question", "difficulty", "template_id")


def prompt_ids(cfg: DictConfig) -> list[str]:
    """The ids of this run's prompts: the pool's `limit` prompts from `offset` on (one column of the pool read)."""
    gen = cfg.generate
    storage.require({"prompts": gen.prompts, "policy model": f"{gen.model_path}/config.json"},
                    "run the earlier stages (build_data, sft) first")
    pool = storage.read_table(gen.prompts, columns=["id"]).column("id").to_pylist()
    ids = pool[gen.offset: gen.offset + gen.limit if gen.limit else None]
    if not ids:
        raise UserError(f"{gen.prompts} holds {len(pool)} prompts, none after generate.offset={gen.offset}: lower "
                        "generate.limit or pipeline.rounds")
    return [str(i) for i in ids]


def pool_has_gold(prompts: str) -> bool:
    """Whether a prompt pool carries its gold answers (a label-free pool has questions only)."""
    names = storage.parquet_metadata(prompts).schema.names
    return all(c in names for c in GOLD_COLUMNS)


def _keep_ids(batch: pa.Table, ids: pa.Array) -> pa.Table:
    batch = batch.filter(pc.is_in(batch["id"], value_set=ids))
    for name in GOLD_COLUMNS:  # a label-free pool's prompts go on with a null gold
        if name not in batch.column_names:
            batch = batch.append_column(name, pa.nulls(batch.num_rows, pa.string()))
    return batch


def sample_rows(items: list[dict], gen: DictConfig) -> list[dict]:
    """The vllm backend's requests: one row per (prompt, sample index), each with its own seed."""
    return [{**it, "candidate_idx": k, "seed": stable_seed(gen.seed, it["id"], k)} for it in items
            for k in range(gen.num_samples)]


def _expand_samples(batch: dict, num_samples: int, seed: int) -> dict:
    """`sample_rows` for a Ray Data batch."""
    out = {k: np.repeat(v, num_samples, axis=0) for k, v in batch.items()}
    out["candidate_idx"] = np.tile(np.arange(num_samples), len(batch["id"]))
    out["seed"] = np.array([stable_seed(seed, i, k) for i, k in zip(out["id"], out["candidate_idx"])])
    return out


def check_token_budget(cfg: DictConfig, longest: int) -> None:
    """Stops, before any generator starts, when the longest prompt leaves no room for generate.max_new_tokens in
    the engine's max_model_len (vllm) or the model's context (hf)."""
    from nba_dpo.models.prompts import model_context, token_limit

    gen = cfg.generate
    need = longest + gen.max_new_tokens
    limit, over = token_limit(gen.model_path, gen.backend, gen.get("max_model_len"), "generate")
    if limit and need > limit:
        context = model_context(gen.model_path)
        fix = "lower" if over.startswith("the model's") else \
            f"raise generate.max_model_len{f' (the model takes up to {context})' if context else ''} or lower"
        raise UserError(f"the longest prompt of {gen.prompts} is {longest} tokens, which with generate.max_new_tokens="
                        f"{gen.max_new_tokens} needs {need}, over {over}: {fix} generate.max_new_tokens")


def longest_prompt(cfg: DictConfig, columns: list[str], ids: pa.Array) -> int:
    """The longest of the prompts `ids` in the policy's tokens, built here from the pool a row group at a time: known
    before any generator starts, with no more than a row group of the pool held."""
    from nba_dpo.models.prompts import PromptBuilder

    gen = cfg.generate
    builder = PromptBuilder(gen.model_path, cfg.model.include_schema)
    longest = 0
    with tqdm(total=len(ids), desc="[generate] prompt lengths", unit="prompt", leave=False) as bar:
        for group in storage.iter_row_groups(gen.prompts, columns=[c for c in columns if c in ("id", "question",
                                                                                                "schema")]):
            group = _keep_ids(group, ids)
            if group.num_rows:
                longest = max(longest, builder.longest(group.to_pydict()))
                bar.update(group.num_rows)
    return longest


def candidate_dataset(cfg: DictConfig, todo: set[str]):
    """Ray Data pipeline: the pool's prompts in `todo` -> candidate rows with exec_ok/correct (null without a gold
    answer) and the reward, when a reward model is configured. Streamed from the read to the driver: no stage holds
    more than Ray Data's share of the object store (`cluster.data_memory_mib`)."""
    import ray

    from nba_dpo.cluster import actor_resources
    from nba_dpo.generation.completions import hf_completions, verified
    from nba_dpo.models.prompts import PromptBuilder

    gen, score, cluster = cfg.generate, cfg.score, cfg.cluster
    # a label-free pool has no gold columns; the schema (about 3 kB a row) only goes where the prompt includes it
    skip = ({*GOLD_COLUMNS} if not pool_has_gold(gen.prompts) else set()) | \
        (set() if cfg.model.include_schema else {"schema"})
    columns = [c for c in PROMPT_COLUMNS if c not in skip]
    ids = pa.array(sorted(todo), pa.string())
    check_token_budget(cfg, longest_prompt(cfg, columns, ids))
    ds = storage.read_dataset(gen.prompts, columns=columns)
    ds = ds.map_batches(_keep_ids, fn_kwargs={"ids": ids}, batch_format="pyarrow", num_cpus=0)
    # the prompt text in the policy's chat format
    ds = ds.map_batches(PromptBuilder, batch_size=256, compute=ray.data.ActorPoolStrategy(size=1),
                        **actor_resources(cluster, num_cpus=0),
                        fn_constructor_kwargs=dict(model_path=gen.model_path, include_schema=cfg.model.include_schema))
    if gen.backend == "vllm":  # one request per (prompt, sample)
        ds = ds.map_batches(_expand_samples, fn_kwargs={"num_samples": gen.num_samples, "seed": gen.seed},
                            batch_format="numpy", num_cpus=0)
    # one block per generator call, in the pool's order: the same prompts go together, and so get the same samples, on
    # every run
    ds = ds.repartition(target_num_rows_per_block=gen.batch_size)
    ds.context.execution_options.preserve_order = True
    if gen.backend == "vllm":
        from nba_dpo.generation.vllm_backend import build_vllm_processor

        ds = build_vllm_processor(gen, cluster, model_path=gen.model_path, batch_size=gen.batch_size,
                                  concurrency=gen.concurrency, seed=gen.seed, max_new_tokens=gen.max_new_tokens,
                                  temperature=gen.temperature, top_p=gen.top_p, top_k=gen.top_k,
                                  passthrough=VLLM_PASSTHROUGH)(ds)
    else:
        from hydra.utils import get_class

        ds = hf_completions(ds, get_class(gen.actor_class), cluster, batch_size=gen.batch_size,
                            concurrency=gen.concurrency, model_path=gen.model_path,
                            max_new_tokens=gen.max_new_tokens, greedy=False, num_samples=gen.num_samples,
                            temperature=gen.temperature, top_p=gen.top_p, top_k=gen.top_k, seed=gen.seed,
                            dtype=cfg.model.dtype, sample_chunk=gen.batch_size)
    return verified(ds, cfg.data.db_path, score.sql_timeout_s, cluster, score.reward_model)


def _candidate_row(r: dict, weights: DictConfig) -> dict:
    # a label-free prompt's null gold may come back from Ray Data's batches as NaN
    gold, gold_reasoning = (r[k] if isinstance(r[k], str) else None for k in ("sql", "reasoning"))
    row = {"prompt_id": str(r["id"]), "candidate_idx": int(r["candidate_idx"]), "prompt": r["prompt"],
           "completion": str(r["completion"]), "sql": str(r["pred_sql"]), "exec_ok": bool(r["exec_ok"]),
           "correct": None if gold is None else bool(r["correct_spider"]), "n_tokens": int(r["n_tokens"]),
           "reward": float(r["reward"]) if r.get("reward") is not None and not np.isnan(r["reward"]) else None,
           "error": r["error"] if isinstance(r.get("error"), str) else None, "question": r["question"],
           "difficulty": r["difficulty"], "template_id": r["template_id"], "gold_sql": gold,
           "gold_reasoning": gold_reasoning}
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
    gen = cfg.generate
    parts = storage.list_files(f"{gen.output_dir}/candidates", ".parquet")
    written = {i for part in parts for i in storage.read_table(part, columns=["prompt_id"]).column(0).to_pylist()}
    todo = [i for i in ids if i not in written]
    if written:
        print(f"[generate] resuming: {len(ids) - len(todo)} prompts already have candidates, {len(todo)} to go")
    made = {"prompts": len(todo), "candidates": 0, "tokens": 0, "part": len(parts)}
    if todo:
        # closed on an error too, so that the error's line starts on a line of its own
        with tqdm(total=len(todo), desc=f"[generate] prompts ({gen.backend}, {gen.num_samples} samples)",
                  unit="prompt") as bar:
            retrying(lambda: _stream_candidates(cfg, [i for i in todo if i not in written], written, made, bar),
                     gen.retries, "generating the prompts not yet written")
    return made


def _stream_candidates(cfg: DictConfig, todo: list[str], written: set[str], made: dict, bar) -> None:
    """One pipeline over the prompts `todo`: part files of complete prompts, as they arrive; `written` and `made`
    grow with each part."""
    gen = cfg.generate
    pending: dict[str, dict[int, dict]] = defaultdict(dict)
    complete: list[dict] = []
    done: set[str] = set()

    def flush() -> None:
        nonlocal complete
        storage.write_parquet(complete, f"{gen.output_dir}/candidates/part-{made['part']:05d}.parquet",
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
        if len(pending[pid]) == gen.num_samples:
            got = pending.pop(pid)
            done.add(pid)
            complete += [got[k] for k in range(gen.num_samples)]
            bar.update(1)
        if len(complete) >= gen.chunk_prompts * gen.num_samples:
            flush()
    for pid, got in pending.items():  # should not happen; recorded rather than lost
        first = next(iter(got.values()))
        complete += [got.get(k) or {**first, "candidate_idx": k, "completion": "", "sql": "", "exec_ok": False,
                                    "correct": False, "n_tokens": 0, "reward": None, "score": float("-inf"),
                                    "error": "missing: no output for this sample"} for k in range(gen.num_samples)]
    if complete:
        flush()
