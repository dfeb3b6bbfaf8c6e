"""Label-free preferences against the alternatives, all from the same SFT model and the same sampled candidates.

Starts from a finished `python -m jobs.pipeline experiment=demo_unlabelled paths.artifacts=ROOT` (its SFT model, its
1,000 x 8 candidates and their consensus pairs) and trains, per seed, every arm of the comparison from that SFT
model, each evaluated greedily on the test split:

  rft            SFT on the consensus pairs' chosen answers (the NLL term alone: rejection-sampling fine-tuning)
  dpo            DPO + NLL (the default loss) on the consensus pairs
  rft_short      rft trained less: 1 epoch at lr 1e-4 instead of 5 at 5e-4
  dpo_short      the same loss, trained less: 1 epoch at lr 1e-4 instead of 5 at 5e-4 (less pull towards wrong labels)
  dpo_pref       the preference term alone (sigmoid, beta 0.1), no NLL term on possibly wrong chosen answers
  dpo_apo        TRL's apo_zero (beta 0.1): pushes chosen up and rejected down in absolute terms
  dpo_norm_short dpo_short with the preference term per token (TRL's sigmoid_norm, beta 30: about the summed
                 term's scale at the demo's 30-40 completion tokens): long and short pairs weigh the same
  dpo_distinct_short  dpo_short on the consensus pairs whose SQL differ in at least 4 tokens (pairs.min_token_edits)
  dpo_round2_short    on-policy: the preset's round 2 (pipeline.rounds=2), sampled with the round-1 DPO model on the
                 pool's next 1,000 prompts and trained from it; for another seed, the same from that seed's
                 dpo_short model, sampled with the pipeline's seed
  dpo_votes5     DPO + NLL on consensus pairs of at least 5 agreeing samples of 8 (fewer, surer pairs)
  dpo_learned    DPO + NLL, with a learned reward model choosing within the agreeing group (score=learned)
  dpo_rm         DPO + NLL on the learned reward model's best over its worst candidate, no consensus
  dpo_gold       DPO + NLL on the gold answers over the worst candidates (labels used: the upper bound)

The learned reward model trains (jobs.train_reward) on execution-verified pairs sampled on 1,000 SFT training
questions, which have gold SQL. The seed is the training seed; pairs and their train/test split stay fixed. Every
step is a `python -m jobs.<stage>` command, skipped when its output exists, so a stopped study resumes.

    python benchmarks/label_free_study.py --artifacts artifacts/demo_unlabelled --seeds 0 1 \
        --arms rft rft_short dpo dpo_short dpo_gold dpo_norm_short dpo_distinct_short dpo_votes5 dpo_learned dpo_rm \
        dpo_apo dpo_pref dpo_round2_short
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nba_dpo.evaluation.head_to_head import head_to_head  # noqa: E402

SHORT = ["train.epochs=1", "train.learning_rate=1e-4"]
# one generator beside the CPU reward scorer: on 2 cores the two would otherwise hold every CPU of the local Ray
LEARNED = ["score=learned", "generate.concurrency=1"]
PREF_ONLY = ["train.loss_type=[sigmoid]", "train.loss_weights=null", "train.beta=0.1"]
ARMS = {  # name -> (pairs folder under the root, train_dpo overrides)
    "rft": ("prefs", ["train.loss_type=[sft]", "train.loss_weights=null"]),
    "dpo": ("prefs", []),
    "rft_short": ("prefs", ["train.loss_type=[sft]", "train.loss_weights=null", *SHORT]),
    "dpo_short": ("prefs", SHORT),
    "dpo_pref": ("prefs", PREF_ONLY),
    "dpo_apo": ("prefs", ["train.loss_type=[apo_zero]", "train.loss_weights=null", "train.beta=0.1"]),
    "dpo_votes5": ("prefs_votes5", []),
    "dpo_learned": ("prefs_learned", []),
    "dpo_rm": ("prefs_rm", []),
    "dpo_gold": ("prefs_gold", []),
    "dpo_norm_short": ("prefs", ["train.loss_type=[sigmoid_norm,sft]", "train.beta=30", *SHORT]),
    "dpo_distinct_short": ("prefs_distinct", SHORT),
    "dpo_round2_short": ("prefs_r2", None),  # None: the pipeline's round 2 (seed 0), or the same from dpo_short_s<seed>
}


def run(stage: str, done: Path, *args: str) -> None:
    if done.exists():
        return
    print(f"[study] python -m jobs.{stage} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", f"jobs.{stage}", *args], check=True, cwd=ROOT)


def prepare_pairs(root: Path, folders: set[str]) -> None:
    """The pair sets the arms beyond consensus need, from the same SFT model and (for the reward model's arms and the
    gold arm) the same candidates, sampled again with the same seeds; and always the gold arm's, whose labels
    measure every pair set's quality."""
    common = [f"paths.artifacts={root}", "run_name=study"]
    sft = root / "models" / "sft"
    labelled_data = root / "labelled_data"  # the same build with the pool's gold kept, for the gold arm only
    run("build_data", labelled_data / "manifest.json", *common, f"paths.data={labelled_data}")
    run("generate", root / "prefs_gold" / "summary.json", *common, f"generate.model_path={sft}",
        f"generate.prompts={labelled_data}/pref_prompts.parquet", "generate.limit=1000",
        f"generate.output_dir={root}/prefs_gold")
    if folders & {"prefs_learned", "prefs_rm"}:
        run("generate", root / "prefs_labelled" / "summary.json", *common, f"generate.model_path={sft}",
            f"generate.prompts={root}/data/sft/train.parquet", "generate.limit=1000", "pairs=margin",
            "generate.ref_logprobs=false", f"generate.output_dir={root}/prefs_labelled")
        run("train_reward", root / "models" / "reward" / "config.json", *common, "model.max_length=512")
        run("generate", root / "prefs_learned" / "summary.json", *common, f"generate.model_path={sft}",
            "generate.limit=1000", *LEARNED, "pairs=consensus", f"generate.output_dir={root}/prefs_learned")
    for folder, candidates, overrides in (("prefs_rm", "prefs_learned", [*LEARNED, "pairs=best_over_worst"]),
                                          ("prefs_votes5", "prefs", ["pairs=consensus", "pairs.min_votes=5"]),
                                          ("prefs_distinct", "prefs", ["pairs=consensus", "pairs.min_token_edits=4"])):
        if folder not in folders:
            continue
        if not (root / folder / "candidates").exists():  # the same candidates and scores: pairing alone differs
            shutil.copytree(root / candidates / "candidates", root / folder / "candidates")
        run("generate", root / folder / "summary.json", *common, f"generate.model_path={sft}", "generate.limit=1000",
            f"generate.output_dir={root}/{folder}", *overrides)


# what the preset's pipeline trained and evaluated (seed 0): the same commands, not run twice
PIPELINE_ARMS = {("dpo_short", 0): "dpo", ("rft_short", 0): "nll_only", ("dpo_round2_short", 0): "dpo_r2"}


def train_and_evaluate(root: Path, arm: str, seed: int) -> str:
    prefs, overrides = ARMS[arm]
    base = root / "models" / "sft"
    if overrides is None and seed == 0:
        run("pipeline", root / "eval" / "dpo_r2" / "metrics.json", "experiment=demo_unlabelled",
            f"paths.artifacts={root}", "pipeline.rounds=2")
    elif overrides is None:  # the pipeline's round 2 from this seed's round 1, sampled with the pipeline's seed
        train_and_evaluate(root, "dpo_short", seed)
        base, prefs, overrides = root / "models" / "study" / f"dpo_short_s{seed}", f"prefs_r2_s{seed}", SHORT
        run("generate", root / prefs / "summary.json", f"paths.artifacts={root}", "run_name=study",
            f"generate.model_path={base}", "generate.offset=1000", "generate.limit=1000", "pairs=consensus",
            f"generate.output_dir={root}/{prefs}")
    evaluation = PIPELINE_ARMS.get((arm, seed))
    if evaluation and (root / "eval" / evaluation / "metrics.json").exists():
        return evaluation
    name = f"{arm}_s{seed}"
    model = root / "models" / "study" / name
    run("train_dpo", model / "config.json", f"paths.artifacts={root}", f"seed={seed}", f"run_name=study_{name}",
        f"train.base_model={base}", f"train.pairs={root}/{prefs}/pairs/train.parquet",
        f"train.eval_pairs={root}/prefs/pairs/test.parquet", f"train.output_dir={model}", *overrides)
    run("evaluate", root / "eval" / f"study_{name}" / "metrics.json", f"paths.artifacts={root}",
        f"eval.name=study_{name}", f"eval.model_path={model}", "eval.pairs=null")
    return f"study_{name}"


def predictions(root: Path, evaluation: str) -> list[dict]:
    return pq.read_table(root / "eval" / evaluation / "predictions.parquet",
                         columns=["id", "correct_spider", "difficulty", "holdout"]).to_pylist()


def versus(rows: list[dict], base: list[dict]) -> dict:
    h = head_to_head(rows, base)
    return {"win": h["wins"]["rate"], "tie": h["ties"]["rate"], "loss": h["losses"]["rate"], "p": h["mcnemar_p"]}


def label_quality(root: Path) -> dict:
    """How often each pair set's chosen (rejected) answer is right, read off the gold arm's copy of the same
    candidates (the only place the labels are used), and per difficulty the share of prompts with any right sample
    and the consensus pairs' share of right chosen answers."""
    right, level, any_right = {}, {}, defaultdict(bool)
    for part in (root / "prefs_gold" / "candidates").glob("*.parquet"):
        for r in pq.read_table(part, columns=["prompt_id", "completion", "correct", "difficulty"]).to_pylist():
            right[r["prompt_id"], r["completion"]] = r["correct"]
            level[r["prompt_id"]] = r["difficulty"]
            any_right[r["prompt_id"]] |= r["correct"]
    out = {}
    for folder in ("prefs", "prefs_votes5", "prefs_learned", "prefs_rm", "prefs_distinct"):
        if not (root / folder / "pairs").exists():
            continue
        pairs = pq.read_table([root / folder / "pairs" / f"{s}.parquet" for s in ("train", "test")]).to_pylist()
        out[folder] = {"pairs": len(pairs)}
        for side in ("chosen", "rejected"):
            known = [right[p["prompt_id"], p[side]] for p in pairs if (p["prompt_id"], p[side]) in right]
            out[folder][f"{side}_correct"] = sum(known) / len(known) if known else None
    by_level = defaultdict(lambda: {"prompts": 0, "any_right_sample": 0, "pairs": 0, "chosen_correct": 0})
    for prompt, d in level.items():
        by_level[d]["prompts"] += 1
        by_level[d]["any_right_sample"] += any_right[prompt]
    for p in pq.read_table([root / "prefs" / "pairs" / f"{s}.parquet" for s in ("train", "test")]).to_pylist():
        by_level[level[p["prompt_id"]]]["pairs"] += 1
        by_level[level[p["prompt_id"]]]["chosen_correct"] += right.get((p["prompt_id"], p["chosen"]), False)
    out["prefs"]["by_difficulty"] = {d: {**v, "any_right_sample": v["any_right_sample"] / v["prompts"],
                                         "chosen_correct": v["chosen_correct"] / v["pairs"] if v["pairs"] else None}
                                     for d, v in sorted(by_level.items())}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifacts", required=True, help="a finished experiment=demo_unlabelled run")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--first-seed-arms", nargs="*", default=[], choices=list(ARMS),
                    help="arms trained with the first seed only")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "label_free_study.json"))
    a = ap.parse_args()
    root = Path(a.artifacts).resolve()
    folders = {ARMS[arm][0] for arm in a.arms + a.first_seed_arms} - {"prefs", "prefs_r2"}
    if folders:
        prepare_pairs(root, folders)
    evaluations = {(arm, seed): train_and_evaluate(root, arm, seed) for seed in a.seeds for arm in a.arms}
    evaluations.update({(arm, a.seeds[0]): train_and_evaluate(root, arm, a.seeds[0]) for arm in a.first_seed_arms})
    sft = predictions(root, "sft")
    table = {"sft": {"ex": json.loads((root / "eval" / "sft" / "metrics.json").read_text())["ex_spider"],
                     "mean_tokens": None}}
    for (arm, seed), evaluation in evaluations.items():
        metrics = json.loads((root / "eval" / evaluation / "metrics.json").read_text())
        rows = predictions(root, evaluation)
        base = "rft_short" if arm.endswith("_short") else "rft"  # RFT with the same schedule
        rft = predictions(root, evaluations[base, seed]) if (base, seed) in evaluations else None
        table[f"{arm}_s{seed}"] = {"ex": metrics["ex_spider"], "valid_sql": metrics["valid_sql"],
                                   "mean_tokens": metrics["verbosity"]["mean_completion_tokens"],
                                   "vs_sft": versus(rows, sft), "vs_rft": versus(rows, rft) if rft else None}
    sft_metrics = json.loads((root / "eval" / "sft" / "metrics.json").read_text())
    table["sft"]["mean_tokens"] = sft_metrics["verbosity"]["mean_completion_tokens"]
    for summary in sorted(root.glob("prefs*/summary.json")):
        s = json.loads(summary.read_text())
        table[f"pairs:{summary.parent.name}"] = {"pairs": s["pairs"]["n"], "no_pair_reasons": s["no_pair_reasons"],
                                                 "chosen_correct": s["pairs"]["chosen_correct"]}
    if (root / "prefs_gold" / "candidates").exists():
        table["label_quality"] = label_quality(root)
    reward = root / "models" / "reward" / "log_history.json"
    if reward.exists():
        table["reward_model"] = {"heldout_accuracy": [h["eval_accuracy"] for h in json.loads(reward.read_text())
                                                      if "eval_accuracy" in h][-1:]}
    Path(a.out).write_text(json.dumps(table, indent=1))
    print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
