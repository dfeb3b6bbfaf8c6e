"""Model sizes for the benchmarks, built with nba_dpo.models.tiny.build_tiny_model on the tiny tokenizer."""

# A ~51M-parameter Llama on the tiny tokenizer, for the benchmarks where the 1M-parameter default leaves nothing
# to measure: ZeRO's partitioning (bench_dpo), vLLM's kernels against transformers' (bench_generate_backends).
LLAMA_51M = dict(vocab_size=2048, hidden_size=640, num_layers=10, num_heads=10, intermediate_size=1728,
                 max_position_embeddings=512)
# The same with 2 KV heads for its 10 query heads (44M parameters), grouped as Llama 3 and Qwen2.5 are: the hf
# backend's grouped-query attention (bench_hf_attention)
LLAMA_44M_GQA = dict(LLAMA_51M, num_kv_heads=2)
# Qwen2.5-0.5B's width, depth and head grouping (14 query heads on 2 KV heads) on the tiny tokenizer: 360M parameters,
# where the matrix products are most of a forward (bench_generate_backends)
LLAMA_360M_GQA = dict(vocab_size=2048, hidden_size=896, num_layers=24, num_heads=14, num_kv_heads=2,
                      intermediate_size=4864, max_position_embeddings=512)
