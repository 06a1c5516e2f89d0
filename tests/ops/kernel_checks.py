"""What every kernel test compares with: the reference in float64, and one error measure."""
import torch


def reference_float64(reference, inputs, grad):
    """The reference's output and every input's gradient, computed in float64 from the same values."""
    exact = [x.detach().double().requires_grad_() for x in inputs]
    out = reference(*exact)
    return out, torch.autograd.grad(out, exact, grad.double())


def assert_close(actual, expected, rel_tol, name, scale=None):
    """Largest error relative to the largest reference value (or to ``scale``, for a reference
    that is exactly 0): catches any wrong element."""
    scale = expected.abs().max().item() if scale is None else scale
    assert scale > 1e-6, f"{name}: reference is ~0, the comparison would prove nothing"
    assert torch.isfinite(actual).all(), f"{name}: not finite"
    err = (actual.double() - expected).abs().max().item() / scale
    assert err <= rel_tol, f"{name}: relative error {err:.2e} > {rel_tol:.0e}"
