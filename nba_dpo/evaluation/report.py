"""summary.md and plots for one evaluation."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nba_dpo import storage  # noqa: E402


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def summary_markdown(name: str, m: dict) -> str:
    lines = [f"# Evaluation: {name}", "",
             f"{m['n']} questions. EX (Spider) {pct(m['ex_spider'])}%, EX (BIRD) {pct(m['ex_bird'])}%, "
             f"valid SQL {pct(m['valid_sql'])}%, exact match {pct(m['exact_match'])}%.", ""]
    if "pass_at_k" in m:
        lines += ["pass@k (sampled): " + ", ".join(f"pass@{k} {pct(v)}%" for k, v in m["pass_at_k"].items()), ""]
    if "verbosity" in m:
        v, rs = m["verbosity"], m["reasoning"]
        lines += [f"Completion tokens: mean {v['mean_completion_tokens']:.1f}, p50 {v['p50_completion_tokens']:.0f}, "
                  f"p90 {v['p90_completion_tokens']:.0f}; ratio to gold {v['ratio_to_gold']:.2f}. Reasoning line present "
                  f"{pct(rs['has_reasoning'])}%, consistent with its SQL {pct(rs['consistent'])}%, correct against "
                  f"the gold SQL {pct(rs['correct'])}%; EX {pct(rs['ex_when_correct'])}% when the reasoning is "
                  f"correct (n={rs['n_when_correct']}), {pct(rs['ex_when_wrong'])}% when not (n={rs['n_when_wrong']}).",
                  ""]
    if "preferences" in m:
        p = m["preferences"]
        lines += [f"Held-out preference pairs ({p['n']}): the model's log-probability prefers the chosen answer in "
                  f"{pct(p['prefers_chosen'])}% (summed), {pct(p['prefers_chosen_per_token'])}% (per token).", ""]
    for title, key in (("difficulty", "by_difficulty"), ("hold-out", "by_holdout"), ("template", "by_template")):
        lines += [f"| {title} | n | EX Spider | EX BIRD | valid |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {g} | {s['n']} | {pct(s['ex_spider'])} | {pct(s['ex_bird'])} | {pct(s['valid_sql'])} |"
                  for g, s in m[key].items()]
        lines.append("")
    return "\n".join(lines)


def plot_by_difficulty(name: str, m: dict, uri: str) -> str:
    groups = list(m["by_difficulty"])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    xs = range(len(groups))
    ax.bar([x - 0.2 for x in xs], [100 * m["by_difficulty"][g]["ex_spider"] for g in groups], 0.4, label="EX Spider")
    ax.bar([x + 0.2 for x in xs], [100 * m["by_difficulty"][g]["ex_bird"] for g in groups], 0.4, label="EX BIRD")
    ax.set_xticks(list(xs), [f"{g}\n(n={m['by_difficulty'][g]['n']})" for g in groups], fontsize=8)
    ax.set_ylabel("execution accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{name}: execution accuracy by difficulty")
    ax.legend()
    fig.tight_layout()
    storage.write_figure(fig, uri)
    plt.close(fig)
    return uri


def write_report(name: str, m: dict, out_dir: str) -> None:
    storage.write_text(summary_markdown(name, m), f"{out_dir}/summary.md")
    plot_by_difficulty(name, m, f"{out_dir}/ex_by_difficulty.png")
