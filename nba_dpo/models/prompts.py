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


def model_context(model_path: str) -> int | None:
    """The longest sequence (prompt + completion tokens) the model at `model_path` takes, from its config.json."""
    from nba_dpo import storage

    if not storage.exists(f"{model_path}/config.json"):  # a hub id, resolved by the library itself
        return None
    config = storage.read_json(f"{model_path}/config.json")
    return config.get("max_position_embeddings") or config.get("text_config", {}).get("max_position_embeddings")


def token_limit(model_path: str, backend: str, max_model_len: int | None, group: str) -> tuple[int | None, str]:
    """The most prompt + new tokens a `group` stage's generator takes (None: not known, a hub id), and what sets it:
    vLLM's `<group>.max_model_len` when below the model's context, else the model's context."""
    context = model_context(model_path)
    if backend == "vllm" and (context is None or max_model_len < context):
        return max_model_len, f"{group}.max_model_len={max_model_len}"
    return context, f"the model's context of {context}"


class PromptBuilder:
    """Ray Data stage: the `prompt` column from each row's question (and schema, which it consumes, when the prompt
    includes it), in the chat format of the model at `model_path` (a local, shared or object-store folder, or a hub
    id). `longest` counts a batch's longest prompt in the model's tokens."""

    def __init__(self, model_path: str, include_schema: bool):
        from transformers import AutoTokenizer

        from nba_dpo import storage

        self.tokenizer = AutoTokenizer.from_pretrained(storage.local_copy(model_path))
        self.include_schema = include_schema

    def prompts(self, batch: dict) -> list[str]:
        schemas = map(str, batch["schema"]) if self.include_schema else [None] * len(batch["question"])
        return [build_prompt(self.tokenizer, str(q), s, self.include_schema) for q, s in zip(batch["question"], schemas)]

    def longest(self, batch: dict) -> int:
        return max(len(ids) for ids in self.tokenizer(self.prompts(batch), add_special_tokens=False).input_ids)

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        out = {k: v for k, v in batch.items() if k != "schema"}
        out["prompt"] = np.array(self.prompts(batch), dtype=object)
        return out
