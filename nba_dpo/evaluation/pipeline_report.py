"""<artifacts>/report/: report.md with plots (accuracy before/after, completion lengths, DPO reward curves, pass@k)
and summary.json (SFT vs the last DPO round)."""
from __future__ import annotations

from pathlib import PurePosixPath

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nba_dpo import storage  # noqa: E402
from nba_dpo.evaluation.report import pct  # noqa: E402


def _headline(m: dict) -> dict:
    return {"ex_spider": m["ex_spider"], "ex_bird": m["ex_bird"], "valid_sql": m["valid_sql"],
            "pass_at_8": m.get("pass_at_k", {}).get("8"),
            "mean_completion_tokens": m.get("verbosity", {}).get("mean_completion_tokens")}


def _save(fig, uri: str) -> None:
    fig.tight_layout()
    storage.write_figure(fig, uri)
    plt.close(fig)


def _plot_accuracy(evals: dict, path: str) -> None:
    names = list(evals)
    groups = ["overall"] + list(evals[names[0]]["by_difficulty"]) + ["held-out phrasings"]
    fig, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        m = evals[name]
        vals = [m["ex_spider"]] + [m["by_difficulty"][g]["ex_spider"] for g in groups[1:-1]] + \
               [m["heldout_phrasings"]["ex_spider"]]
        ax.bar([x + i * width for x in range(len(groups))], [100 * v for v in vals], width, label=name)
    ax.set_xticks([x + width * (len(names) - 1) / 2 for x in range(len(groups))], groups, fontsize=8)
    ax.set_ylabel("EX Spider (%)")
    ax.set_title("Execution accuracy before and after DPO (held-out test split, greedy)")
    ax.legend()
    _save(fig, path)


def _plot_lengths(art: str, names: list[str], path: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name in names:
        tokens = storage.read_table(f"{art}/eval/{name}/predictions.parquet", columns=["n_tokens"]).column(0)
        tokens = tokens.to_pylist()
        ax.hist(tokens, bins=40, range=(0, 200), alpha=0.5, label=name)
    ax.set_xlabel("completion tokens")
    ax.set_ylabel("questions")
    ax.set_title("Completion length, SFT vs DPO")
    ax.legend()
    _save(fig, path)


def _plot_rewards(histories: dict, path: str) -> None:
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.3))
    for name, hist in histories.items():
        for prefix, label, style in (("", name, "-"), ("eval_", f"{name}, held-out pairs", "o--")):
            logs = [h for h in hist if f"{prefix}rewards/accuracies" in h]
            if logs:
                steps = [h["step"] for h in logs]
                a.plot(steps, [h[f"{prefix}rewards/accuracies"] for h in logs], style, label=label)
                b.plot(steps, [h[f"{prefix}rewards/margins"] for h in logs], style, label=label)
    a.set_title("reward accuracy")
    b.set_title("reward margin")
    for ax in (a, b):
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    _save(fig, path)


def _plot_pass_at_k(evals: dict, path: str) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.3))
    for name, m in evals.items():
        ks = sorted(m.get("pass_at_k", {}), key=int)
        ax.plot([int(k) for k in ks], [100 * m["pass_at_k"][k] for k in ks], marker="o", label=name)
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k (%)")
    ax.set_title("pass@k by sampling")
    ax.legend()
    _save(fig, path)


def write_pipeline_report(art: str, rounds: list[dict], timings: dict) -> dict:
    out = f"{art}/report"
    names = ["sft"] + [r["eval"] for r in rounds]
    evals = {n: storage.read_json(f"{art}/eval/{n}/metrics.json") for n in names}
    prefs = [storage.read_json(f"{r['prefs']}/summary.json") for r in rounds]
    histories = {PurePosixPath(r["model"]).name: storage.read_json(f"{r['model']}/log_history.json") for r in rounds}
    last = names[-1]
    summary = {"sft": _headline(evals["sft"]), "dpo": _headline(evals[last]),
               "heldout_phrasings": {"sft_ex_spider": evals["sft"]["heldout_phrasings"]["ex_spider"],
                                     "dpo_ex_spider": evals[last]["heldout_phrasings"]["ex_spider"]},
               "pairs": {"n": prefs[-1]["pairs"]["n"], "per_prompt": prefs[-1]["pairs"]["per_prompt"]},
               "rounds": [{"round": r["round"], "ex_spider": evals[r["eval"]]["ex_spider"],
                           "pairs": p["pairs"]["n"]} for r, p in zip(rounds, prefs)],
               "timings_s": timings}
    _plot_accuracy(evals, f"{out}/ex_before_after.png")
    _plot_lengths(art, names, f"{out}/completion_lengths.png")
    _plot_rewards(histories, f"{out}/dpo_rewards.png")
    _plot_pass_at_k(evals, f"{out}/pass_at_k.png")
    lines = ["# nba-dpo report", "", "| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    rows = [("EX Spider", lambda m: pct(m["ex_spider"])), ("EX BIRD", lambda m: pct(m["ex_bird"])),
            ("valid SQL", lambda m: pct(m["valid_sql"])),
            ("pass@8", lambda m: pct(m["pass_at_k"]["8"]) if "8" in m.get("pass_at_k", {}) else "-"),
            ("held-out phrasings EX", lambda m: pct(m["heldout_phrasings"]["ex_spider"])),
            ("mean completion tokens", lambda m: f"{m['verbosity']['mean_completion_tokens']:.1f}")]
    rows += [(f"EX {d}", (lambda d: lambda m: pct(m["by_difficulty"][d]["ex_spider"]))(d))
             for d in evals["sft"]["by_difficulty"]]
    lines += [f"| {label} | " + " | ".join(f(evals[n]) for n in names) + " |" for label, f in rows]
    lines += ["", f"Pairs (last round): {summary['pairs']['n']} ({summary['pairs']['per_prompt']:.2f} per prompt); "
              f"no pair: {prefs[-1]['no_pair_reasons']}.", "",
              "Stage timings (s): " + ", ".join(f"{k} {v}" for k, v in timings.items()), "",
              "![accuracy](ex_before_after.png)", "![lengths](completion_lengths.png)",
              "![rewards](dpo_rewards.png)", "![pass@k](pass_at_k.png)", ""]
    storage.write_text("\n".join(lines), f"{out}/report.md")
    storage.write_json(summary, f"{out}/summary.json")
    return summary
