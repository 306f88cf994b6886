"""The registry: names, lookups, availability and the public API."""

import numpy as np
import pytest

import factorbench as fb
from factorbench.registry import Paradigm, registry, unknown_kernels


def test_kernels_and_paradigms_are_listed():
    assert set(fb.kernels()) >= {"sma", "ema", "row_sums", "trig", "gram_colsum"}
    assert fb.paradigms()[:2] == ["loop", "vectorized"]
    assert {"layout", "numexpr", "library"} <= set(fb.paradigms())


def test_every_implementation_module_loads():
    assert registry().load_errors == {}


def test_every_kernel_has_a_loop_and_a_vectorized_implementation():
    for kernel in fb.kernels():
        paradigms = {impl.paradigm for impl in fb.implementations(kernel)}
        assert {"loop", "vectorized"} <= paradigms, kernel


def test_implementation_names_are_unique_per_kernel():
    for kernel in fb.kernels():
        names = [impl.name for impl in fb.implementations(kernel)]
        assert len(names) == len(set(names)), kernel


def test_lookup_by_paradigm_or_name():
    first = fb.implementation("sma", "vectorized")
    assert (first.kernel, first.paradigm) == ("sma", "vectorized")
    by_name = fb.implementation("sma", "bottleneck")
    assert by_name.paradigm == "library"
    x = np.linspace(100.0, 101.0, 50)
    np.testing.assert_allclose(by_name(x, 5), np.convolve(x, np.full(5, 0.2), mode="valid"))


@pytest.mark.parametrize("call, message", [
    (lambda: fb.implementations(kernel="nope"), "unknown kernel 'nope'; choose from: ema"),
    (lambda: fb.implementations(paradigm="nope"), "unknown paradigm 'nope'; choose from: loop"),
    (lambda: fb.implementation("sma", "nope"), "no implementation 'nope' for kernel 'sma'; choose from:"),
    (lambda: fb.kernel("nope"), "unknown kernel 'nope'"),
])
def test_unknown_names_list_the_choices(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        call()


def test_missing_requirement_makes_an_implementation_unavailable_with_a_reason():
    paradigm = Paradigm("test-missing", "needs a module that does not exist", rank=999,
                        requires=["factorbench_no_such_module"])

    @paradigm.implements("sma")
    def sma(x, window):
        return x

    impl = paradigm.implementations[0]
    assert not impl.available
    assert impl.reason == "factorbench_no_such_module is not installed"
    with pytest.raises(RuntimeError, match="unavailable: factorbench_no_such_module is not installed"):
        impl(np.ones(3), 1)


def test_probe_reason_and_probe_errors_become_reasons():
    paradigm = Paradigm("test-probe", "probe says no", rank=999)

    @paradigm.implements("ema", name="no-device", probe=lambda: "no CUDA device")
    def ema_a(x, alpha):
        return x

    @paradigm.implements("ema", name="broken-probe", probe=lambda: 1 / 0)
    def ema_b(x, alpha):
        return x

    no_device, broken = paradigm.implementations
    assert no_device.reason == "no CUDA device"
    assert broken.reason.startswith("availability probe failed: ZeroDivisionError")


def test_duplicate_names_and_unknown_kernels_are_rejected():
    paradigm = Paradigm("test-dup", "duplicates", rank=999)
    paradigm.implements("sma")(lambda x, window: x)
    with pytest.raises(ValueError, match="duplicate implementation name sma/test-dup"):
        paradigm.implements("sma")(lambda x, window: x)
    # a kernel may come from a plugin loaded later: the registry rejects unknown ones when it is built
    paradigm.implements("smaa")(lambda x, window: x)
    assert unknown_kernels(paradigm).startswith("implements unknown kernel 'smaa'; choose from: ema")
