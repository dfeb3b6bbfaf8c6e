"""One prompt builder for every model: the chat template of the model's own tokenizer, with or without schema."""
from __future__ import annotations

DEFAULT_SYSTEM_PROMPT = (
    "You translate questions about NBA statistics into SQLite queries over the database below. Answer with one "
    "line 'Reasoning: ' naming the tables, filters and aggregation, then one line 'SQL: ' with a single query.")


def build_messages(question: str, schema: str | None, include_schema: bool,
                   system_prompt: str = DEFAULT_SYSTEM_PROMPT) -> list[dict]:
    if not include_schema:  # the tiny model learns the schema; a real model needs it in the prompt
        return [{"role": "user", "content": question}]
    return [{"role": "system", "content": f"{system_prompt}\n\nSchema:\n{schema}"},
            {"role": "user", "content": question}]


def build_prompt(tokenizer, question: str, schema: str | None, include_schema: bool,
                 system_prompt: str = DEFAULT_SYSTEM_PROMPT) -> str:
    """The prompt text, ending where the assistant's answer begins."""
    return tokenizer.apply_chat_template(build_messages(question, schema, include_schema, system_prompt),
                                         tokenize=False, add_generation_prompt=True)


class PromptBuilder:
    """Ray Data stage: the `prompt` column from each row's question (and schema, which it consumes), in the chat
    format of the model at `model_path` (a local, shared or object-store folder, or a hub id)."""

    def __init__(self, model_path: str, include_schema: bool):
        from transformers import AutoTokenizer

        from nba_dpo import storage

        self.tokenizer = AutoTokenizer.from_pretrained(storage.local_copy(model_path))
        self.include_schema = include_schema

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        out = {k: v for k, v in batch.items() if k != "schema"}
        out["prompt"] = np.array([build_prompt(self.tokenizer, str(q), str(s), self.include_schema)
                                  for q, s in zip(batch["question"], batch["schema"])], dtype=object)
        return out
