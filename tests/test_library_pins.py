"""The private parts of transformers and TRL the project builds on (docs/architecture.md, "Library internals"), each
checked here so that an upgrade that moves one fails this file by name. The behaviour each override keeps is tested
beside it: test_sampler (decoder and attention against `generate`), test_models (CPU SFT and DPO losses against
TRL's), test_generate_e2e (stored reference log-probs against TRL's own precompute)."""
import inspect

from transformers import Trainer
from transformers.cache_utils import Cache, StaticLayer


def test_static_kv_layer_exposes_its_fill_and_mask_sizes():
    """generation/hf.py's FilledPrefixLayer reads `cumulative_length` and overrides `get_mask_sizes`."""
    assert "cumulative_length" in inspect.getsource(StaticLayer)
    assert list(inspect.signature(StaticLayer.get_mask_sizes).parameters) == ["self", "query_length"]


def test_cache_reorders_rows():
    """decode_compacting drops finished rows with `Cache.reorder_cache`, as beam search does."""
    assert list(inspect.signature(Cache.reorder_cache).parameters) == ["self", "beam_idx"]


def test_dpo_trainer_precomputes_reference_logps_in_one_method():
    """StoredReferenceDPOTrainer overrides `_precompute_ref_logps` to keep log-probs the pairs already carry."""
    from trl import DPOTrainer

    assert list(inspect.signature(DPOTrainer._precompute_ref_logps).parameters) == ["self", "dataset", "name",
                                                                                    "batch_size"]
    assert "self._precompute_ref_logps(" in inspect.getsource(DPOTrainer.__init__)


def test_trl_chooses_its_fused_lm_head_by_use_triton():
    """score_completion_tokens_only swaps `trl.trainer.utils._use_triton`, which TRL reads for that choice only."""
    import trl.trainer.utils as trl_utils

    uses = [line.strip() for line in inspect.getsource(trl_utils).splitlines() if "_use_triton" in line]
    assert uses == ["from ..kernels.chunked_logprob import _use_triton",
                    "compact = _use_triton(hidden_states.device)"]


def test_sft_trainer_still_overrides_the_loss():
    """CPUSFTTrainer goes back to `Trainer.compute_loss` past SFTTrainer's fused-head loss."""
    from trl import SFTTrainer

    assert SFTTrainer.compute_loss is not Trainer.compute_loss
    assert list(inspect.signature(Trainer.compute_loss).parameters) == ["self", "model", "inputs", "return_outputs",
                                                                       "num_items_in_batch"]
