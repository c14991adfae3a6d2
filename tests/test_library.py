"""``tapegrad.library`` (``torch.library``): PyTorch's "Python custom operators" tutorial ported
(a numpy sin with a fake and an autograd formula, an op that mutates its input, a
``Library.define``/``impl`` op), the same definitions run under PyTorch where it is importable,
schemas, opcheck, and the errors."""
import gc
import itertools
import re
import threading
import typing
import warnings

import numpy as np
import pytest

import tapegrad as tg
from tapegrad import Tensor
from tapegrad._library import aten as aten_table
from tapegrad._library.schema import parse_schema

_names = itertools.count()


def fresh(prefix="tglib"):
    """A namespace no other test uses (registrations are process-wide, as PyTorch's)."""
    return f"{prefix}{next(_names)}"


def define_tutorial_ops(M, ns):
    """The tutorial's ops, written once against ``M`` (tapegrad or torch)."""

    @M.library.custom_op(f"{ns}::numpy_sin", mutates_args=())
    def numpy_sin(x: M.Tensor) -> M.Tensor:
        return M.from_numpy(np.sin(x.numpy()))

    @numpy_sin.register_fake
    def _(x):
        return M.empty_like(x)

    def setup_context(ctx, inputs, output):
        (x,) = inputs
        ctx.save_for_backward(x)

    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x.cos()  # in M's ops: differentiable again

    numpy_sin.register_autograd(backward, setup_context=setup_context)

    @M.library.custom_op(f"{ns}::numpy_sin_out", mutates_args={"out"})
    def numpy_sin_out(x: M.Tensor, out: M.Tensor) -> None:
        np.sin(x.numpy(), out=out.numpy())

    lib = M.library.Library(ns, "FRAGMENT")
    lib.define("mymuladd(Tensor a, Tensor b, float c) -> Tensor")
    lib.impl("mymuladd", lambda a, b, c: M.from_numpy(a.numpy() * b.numpy() + c), "CPU")
    M.library.register_fake(f"{ns}::mymuladd", lambda a, b, c: M.empty_like(a))

    def muladd_setup(ctx, inputs, output):
        a, b, c = inputs
        ctx.save_for_backward(a, b)

    def muladd_backward(ctx, grad):
        a, b = ctx.saved_tensors
        return grad * b, grad * a, None

    M.library.register_autograd(f"{ns}::mymuladd", muladd_backward, setup_context=muladd_setup)
    return numpy_sin, numpy_sin_out, lib


@pytest.fixture(scope="module")
def ops():
    ns = fresh("tutorial")
    numpy_sin, numpy_sin_out, lib = define_tutorial_ops(tg, ns)
    return ns, numpy_sin, numpy_sin_out, lib


def test_custom_op_is_called_through_ops_and_as_itself(ops):
    ns, numpy_sin, _, _ = ops
    x = tg.randn(5, dtype=tg.float64)
    want = np.sin(x.numpy())
    for fn in (numpy_sin, getattr(tg.ops, ns).numpy_sin, getattr(tg.ops, ns).numpy_sin.default):
        np.testing.assert_allclose(fn(x).numpy(), want)
    overload = getattr(tg.ops, ns).numpy_sin.default
    assert overload.name() == f"{ns}::numpy_sin" and str(overload._schema) == f"{ns}::numpy_sin(Tensor x) -> Tensor"


def test_register_autograd_gives_gradients_and_double_backward(ops):
    _, numpy_sin, _, _ = ops
    x = tg.randn(4, dtype=tg.float64, requires_grad=True)
    assert tg.autograd.gradcheck(numpy_sin, (x,))
    assert tg.autograd.gradgradcheck(numpy_sin, (x,))
    y = numpy_sin(x)
    assert "NumpySin" in type(y.grad_fn).__name__  # one op on the tape
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.cos(x.detach().numpy()))


def test_library_define_impl_op_with_autograd(ops):
    ns, _, _, _ = ops
    a, b = (tg.randn(3, dtype=tg.float64, requires_grad=True) for _ in range(2))
    muladd = getattr(tg.ops, ns).mymuladd.default
    np.testing.assert_allclose(muladd(a, b, 2.0).detach().numpy(), a.detach().numpy() * b.detach().numpy() + 2)
    assert tg.autograd.gradcheck(lambda a, b: muladd(a, b, 0.5), (a, b))


def test_mutating_op_writes_in_place_and_bumps_the_version(ops):
    _, _, numpy_sin_out, _ = ops
    x, out = tg.randn(3), tg.empty(3)
    v = out._version
    assert numpy_sin_out(x, out) is None
    np.testing.assert_allclose(out.numpy(), np.sin(x.numpy()), rtol=1e-6)
    assert out._version == v + 1  # the tape's saved-tensor checks see the write


def test_the_tape_sees_a_custom_op_overwrite_a_saved_tensor(ops):
    _, _, numpy_sin_out, _ = ops
    x = tg.randn(3, requires_grad=True)
    y = x.exp()  # exp saves its output
    numpy_sin_out(tg.randn(3), y.detach())
    with pytest.raises(RuntimeError, match="modified by an inplace operation|modified by an in-place operation"):
        y.sum().backward()


def test_opcheck_passes_the_tutorial_ops(ops):
    ns, numpy_sin, numpy_sin_out, _ = ops
    x = tg.randn(4, dtype=tg.float64, requires_grad=True)
    ok = {"test_schema": "SUCCESS", "test_autograd_registration": "SUCCESS", "test_faketensor": "SUCCESS"}
    assert tg.library.opcheck(numpy_sin, (x,)) == ok
    assert tg.library.opcheck(numpy_sin_out, (tg.randn(3), tg.empty(3))) == ok
    assert tg.library.opcheck(getattr(tg.ops, ns).mymuladd.default, (x, x.detach() * 2, 1.5)) == ok


def test_same_definitions_agree_with_pytorch():
    torch = pytest.importorskip("torch")
    results = []
    for M in (tg, torch):
        numpy_sin, numpy_sin_out, lib = define_tutorial_ops(M, fresh("vs_torch"))
        x = M.tensor(np.linspace(-2, 2, 5), requires_grad=True)
        y = numpy_sin(x)
        (g,) = M.autograd.grad(y.sum(), x, create_graph=True)
        (gg,) = M.autograd.grad(g.sum(), x)
        out = M.zeros(5, dtype=M.float64)
        numpy_sin_out(x.detach(), out)
        muladd = getattr(getattr(M.ops, lib.ns), "mymuladd")
        a = M.tensor([1.0, 2.0], dtype=M.float64, requires_grad=True)
        z = muladd(a, a * 3, 0.5)
        (ga,) = M.autograd.grad(z.sum(), a)
        results.append([t.detach().numpy() for t in (y, g, gg, out, z, ga)] + [out._version])
        del lib
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_custom_op_without_autograd_raises_at_backward_naming_it():
    ns = fresh()

    @tg.library.custom_op(f"{ns}::noformula", mutates_args=())
    def noformula(x: Tensor) -> Tensor:
        return x * 2

    x = tg.ones(2, requires_grad=True)
    y = noformula(x)  # the forward runs; backward is what PyTorch refuses
    with pytest.raises(RuntimeError, match=f"backward through {ns}.noformula.default but no autograd formula"):
        y.sum().backward()
    with pytest.raises(tg.library.OpCheckError, match="test_autograd_registration"):
        tg.library.opcheck(noformula, (x,))


def test_library_kernel_without_autograd_keeps_its_ops_gradients_and_warns_at_backward():
    # PyTorch's autograd fallback: the kernel's own ops record; backward warns naming the op
    lib = tg.library.Library(fresh(), "DEF")
    lib.define("scale(Tensor x, float a) -> Tensor")
    lib.impl("scale", lambda x, a: x * a, "CPU")
    x = tg.ones(2, requires_grad=True)
    y = getattr(tg.ops, lib.ns).scale(x, 3.0)
    with pytest.warns(UserWarning, match=f"{lib.ns}::scale: an autograd kernel was not registered"):
        y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3, 3])


def test_composite_implicit_kernel_is_differentiated_through_its_ops():
    ns = fresh()
    tg.library.define(f"{ns}::cube", "(Tensor x) -> Tensor")
    tg.library.impl(f"{ns}::cube", "CompositeImplicitAutograd", lambda x: x * x * x)
    x = tg.tensor([1.0, 2.0], dtype=tg.float64, requires_grad=True)
    (g,) = tg.autograd.grad(getattr(tg.ops, ns).cube(x).sum(), x)
    np.testing.assert_allclose(g.numpy(), [3, 12])


def test_keyword_only_arguments_and_register_kernel():
    ns = fresh()

    @tg.library.custom_op(f"{ns}::shift", mutates_args=(), device_types="cuda")
    def shift(x: Tensor, *, by: float = 1.0) -> Tensor:
        return x + by

    assert str(shift._schema) == f"{ns}::shift(Tensor x, *, float by=1.0) -> Tensor"
    with pytest.raises(NotImplementedError, match=f"Could not run '{ns}::shift' with arguments from the 'CPU'"):
        shift(tg.zeros(2))  # a CUDA kernel only
    tg.library.register_kernel(shift, "cpu", lambda x, *, by=1.0: x + by)
    np.testing.assert_allclose(shift(tg.zeros(2), by=2.5).numpy(), [2.5, 2.5])
    with pytest.raises(RuntimeError, match="expected at most 1 argument"):
        shift(tg.zeros(2), 2.5)  # by is keyword-only


def test_infer_schema_matches_pytorch():
    def f(x: Tensor, y: typing.Optional[Tensor], z: typing.List[Tensor], sizes: typing.List[int], n: int,
          b: float = 1.0, c: bool = True, s: str = "hi", m: typing.Optional[int] = None) -> typing.Tuple[Tensor, Tensor]:
        ...

    want = ('(Tensor(a0!) x, Tensor? y, Tensor[] z, SymInt[] sizes, SymInt n, float b=1.0, bool c=True, str s="hi", '
            'SymInt? m=None) -> (Tensor, Tensor)')
    assert tg.library.infer_schema(f, mutates_args={"x"}) == want
    torch = pytest.importorskip("torch")

    def g(x: torch.Tensor, y: typing.Optional[torch.Tensor], z: typing.List[torch.Tensor], sizes: typing.List[int],
          n: int, b: float = 1.0, c: bool = True, s: str = "hi", m: typing.Optional[int] = None
          ) -> typing.Tuple[torch.Tensor, torch.Tensor]:
        ...
    assert torch.library.infer_schema(g, mutates_args={"x"}) == want


def test_infer_schema_errors():
    with pytest.raises(ValueError, match="Parameter x must have a type annotation"):
        tg.library.infer_schema(lambda x: x, mutates_args=())

    def f(x: Tensor, n: int) -> Tensor:
        ...
    with pytest.raises(ValueError, match="only Tensors or collections of Tensors can be mutated"):
        tg.library.infer_schema(f, mutates_args={"n"})
    with pytest.raises(TypeError):
        tg.library.custom_op("ns::f", f)  # mutates_args is required, as PyTorch's


def test_every_aten_schema_parses_and_prints_back():
    for text in aten_table.SCHEMAS:
        schema = parse_schema("aten::" + text)
        assert parse_schema(str(schema)) == schema
        if "e-05" not in text:  # ATen prints eps=1e-5 with 17 digits, Python's repr with the fewest
            assert str(schema) == "aten::" + text


def test_schema_grammar():
    s = parse_schema("ns::op.over(Tensor(a!) x, Tensor? w, Tensor[] xs, int[2] k=1, SymInt n=-1, Scalar s=0.5, "
                     "str mode=\"sum\", bool f=False, *, int[]? dims=None) -> (Tensor(a!) out, Tensor idx)")
    x, w, xs, k, n, sc, mode, f, dims = s.arguments
    assert (s.name, s.overload_name) == ("ns::op", "over")
    assert x.is_write and x.alias == "a" and w.type == "Tensor?" and xs.type == "Tensor[]"
    assert k.default == 1 and s.bind((tg.ones(1), None, []), {})[0][3] == [1, 1] and n.default == -1 and sc.default == 0.5 and mode.default == "sum"
    assert f.default is False and dims.kwarg_only and dims.default is None
    assert [r.name for r in s.returns] == ["out", "idx"] and s.returns[0].is_write


@pytest.mark.parametrize("schema, message, column", [
    ("foo(Tensor x, flot a) -> Tensor", "unknown type specifier", 14),
    ("foo(Tensor x, float a -> Tensor", "expected ) but found 'arrow' here", 22),
    ("foo(Tensor x, float a) -> Tensr", "unknown type specifier", 26),
    ("foo(Tensor x, float) -> Tensor", "expected an argument name but found ')'", 19),
    ("foo(Tensor x, Tensor x) -> Tensor", "duplicate argument name 'x'", None),
])
def test_bad_schema_names_the_position(schema, message, column):
    lib = tg.library.Library(fresh(), "FRAGMENT")
    with pytest.raises(RuntimeError, match=re.escape(message)) as e:
        lib.define(schema)
    if column is not None:  # the ~~~ <--- HERE marker sits under the offending token
        assert str(e.value).splitlines()[-1].index("~") == column


def test_bad_schema_errors_match_pytorch():
    torch = pytest.importorskip("torch")
    for schema in ("foo(Tensor x, flot a) -> Tensor", "foo(Tensor x, float a -> Tensor"):
        messages = []
        for M in (tg, torch):
            with pytest.raises(RuntimeError) as e:
                M.library.Library(fresh("badschema"), "FRAGMENT").define(schema)
            messages.append(str(e.value))
        assert messages[0] == messages[1]


def test_wrong_arguments_and_duplicates_raise_as_pytorch():
    lib = tg.library.Library(fresh(), "DEF")
    lib.define("foo(Tensor x, float a) -> Tensor")
    lib.impl("foo", lambda x, a: x * a, "CPU")
    foo = getattr(tg.ops, lib.ns).foo
    x = tg.ones(2)
    decl = f"Declaration: {lib.ns}::foo(Tensor x, float a) -> Tensor"
    with pytest.raises(RuntimeError, match=f"is missing value for argument 'a'. {decl}".replace("(", r"\(")
                       .replace(")", r"\)")):
        foo(x)
    with pytest.raises(RuntimeError, match="expected at most 2 argument\\(s\\) but received 3"):
        foo(x, 1.0, 2)
    with pytest.raises(RuntimeError, match="Unknown keyword argument 'b'"):
        foo(x, 1.0, b=1)
    with pytest.raises(RuntimeError, match="Expected a value of type 'Tensor' for argument 'x' but instead found type 'str'"):
        foo("s", 1.0)
    with pytest.raises(RuntimeError, match="same name and overload name multiple times"):
        lib.define("foo(Tensor x, float a) -> Tensor")
    with pytest.raises(RuntimeError, match="already a kernel registered"):
        lib.impl("foo", lambda x, a: x, "CPU")
    with pytest.raises(RuntimeError, match="Only a single TORCH_LIBRARY"):
        tg.library.Library(lib.ns, "DEF")
    tg.library.register_fake(f"{lib.ns}::foo", lambda x, a: tg.empty_like(x))
    with pytest.raises(RuntimeError, match="already has an fake impl registered"):
        tg.library.register_fake(f"{lib.ns}::foo", lambda x, a: tg.empty_like(x))
    with pytest.raises(AttributeError, match="has no attribute 'bar'"):
        getattr(tg.ops, lib.ns).bar


def test_an_op_without_a_kernel_raises_not_implemented():
    ns = fresh()
    tg.library.define(f"{ns}::nokernel", "(Tensor x) -> Tensor")
    with pytest.raises(NotImplementedError, match=f"Could not run '{ns}::nokernel' with arguments from the 'CPU' backend"):
        getattr(tg.ops, ns).nokernel(tg.ones(1))


def test_a_library_takes_its_registrations_with_it():
    lib = tg.library.Library(fresh(), "DEF")
    lib.define("gone(Tensor x) -> Tensor")
    ns = lib.ns
    assert hasattr(getattr(tg.ops, ns), "gone")
    del lib
    gc.collect()
    assert not hasattr(getattr(tg.ops, ns), "gone")
    tg.library.Library(ns, "DEF").define("gone(Tensor x) -> Tensor")  # free to define again


def test_custom_op_output_may_not_alias_an_input():
    ns = fresh()

    @tg.library.custom_op(f"{ns}::identity", mutates_args=())
    def identity(x: Tensor) -> Tensor:
        return x

    with pytest.raises(RuntimeError, match="must not also be an input to this custom operator"):
        identity(tg.ones(2))


def test_redefining_a_custom_op_replaces_it_as_pytorch():
    ns = fresh()
    for k in (1.0, 2.0):
        @tg.library.custom_op(f"{ns}::times", mutates_args=())
        def times(x: Tensor) -> Tensor:
            return x * k
    np.testing.assert_allclose(getattr(tg.ops, ns).times(tg.ones(1)).numpy(), [2.0])


def test_opcheck_finds_an_undeclared_mutation_and_a_wrong_fake():
    ns = fresh()

    @tg.library.custom_op(f"{ns}::sneaky", mutates_args=())
    def sneaky(x: Tensor) -> Tensor:
        x.numpy()[0] = 0  # writes its input without saying so
        return x * 2

    sneaky.register_fake(lambda x: tg.empty(x.shape[0] + 1))
    with pytest.raises(tg.library.OpCheckError, match="test_schema failed .*argument 'x' is mutated"):
        tg.library.opcheck(sneaky, (tg.ones(3),))
    res = tg.library.opcheck(sneaky, (tg.ones(3),), raise_exception=False)
    assert "output 0 of the fake is (4,)" in str(res["test_faketensor"])


def test_get_ctx_is_none_outside_a_fake_and_a_dynamic_size_is_refused():
    assert tg.library.get_ctx() is None
    ns = fresh()

    @tg.library.custom_op(f"{ns}::nonzero_idx", mutates_args=())
    def nonzero_idx(x: Tensor) -> Tensor:
        return tg.from_numpy(np.nonzero(x.numpy())[0])

    @nonzero_idx.register_fake
    def _(x):
        return x.new_empty(tg.library.get_ctx().new_dynamic_size(), dtype=tg.int64)

    res = tg.library.opcheck(nonzero_idx, (tg.tensor([1.0, 0.0, 2.0]),), raise_exception=False)
    assert isinstance(res["test_faketensor"], NotImplementedError) and "symbolic sizes" in str(res["test_faketensor"])


def test_concurrent_definitions_register_each_once():
    ns = fresh()
    lib = tg.library.Library(ns, "FRAGMENT")
    errors, barrier = [], threading.Barrier(8)

    def define(k):
        barrier.wait()
        try:
            lib.define(f"op{k % 4}(Tensor x) -> Tensor")
        except RuntimeError as e:
            errors.append(e)

    threads = [threading.Thread(target=define, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 4 and all("multiple times" in str(e) for e in errors)
    assert sorted(getattr(tg.ops, ns)._packets) == ["op0", "op1", "op2", "op3"]


def test_register_autograd_refuses_a_mutating_op(ops):
    _, _, numpy_sin_out, _ = ops
    with pytest.raises(RuntimeError, match="mutates an input"), warnings.catch_warnings():
        numpy_sin_out.register_autograd(lambda ctx, g: g)


def test_decorator_forms_register_and_return_the_function():
    ns = fresh()
    tg.library.define(f"{ns}::twice", "(Tensor x) -> Tensor")

    @tg.library.impl(f"{ns}::twice", "cpu")
    def twice(x):
        return x * 2

    @tg.library.register_fake(f"{ns}::twice")
    def twice_fake(x):
        return tg.empty_like(x)

    assert callable(twice) and callable(twice_fake)
    np.testing.assert_allclose(getattr(tg.ops, ns).twice(tg.ones(2)).numpy(), [2, 2])
    assert tg.library.opcheck(getattr(tg.ops, ns).twice.default, (tg.ones(3),))["test_faketensor"] == "SUCCESS"
