"""The vLLM plugin that runs RMSNorm on CPUs through vllm-cpu's C++ kernels: declared as an entry point, and the
kernels give vLLM's native results (test_vllm_backend runs an engine that asks for them)."""
from importlib.metadata import entry_points

import pytest
import torch

pytest.importorskip("vllm")
from vllm import ir  # noqa: E402

from nba_dpo.generation.vllm_cpu_kernels import NAME, PROVIDER, installed, register  # noqa: E402


def test_vllm_finds_the_plugin(monkeypatch):
    plugins = {e.name: e.value for e in entry_points(group="vllm.general_plugins")}
    assert plugins[NAME] == "nba_dpo.generation.vllm_cpu_kernels:register" and installed()
    monkeypatch.setenv("VLLM_PLUGINS", "lora_filesystem_resolver")  # an allowlist without it: vLLM won't load it
    assert not installed()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_cpu_kernels_match_native(dtype):
    register()
    register()  # vLLM may load a plugin more than once per process
    torch.manual_seed(0)
    x, residual = torch.randn(37, 640, dtype=dtype), torch.randn(37, 640, dtype=dtype)
    weight = torch.randn(640, dtype=dtype)
    tol = {"atol": 0.07, "rtol": 0.02} if dtype == torch.bfloat16 else {"atol": 1e-5, "rtol": 1e-5}
    norm = ir.ops.rms_norm
    torch.testing.assert_close(norm.impls[PROVIDER].impl_fn(x, weight, 1e-6), norm.impls["native"].impl_fn(
        x, weight, 1e-6), **tol)

    fused = ir.ops.fused_add_rms_norm
    want_out, want_sum = fused.impls["native"].impl_fn(x, residual, weight, 1e-6)
    got_out, got_sum = fused.impls[PROVIDER].impl_fn(x.clone(), residual.clone(), weight, 1e-6)
    torch.testing.assert_close(got_out, want_out, **tol)
    torch.testing.assert_close(got_sum, want_sum, **tol)


def test_unsupported_arguments_fall_back_to_native():
    register()
    x, weight = torch.randn(8, 64, dtype=torch.bfloat16), torch.ones(64, dtype=torch.bfloat16)
    with ir.ops.rms_norm.set_priority([PROVIDER, "native"]):
        assert ir.ops.rms_norm.dispatch(x, weight, 1e-6).provider == PROVIDER
        assert ir.ops.rms_norm.dispatch(x, weight, 1e-6, 32).provider == "native"  # variance over part of x
        assert ir.ops.rms_norm.dispatch(x.t(), torch.ones(8, dtype=torch.bfloat16), 1e-6).provider == "native"
        assert ir.ops.rms_norm.dispatch(x, None, 1e-6).provider == "native"
