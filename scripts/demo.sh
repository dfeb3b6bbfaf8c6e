#!/usr/bin/env bash
# Set up .venv and run the whole pipeline on the embedded default (simulated NBA data, tiny model, local Ray, CPU):
# build_data -> sft -> evaluate -> generate -> train_dpo -> evaluate -> report. Rerunning resumes: finished stages
# are skipped. Extra arguments are Hydra overrides for jobs.pipeline (e.g. pipeline.rounds=2).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
ARTIFACTS="${ARTIFACTS:-artifacts/demo}"
python -m jobs.pipeline experiment=demo paths.artifacts="$ARTIFACTS" "$@"
python - "$ARTIFACTS" <<'PY'
import json, sys
s = json.load(open(f"{sys.argv[1]}/report/summary.json"))
f = lambda x: "-" if x is None else f"{100 * x:.1f}%"
print(f"\n{'':24}{'SFT':>10}{'DPO':>10}")
for key, label in (("ex_spider", "EX (Spider)"), ("ex_bird", "EX (BIRD)"), ("valid_sql", "valid SQL"), ("pass_at_8", "pass@8")):
    print(f"{label:<24}{f(s['sft'][key]):>10}{f(s['dpo'][key]):>10}")
h = s["heldout_phrasings"]
print(f"{'held-out phrasings EX':<24}{f(h['sft_ex_spider']):>10}{f(h['dpo_ex_spider']):>10}")
print(f"{'mean completion tokens':<24}{s['sft']['mean_completion_tokens']:>10.1f}{s['dpo']['mean_completion_tokens']:>10.1f}")
print(f"pairs: {s['pairs']['n']} ({s['pairs']['per_prompt']:.2f} per prompt); stage seconds: {s['timings_s']}")
print(f"report: {sys.argv[1]}/report/report.md")
PY
