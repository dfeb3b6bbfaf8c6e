"""<artifacts>/report/: report.md with plots (accuracy before/after, win rates, verbosity, completion lengths, DPO
reward curves, pass@k) and examples, and summary.json: SFT against the DPO round chosen by validation EX, the other
rounds and the controls (docs/architecture.md lists its keys)."""
from __future__ import annotations

from pathlib import PurePosixPath

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nba_dpo import storage  # noqa: E402
from nba_dpo.errors import UserError  # noqa: E402
from nba_dpo.evaluation.head_to_head import head_to_head  # noqa: E402
from nba_dpo.evaluation.report import pct  # noqa: E402
from nba_dpo.sql.extract import extract_reasoning  # noqa: E402
from nba_dpo.sql.sandbox import Sandbox  # noqa: E402


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


def _sampled(evals: dict) -> bool:
    return any(m.get("pass_at_k") for m in evals.values())


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


def _plot_win_rates(duels: dict, path: str) -> None:
    """Wins, ties and losses of each comparison, overall and by difficulty, as stacked bars."""
    fig, axes = plt.subplots(len(duels), 1, figsize=(9, 2.4 * len(duels)), squeeze=False)
    for ax, (title, h) in zip(axes[:, 0], duels.items()):
        groups = {"overall": h, **h["by_difficulty"]}
        labels = [f"{g}\n(n={t['questions']})" for g, t in groups.items()]
        left = [0.0] * len(groups)
        for part, color in (("wins", "tab:green"), ("ties", "tab:gray"), ("losses", "tab:red")):
            vals = [100 * t[part]["rate"] for t in groups.values()]
            ax.barh(labels, vals, left=left, color=color, label=part)
            left = [a + b for a, b in zip(left, vals)]
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_title(f"{title} (McNemar p = {h['mcnemar_p']:.3g})", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, ncol=3, loc="lower right")
    axes[-1, 0].set_xlabel("% of test questions")
    _save(fig, path)


def _plot_verbosity(evals: dict, path: str) -> None:
    """Mean, median and p90 token lengths of completion, reasoning and SQL per model, with the gold answers'."""
    parts = ("completion", "reasoning", "sql")
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2))
    names = list(evals)
    series = {n: evals[n]["verbosity"]["tokens"] for n in names}
    series["gold"] = {p: evals[names[0]]["verbosity"]["tokens"][f"gold_{p}"] for p in parts}
    width = 0.8 / len(series)
    for ax, part in zip(axes, parts):
        for i, (name, t) in enumerate(series.items()):
            s = t[part]
            ax.bar([x + i * width for x in range(3)], [s["mean"], s["p50"], s["p90"]], width, label=name)
        ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(3)], ["mean", "median", "p90"])
        ax.set_title(f"{part} tokens", fontsize=9)
    axes[0].legend(fontsize=7)
    _save(fig, path)


def _predictions(art: str, name: str) -> list[dict]:
    return storage.read_table(f"{art}/eval/{name}/predictions.parquet").to_pylist()


def _first_rows(sandbox: Sandbox, sql: str, n: int = 3) -> str:
    if not sql:
        return "(no SQL)"
    r = sandbox.run(sql)
    return f"{r.failure}: {r.message}" if not r.ok else f"{r.rows[:n]}" + (" ..." if len(r.rows) > n else "")


def _examples(a: list[dict], b: list[dict], db_path: str, fixed: int = 10, broken: int = 5) -> dict:
    """Questions B got right and A wrong (fixed), and the reverse (broken), with both answers."""
    b_by_id = {r["id"]: r for r in b}
    both = [(x, b_by_id[x["id"]]) for x in a if x["id"] in b_by_id]
    out = {}
    with Sandbox(storage.local_copy(db_path), timeout_s=2.0) as sandbox:
        for kind, want, limit in (("fixed", (False, True), fixed), ("broken", (True, False), broken)):
            picked = [(x, y) for x, y in both if (x["correct_spider"], y["correct_spider"]) == want][:limit]
            out[kind] = [{"id": x["id"], "question": x["question"], "difficulty": x["difficulty"],
                          "gold_sql": x["gold_sql"],
                          **{side: {"reasoning": extract_reasoning(r["completion"]), "sql": r["sql"],
                                    "rows": _first_rows(sandbox, r["sql"])}
                             for side, r in (("before", x), ("after", y))}}
                         for x, y in picked]
    return out


def _examples_markdown(examples: dict, a: str, b: str) -> list[str]:
    lines = []
    for kind, title in (("fixed", f"Questions {b} fixed ({a} wrong, {b} right)"),
                        ("broken", f"Questions {b} broke ({a} right, {b} wrong)")):
        lines += [f"### {title}", ""] + ([] if examples[kind] else ["(none)"])
        for e in examples[kind]:
            lines += [f"- **{e['question']}** ({e['difficulty']}); gold: `{e['gold_sql']}`"]
            for side, name in (("before", a), ("after", b)):
                x = e[side]
                lines += [f"  - {name}: reasoning \"{x['reasoning']}\"; SQL `{x['sql']}`; rows {x['rows']}"]
        lines.append("")
    return lines


def _duel_line(title: str, h: dict) -> str:
    ci = lambda s: f"{pct(s['rate'])}% [{pct(s['ci95'][0])}, {pct(s['ci95'][1])}]"  # noqa: E731
    return (f"| {title} | {h['questions']} | {ci(h['wins'])} | {ci(h['ties'])} | {ci(h['losses'])} | "
            f"{h['only_a_correct']} / {h['only_b_correct']} | {h['mcnemar_p']:.3g} |")


def choose_round(rounds: list[dict], val: dict) -> tuple[dict, str]:
    """The round to report and export: the best validation EX (never the test split), the earliest on a tie."""
    best = max(rounds, key=lambda r: (val[r["eval"]], -r["round"]))
    if len(rounds) == 1:
        return best, "the only round"
    figures = ", ".join(f"round {r['round']} {pct(val[r['eval']])}%" for r in rounds)
    return best, f"the best validation EX ({figures})"


def write_pipeline_report(art: str, db_path: str, rounds: list[dict], controls: list[dict], timings: dict) -> dict:
    out = f"{art}/report"
    names = ["sft"] + [r["eval"] for r in rounds] + [c["eval"] for c in controls]
    evals = {n: storage.read_json(f"{art}/eval/{n}/metrics.json") for n in names}
    for n, m in evals.items():
        if "tokens" not in m.get("verbosity", {}) or "consistent" not in m.get("reasoning", {}):
            raise UserError(f"{art}/eval/{n} was written by an older version without the reasoning and verbosity "
                            f"figures: delete that folder and rerun the pipeline to evaluate it again")
    val = {n: storage.read_json(f"{art}/eval/{n}_val/metrics.json")["ex_spider"] for n in ["sft"] +
           [r["eval"] for r in rounds] if storage.exists(f"{art}/eval/{n}_val/metrics.json")}
    prefs = [storage.read_json(f"{r['prefs']}/summary.json") for r in rounds]
    histories = {PurePosixPath(r["model"]).name: storage.read_json(f"{r['model']}/log_history.json") for r in rounds}
    chosen, why = choose_round(rounds, val) if len(val) == len(rounds) + 1 else \
        (rounds[-1], "the only round" if len(rounds) == 1 else "the last round")
    dpo = chosen["eval"]
    preds = {n: _predictions(art, n) for n in names}
    duels = {f"{dpo} vs sft": head_to_head(preds[dpo], preds["sft"])}
    for prev, cur in zip(["sft"] + [r["eval"] for r in rounds], [r["eval"] for r in rounds]):
        duels.setdefault(f"{cur} vs {prev}", head_to_head(preds[cur], preds[prev]))
    for c in controls:
        duels[f"{c['eval']} vs sft"] = head_to_head(preds[c["eval"]], preds["sft"])
        duels[f"{dpo} vs {c['eval']}"] = head_to_head(preds[dpo], preds[c["eval"]])
    trl_heldout = {k: v for h in histories[PurePosixPath(chosen["model"]).name] for k, v in h.items()
                   if k in ("eval_rewards/accuracies", "eval_rewards/margins")}
    examples = _examples(preds["sft"], preds[dpo], db_path)
    summary = {"sft": _headline(evals["sft"]), "dpo": _headline(evals[dpo]),
               "heldout_phrasings": {"sft_ex_spider": evals["sft"]["heldout_phrasings"]["ex_spider"],
                                     "dpo_ex_spider": evals[dpo]["heldout_phrasings"]["ex_spider"]},
               "pairs": {"n": prefs[-1]["pairs"]["n"], "per_prompt": prefs[-1]["pairs"]["per_prompt"]},
               "rounds": [{"round": r["round"], "ex_spider": evals[r["eval"]]["ex_spider"],
                           "val_ex_spider": val.get(r["eval"]), "pairs": p["pairs"]["n"]}
                          for r, p in zip(rounds, prefs)],
               "chosen": {"round": chosen["round"], "eval": dpo, "model": chosen["model"], "why": why,
                          "val_ex_spider": {n: v for n, v in val.items()}},
               "win_rate": duels,
               "reasoning": {n: evals[n]["reasoning"] for n in names},
               "verbosity": {n: evals[n]["verbosity"]["tokens"] for n in names},
               "preferences": {**{n: evals[n].get("preferences") for n in names},
                               "trl_heldout_reward_accuracy": trl_heldout.get("eval_rewards/accuracies"),
                               "trl_heldout_reward_margin": trl_heldout.get("eval_rewards/margins")},
               "controls": {c["name"]: _headline(evals[c["eval"]]) for c in controls},
               "timings_s": timings}
    _plot_accuracy(evals, f"{out}/ex_before_after.png")
    _plot_lengths(art, names, f"{out}/completion_lengths.png")
    _plot_rewards(histories, f"{out}/dpo_rewards.png")
    if _sampled(evals):  # greedy-only evaluations (pipeline.eval_samples=0) have no pass@k to draw
        _plot_pass_at_k(evals, f"{out}/pass_at_k.png")
    _plot_win_rates(duels, f"{out}/win_rate.png")
    _plot_verbosity({n: evals[n] for n in names}, f"{out}/verbosity.png")
    storage.write_text("\n".join(_report_lines(names, evals, summary, prefs, examples, dpo)), f"{out}/report.md")
    storage.write_json(summary, f"{out}/summary.json")
    return summary


def headline(summary: dict) -> str:
    """The figures a run ends by printing: SFT against the reported DPO round."""
    s = summary
    f = lambda x: "-" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    sides, evals = ("sft", "dpo"), ("sft", s["chosen"]["eval"])
    lines = [f"{'':44}{'SFT':>10}{'DPO':>10}"]
    rows = [("EX (Spider)", [s[k]["ex_spider"] for k in sides]), ("EX (BIRD)", [s[k]["ex_bird"] for k in sides]),
            ("valid SQL", [s[k]["valid_sql"] for k in sides]), ("pass@8", [s[k]["pass_at_8"] for k in sides]),
            ("held-out phrasings EX", [s["heldout_phrasings"][f"{k}_ex_spider"] for k in sides]),
            ("reasoning consistent with its SQL", [s["reasoning"][k]["consistent"] for k in evals]),
            ("reasoning correct (against the gold SQL)", [s["reasoning"][k]["correct"] for k in evals]),
            ("held-out pairs: likelihood prefers chosen",
             [(s["preferences"][k] or {}).get("prefers_chosen") for k in evals]),
            ("... per token", [(s["preferences"][k] or {}).get("prefers_chosen_per_token") for k in evals])]
    lines += [f"{label:<44}{f(a):>10}{f(b):>10}" for label, (a, b) in rows]
    tokens = lambda k, part: s["verbosity"][k][part]  # noqa: E731
    for part in ("completion", "reasoning", "sql"):
        a, b = tokens("sft", part), tokens(s["chosen"]["eval"], part)
        lines.append(f"{part + ' tokens (mean / p90)':<44}{a['mean']:>6.1f}/{a['p90']:<3.0f}{b['mean']:>6.1f}/"
                     f"{b['p90']:<3.0f}   gold {tokens('sft', 'gold_' + part)['mean']:.1f}")
    w = s["win_rate"][f"{s['chosen']['eval']} vs sft"]
    ci = lambda x: f"{100 * x['rate']:.1f}% [{100 * x['ci95'][0]:.1f}, {100 * x['ci95'][1]:.1f}]"  # noqa: E731
    lines += [f"DPO vs SFT per question: wins {ci(w['wins'])}, ties {ci(w['ties'])}, losses {ci(w['losses'])}; "
              f"McNemar p = {w['mcnemar_p']:.3g}",
              f"reported: round {s['chosen']['round']} ({s['chosen']['why']}); pairs: {s['pairs']['n']} "
              f"({s['pairs']['per_prompt']:.2f} per prompt)"]
    for name, m in s["controls"].items():
        lines.append(f"control {name}: EX {f(m['ex_spider'])}, valid SQL {f(m['valid_sql'])}")
    return "\n".join(lines)


def _ex_when(r: dict, kind: str) -> str:
    n = r[f"n_when_{kind}"]
    return f"{pct(r[f'ex_when_{kind}'])} (n={n})" if n else "- (n=0)"


def _report_lines(names: list[str], evals: dict, summary: dict, prefs: list[dict], examples: dict, dpo: str):
    opt = lambda f: lambda m: f(m) if m else "-"  # noqa: E731  (a figure an older evaluation did not measure)
    lines = ["# nba-dpo report", "",
             f"Reported model: round {summary['chosen']['round']} ({dpo}, {summary['chosen']['model']}), chosen by "
             f"{summary['chosen']['why']}.", "",
             "| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    rows = [("EX Spider", lambda m: pct(m["ex_spider"])), ("EX BIRD", lambda m: pct(m["ex_bird"])),
            ("valid SQL", lambda m: pct(m["valid_sql"])),
            ("pass@8", lambda m: pct(m["pass_at_k"]["8"]) if "8" in m.get("pass_at_k", {}) else "-"),
            ("held-out phrasings EX", lambda m: pct(m["heldout_phrasings"]["ex_spider"])),
            ("reasoning consistent with its SQL", lambda m: pct(m["reasoning"]["consistent"])),
            ("reasoning correct (against gold)", lambda m: pct(m["reasoning"]["correct"])),
            ("EX when the reasoning is correct", lambda m: _ex_when(m["reasoning"], "correct")),
            ("EX when the reasoning is wrong", lambda m: _ex_when(m["reasoning"], "wrong")),
            ("held-out pairs: likelihood prefers chosen",
             lambda m: opt(lambda p: pct(p["prefers_chosen"]))(m.get("preferences"))),
            ("... per token", lambda m: opt(lambda p: pct(p["prefers_chosen_per_token"]))(m.get("preferences"))),
            ("... implicit reward accuracy",
             lambda m: opt(lambda p: pct(p["implicit_reward_accuracy"]))(m.get("preferences"))),
            ("mean completion tokens", lambda m: f"{m['verbosity']['mean_completion_tokens']:.1f}")]
    rows += [(f"EX {d}", (lambda d: lambda m: pct(m["by_difficulty"][d]["ex_spider"]))(d))
             for d in evals["sft"]["by_difficulty"]]
    lines += [f"| {label} | " + " | ".join(f(evals[n]) for n in names) + " |" for label, f in rows]
    p = summary["preferences"]
    acc, margin = p["trl_heldout_reward_accuracy"], p["trl_heldout_reward_margin"]
    if acc is not None:
        lines += ["", f"DPO's implicit reward on its held-out pairs (TRL): accuracy {pct(acc)}%, margin {margin:.3f}."]
    lines += ["", "## Win rate", "",
              "Per test question: a win when only the first model is right by execution (a reward model's score "
              "breaks ties when `eval.reward_model` is set), 95% Wilson intervals; McNemar's exact test on the paired "
              "correctness.", "",
              "| comparison | questions | wins | ties | losses | only first / only second right | McNemar p |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    lines += [_duel_line(title, h) for title, h in summary["win_rate"].items()]
    main = summary["win_rate"][f"{dpo} vs sft"]
    lines += ["", f"By difficulty ({dpo} vs sft): " + "; ".join(
        f"{g} {pct(t['wins']['rate'])}/{pct(t['ties']['rate'])}/{pct(t['losses']['rate'])}"
        for g, t in main["by_difficulty"].items()) + " (wins/ties/losses %).",
              "By held-out kind: " + "; ".join(
        f"{g} {pct(t['wins']['rate'])}/{pct(t['ties']['rate'])}/{pct(t['losses']['rate'])}"
        for g, t in main["by_holdout"].items()) + ".", "",
              "## Verbosity (tokens: mean / median / p90)", "",
              "| | " + " | ".join(names + ["gold"]) + " |", "|---|" + "---:|" * (len(names) + 1)]
    spread = lambda s: f"{s['mean']:.1f} / {s['p50']:.0f} / {s['p90']:.0f}"  # noqa: E731
    for part in ("completion", "reasoning", "sql"):
        gold = summary["verbosity"]["sft"][f"gold_{part}"]
        lines.append(f"| {part} | " + " | ".join(spread(summary["verbosity"][n][part]) for n in names) +
                     f" | {spread(gold)} |")
    lines += ["", f"Pairs (last round): {summary['pairs']['n']} ({summary['pairs']['per_prompt']:.2f} per prompt); "
              f"no pair: {prefs[-1]['no_pair_reasons']}.", "",
              "Stage timings (s): " + ", ".join(f"{k} {v}" for k, v in summary["timings_s"].items()), "",
              "![accuracy](ex_before_after.png)", "![win rate](win_rate.png)", "![verbosity](verbosity.png)",
              "![lengths](completion_lengths.png)", "![rewards](dpo_rewards.png)",
              *(["![pass@k](pass_at_k.png)"] if _sampled(evals) else []), "", "## Examples", ""]
    lines += _examples_markdown(examples, "sft", dpo)
    return lines
