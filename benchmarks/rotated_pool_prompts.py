"""Preference prompts with reordered words: does DPO on them carry over to phrasings no stage saw?

Writes a copy of the preference pool's first N prompts in which every question (or every other one, `--every 2`)
is rotated at a random word: "Which division are the Detroit Pistons in?" may become "Detroit Pistons in which
division are the?". Values the gold SQL names (team and player names, seasons, numbers; found with sqlglot) stay
whole, so the gold SQL still answers the question and the verifier still scores the samples. Then sample, pair and
train on it with the usual jobs (BENCHMARKS.md, "Reordered preference prompts"):

    python benchmarks/rotated_pool_prompts.py --pool A/data/pref_prompts.parquet --out A/data/pref_rot.parquet
    python -m jobs.generate paths.artifacts=A generate.prompts=A/data/pref_rot.parquet generate.output_dir=A/prefs_rot
    python -m jobs.train_dpo paths.artifacts=A train.pairs=A/prefs_rot/pairs/train.parquet \
        train.eval_pairs=null train.output_dir=A/models/dpo_rot run_name=rot
    python -m jobs.evaluate paths.artifacts=A eval.name=dpo_rot eval.model_path=A/models/dpo_rot
"""
import argparse
import random
import re

import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp


def units(question: str, sql: str) -> tuple[list[str], set[str]]:
    """The question's words, with each value the gold SQL names kept whole (with any suffix: "Nets's"); and those."""
    values = {str(lit.this) for lit in sqlglot.parse_one(sql, read="sqlite").find_all(exp.Literal)}
    spans: list[tuple[int, int]] = []
    for value in sorted(values, key=len, reverse=True):  # "2023-24" before "24"
        for m in re.finditer(r"(?<![\w-])" + re.escape(value) + r"(?![\w-])", question):
            if all(m.end() <= a or m.start() >= b for a, b in spans):
                end = m.end()
                while end < len(question) and not question[end].isspace():
                    end += 1
                spans.append((m.start(), end))
                break
    words, pos = [], 0
    for a, b in sorted(spans):
        words += question[pos:a].split() + [question[a:b]]
        pos = b
    return words + question[pos:].split(), {question[a:b] for a, b in spans}


def rotate(question: str, sql: str, rng: random.Random) -> str:
    end = question[-1] if question[-1] in "?." else ""
    words, values = units(question.rstrip("?."), sql)
    if len(words) < 3:
        return question
    k = rng.randint(1, len(words) - 1)
    if words[0] not in values:
        words[0] = words[0][0].lower() + words[0][1:]  # the old opening word, now mid-sentence
    rotated = " ".join(words[k:] + words[:k])
    return rotated[0].upper() + rotated[1:] + end


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", required=True, help="the preference prompts Parquet (data/pref_prompts.parquet)")
    ap.add_argument("--out", required=True, help="where to write the rotated copy")
    ap.add_argument("--limit", type=int, default=1000, help="take the pool's first N prompts (the demo samples 1,000)")
    ap.add_argument("--every", type=int, default=1, help="rotate every k-th question only (2: half of them)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows = pq.read_table(args.pool).slice(0, args.limit).to_pylist()
    for i, row in enumerate(rows):
        if i % args.every == args.every - 1:
            row["question"] = rotate(row["question"], row["sql"], rng)
    pq.write_table(pa.Table.from_pylist(rows), args.out)
    for row in rows[:5]:
        print(row["question"])
    print(f"wrote {len(rows)} prompts to {args.out}")


if __name__ == "__main__":
    main()
