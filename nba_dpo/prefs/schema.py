"""The candidate and preference Parquet contracts of DESIGN.md (plus a few metadata columns)."""
import pyarrow as pa

CANDIDATE_SCHEMA = pa.schema([
    ("prompt_id", pa.string()), ("candidate_idx", pa.int32()), ("prompt", pa.string()), ("completion", pa.string()),
    ("sql", pa.string()), ("exec_ok", pa.bool_()), ("correct", pa.bool_()), ("reward", pa.float64()),
    ("n_tokens", pa.int32()), ("score", pa.float64()), ("error", pa.string()),
    ("question", pa.string()), ("difficulty", pa.string()), ("template_id", pa.string()),
    ("gold_sql", pa.string()), ("gold_reasoning", pa.string()),  # what pairing needs of the prompt
])

PAIR_SCHEMA = pa.schema([
    ("prompt", pa.string()), ("chosen", pa.string()), ("rejected", pa.string()), ("prompt_id", pa.string()),
    ("chosen_score", pa.float64()), ("rejected_score", pa.float64()), ("margin", pa.float64()),
    ("strategy", pa.string()), ("ref_chosen_logps", pa.float64()), ("ref_rejected_logps", pa.float64()),
    ("question", pa.string()), ("difficulty", pa.string()), ("template_id", pa.string()),
])
