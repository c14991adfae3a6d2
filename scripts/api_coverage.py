"""How much of PyTorch's public API tapegrad has, per namespace, measured against an installed torch.

    .venv/bin/python scripts/api_coverage.py                 # the table
    .venv/bin/python scripts/api_coverage.py --missing torch # what tapegrad lacks in one namespace
    .venv/bin/python scripts/api_coverage.py --excluded Tensor  # what is left out there, and why
    .venv/bin/python scripts/api_coverage.py --json          # everything, for tools and tests

A namespace's names are the public callables of the PyTorch object (functions, classes, methods:
``dir()`` without ``_`` names, ``callable(getattr(...))``); properties such as ``Tensor.shape``
are not callables and are not counted. A name counts as covered when the matching tapegrad object
has an attribute of that name that is callable too. Names left out on purpose are listed in
``EXCLUDED`` below, one pattern a line with its reason; they count neither way. ``FLOORS`` is a
ratchet: ``tests/test_api_coverage.py`` fails when a namespace falls below its floor, so raise a
floor when a namespace gains names (never lower one to make a change pass).

tapegrad never imports torch; this script does (it is a measurement, not part of the package).
"""
from __future__ import annotations

import argparse
import fnmatch
import importlib
import json
import sys
import warnings

# (label, PyTorch object, tapegrad object), as dotted paths: a module, or a module's attribute
NAMESPACES = [
    ("torch", "torch", "tapegrad"),
    ("Tensor", "torch.Tensor", "tapegrad.Tensor"),
    ("nn", "torch.nn", "tapegrad.nn"),
    ("nn.functional", "torch.nn.functional", "tapegrad.nn.functional"),
    ("nn.attention", "torch.nn.attention", "tapegrad.nn.attention"),
    ("nn.attention.flex_attention", "torch.nn.attention.flex_attention", "tapegrad.nn.attention.flex_attention"),
    ("linalg", "torch.linalg", "tapegrad.linalg"),
    ("fft", "torch.fft", "tapegrad.fft"),
    ("special", "torch.special", "tapegrad.special"),
    ("distributions", "torch.distributions", "tapegrad.distributions"),
    ("optim", "torch.optim", "tapegrad.optim"),
    ("optim.swa_utils", "torch.optim.swa_utils", "tapegrad.optim.swa_utils"),
    ("utils.data", "torch.utils.data", "tapegrad.utils.data"),
    ("autograd", "torch.autograd", "tapegrad.autograd"),
    ("autograd.graph", "torch.autograd.graph", "tapegrad.autograd.graph"),
    ("nn.grad", "torch.nn.grad", "tapegrad.nn.grad"),
    ("overrides", "torch.overrides", "tapegrad.overrides"),
    ("nn.init", "torch.nn.init", "tapegrad.nn.init"),
    ("func", "torch.func", "tapegrad.func"),
]

# What is deliberately left out: (namespaces, fnmatch pattern, reason), one entry a line, so that
# adding one is adding a line. Namespaces: a label above, several separated by spaces, or "*".
# Patterns are case-sensitive. Every entry must match at least one name (the test checks it), so
# a stale line shows up when PyTorch drops the name. Two rules sit outside the table (see
# ``_foreign``): names beginning with "_" (private by Python's convention) and objects PyTorch
# merely re-exports from the standard library or typing (``nn.init.Callable``, ``autograd.cast``).
EXCLUDED = [
    # --- nn.attention: GPU kernel registries and the compiler's plumbing
    ("nn.attention", "*flash_attention_impl*", "registry of GPU FlashAttention implementations"),
    ("nn.attention", "can_use_*", "queries of the CUDA SDPA backends (torch.backends.cuda)"),
    ("nn.attention", "SDPAParams", "argument bundle of the CUDA SDPA backend queries"),
    ("nn.attention.flex_attention", "flex_attention_hop", "torch.compile's higher-order op"),
    ("nn.attention.flex_attention", "setup_compilation_env", "torch.compile internals"),
    ("nn.attention.flex_attention", "tree_*", "torch.utils._pytree, imported for PyTorch's own use"),
    ("nn.attention.flex_attention", "GetAttrKey", "torch.utils._pytree, imported for PyTorch's own use"),
    ("nn.attention.flex_attention", "TreeSpec", "torch.utils._pytree, imported for PyTorch's own use"),
    # --- accelerators and vendor backends: tapegrad computes on the CPU (tapegrad.cuda and
    # tapegrad.accelerator answer "not available", as PyTorch does on a CPU-only machine)
    ("*", "*cuda*", "CUDA: tapegrad has no GPU backend"),
    ("*", "*cudnn*", "cuDNN: NVIDIA's GPU kernels"),
    ("*", "miopen_*", "MIOpen: AMD's GPU kernels"),
    ("*", "mkldnn_*", "oneDNN (MKL-DNN) layout kernels; tapegrad has its own CPU kernels"),
    ("Tensor", "to_mkldnn", "oneDNN (MKL-DNN) tensor layout"),
    ("*", "fbgemm_*", "FBGEMM: Meta's int8/fp16 server GEMM backend (quantized inference)"),
    ("*", "*_ipu*", "Graphcore IPU"),
    ("Tensor", "ipu", "Graphcore IPU"),
    ("*", "*_xla*", "XLA (TPU) backend"),
    ("Tensor", "xpu", "Intel XPU (GPU)"),
    ("Tensor", "mtia", "Meta's MTIA accelerator"),
    ("*", "*vulkan*", "Vulkan GPU backend"),
    ("torch", "*_gpu_*", "GPU autocast settings (the CPU ones are counted)"),
    ("torch", "Stream", "device streams: CUDA/XPU execution queues"),
    ("torch", "Event", "device events: CUDA/XPU stream synchronisation"),
    ("torch", "StreamObjType", "TorchScript type of a device stream"),
    ("Tensor", "record_stream", "CUDA caching-allocator stream bookkeeping"),
    ("autograd.graph", "set_*_stream*", "the streams of GPU backward passes"),
    ("autograd.graph", "region_activation_memory_budget", "torch.compile's partitioner (raises outside compiled code)"),
    ("autograd.graph", "TorchDispatchMode", "torch's dispatcher modes, imported for PyTorch's own use"),
    # --- torch.overrides: tapegrad's ops do not dispatch on __torch_function__ (tapegrad.overrides
    # says so; has_torch_function* answer False), so nothing is overridable or redispatched
    ("overrides", "*TorchFunctionMode", "__torch_function__ modes: tapegrad has no such dispatch"),
    ("overrides", "get_*", "tables of overridable functions: none is, without __torch_function__ dispatch"),
    ("overrides", "wrap_torch_function", "makes a function dispatch on __torch_function__ (none does here)"),
    ("overrides", "redispatch_function", "re-enters __torch_function__ dispatch (none here)"),
    ("overrides", "enable_reentrant_dispatch", "re-enters __torch_function__ dispatch (none here)"),
    ("overrides", "resolve_name", "the torch.* name of an overridable function (none is)"),
    ("overrides", "is_tensor_method_or_property", "tells Tensor methods from functions for overriding (none is)"),
    ("torch", "AcceleratorError", "raised by accelerator runtimes only"),
    ("torch", "OutOfMemoryError", "raised by accelerator allocators only (CPU memory errors are MemoryError)"),
    ("torch", "get_device_module", "the torch.cuda/torch.xpu/... module of a device type"),
    # --- quantization: int8 inference with observers and qparams, a separate stack from autograd
    ("*", "quantize_*", "quantization"),
    ("*", "quantized_*", "quantization"),
    ("*", "q_*", "quantization (qparams of a quantized tensor)"),
    ("*", "qscheme", "quantization"),
    ("*", "dequantize", "quantization"),
    ("*", "int_repr", "quantization (the integers behind a quantized tensor)"),
    ("*", "fake_quantize_*", "quantization-aware training"),
    ("*", "fused_moving_avg_obs_fake_quant", "quantization-aware training"),
    ("*", "choose_qparams_optimized", "quantization"),
    ("*", "empty_quantized", "quantization"),
    ("torch", "Q*Storage", "quantized storages"),
    # --- storages: UntypedStorage and TypedStorage are counted (KEPT below); tapegrad.storage
    # wraps the numpy memory under a tensor, which tapegrad never moves or rebinds
    ("torch", "*Storage", "the legacy per-dtype storage classes (FloatStorage, ...); TypedStorage stands for them"),
    ("torch", "StorageBase", "storage internals"),
    ("Tensor", "storage_type", "the legacy per-dtype storage classes (see *Storage)"),
    ("torch", "from_file", "memory-maps a file as a storage; numpy.memmap + from_numpy does it"),
    # --- TorchScript, torch.compile, export, FX: compilers of PyTorch programs, not the eager API
    # that tapegrad offers (tapegrad.jit.script/trace return the eager callable)
    ("torch", "*Type", "TorchScript's type system"),
    ("torch", "Script*", "TorchScript objects"),
    ("torch", "LiteScriptModule", "TorchScript mobile runtime"),
    ("torch", "CompilationUnit", "TorchScript"),
    ("torch", "ConcreteModuleType*", "TorchScript module compilation"),
    ("torch", "Graph", "TorchScript IR"),
    ("torch", "Node", "TorchScript IR"),
    ("torch", "Value", "TorchScript IR"),
    ("torch", "Block", "TorchScript IR"),
    ("torch", "Use", "TorchScript IR"),
    ("torch", "Code", "TorchScript IR"),
    ("torch", "AliasDb", "TorchScript IR analysis"),
    ("torch", "FileCheck", "TorchScript IR test utility"),
    ("torch", "ErrorReport", "TorchScript compiler diagnostics"),
    ("torch", "CallStack", "TorchScript interpreter"),
    ("torch", "FunctionSchema", "TorchScript/dispatcher operator schemas"),
    ("torch", "Argument", "TorchScript/dispatcher operator schemas"),
    ("torch", "*ArgumentSpec", "TorchScript graph executor"),
    ("torch", "Gradient", "TorchScript symbolic differentiation"),
    ("torch", "GraphExecutorState", "TorchScript graph executor"),
    ("torch", "ExecutionPlan", "TorchScript graph executor"),
    ("torch", "StaticModule", "TorchScript static runtime"),
    ("torch", "TracingState", "TorchScript tracer"),
    ("torch", "JITException", "TorchScript"),
    ("torch", "DeepCopyMemoTable", "TorchScript"),
    ("torch", "IODescriptor", "TorchScript tracer"),
    ("torch", "InferredType", "TorchScript type inference"),
    ("torch", "Capsule", "TorchScript custom-class handle"),
    ("torch", "Future", "TorchScript fork/wait and RPC futures"),
    ("torch", "fork", "TorchScript asynchronous execution"),
    ("torch", "wait", "TorchScript asynchronous execution"),
    ("torch", "ModuleDict", "TorchScript's C++ module dictionary (nn.ModuleDict is counted in nn)"),
    ("torch", "ParameterDict", "TorchScript's C++ parameter dictionary (nn.ParameterDict is counted in nn)"),
    ("torch", "BufferDict", "TorchScript's C++ buffer dictionary"),
    ("torch", "parse_ir", "TorchScript IR"),
    ("torch", "parse_schema", "TorchScript/dispatcher operator schemas"),
    ("torch", "parse_type_comment", "TorchScript frontend"),
    ("torch", "merge_type_from_type_comment", "TorchScript frontend"),
    ("torch", "unify_type_list", "TorchScript type system"),
    ("torch", "import_ir_module*", "TorchScript serialization"),
    ("torch", "compile", "torch.compile (Dynamo/Inductor code generation)"),
    ("torch", "cond", "torch.compile/export control-flow operator"),
    ("torch", "while_loop", "torch.compile/export control-flow operator"),
    ("torch", "Sym*", "symbolic shapes of torch.compile/export"),
    ("torch", "sym_*", "symbolic shapes of torch.compile/export"),
    ("torch", "autocast_*_nesting", "autocast bookkeeping of the TorchScript/compile tracer"),
    ("torch", "*_copy", "functionalization's out-of-place copies of view ops (compiler IR); index_copy is kept below"),
    ("torch", "slice_inverse", "functionalization internal (inverse of a slice view)"),
    ("Tensor", "slice_inverse", "functionalization internal (inverse of a slice view)"),
    # --- dispatcher, __torch_function__ and runtime internals
    ("torch", "DispatchKey*", "dispatcher internals"),
    ("torch", "ExcludeDispatchKeyGuard", "dispatcher internals"),
    ("torch", "DisableTorchFunction*", "__torch_function__ subclass machinery"),
    ("torch", "Tag", "dispatcher operator tags"),
    ("torch", "OperatorInfo", "dispatcher operator registry"),
    ("torch", "classproperty", "a helper decorator of torch's own source"),
    ("torch", "FatalError", "C++ runtime abort, internal"),
    ("torch", "AggregationType", "internal usage-logging API"),
    ("torch", "*Logger*", "internal usage-logging API"),
    ("torch", "Benchmark*", "C++ throughput benchmark of TorchScript modules"),
    ("torch", "ThroughputBenchmark", "C++ throughput benchmark of TorchScript modules"),
    ("torch", "PyTorchFile*", "the C++ zip reader/writer behind torch.save (tapegrad.save has its own format)"),
    ("torch", "*erializationStorageContext", "torch.save's storage bookkeeping (see *Storage)"),
    ("torch", "prepare_multiprocessing_environment", "torch.multiprocessing internal"),
    ("torch", "get_file_path", "internal path helper of torch's C++ extension loader"),
    ("torch", "compiled_with_cxx11_abi", "how the torch binary was compiled"),
    ("torch", "init_num_threads", "OpenMP/MKL per-thread initialisation, internal"),
    ("torch", "profiler_allow_cudagraph_*", "CUDA graphs profiler switch"),
    ("torch", "thread_safe_generator", "internal RNG wrapper of DataLoader workers"),
    ("Tensor", "module_load", "load_state_dict(assign=...) hook for tensor subclasses"),
    # --- ATen's entry points behind nn modules and F functions: called by PyTorch's own Python
    # layers, not by programs (the public nn/F forms are counted in nn and nn.functional)
    ("torch", "native_*", "ATen kernel entry points behind F.batch_norm/layer_norm/dropout/..."),
    ("torch", "batch_norm_*", "SyncBatchNorm's distributed kernel pieces"),
    ("torch", "grid_sampler*", "ATen entry points of F.grid_sample"),
    ("torch", "affine_grid_generator", "ATen entry point of F.affine_grid"),
    ("torch", "rnn_*", "ATen entry points of nn.RNN"),
    ("torch", "lstm", "ATen entry point of nn.LSTM"),
    ("torch", "lstm_cell", "ATen entry point of nn.LSTMCell"),
    ("torch", "gru", "ATen entry point of nn.GRU"),
    ("torch", "gru_cell", "ATen entry point of nn.GRUCell"),
    ("torch", "conv_tbc", "fairseq's time-batch-channel convolution kernel"),
    ("torch", "embedding_renorm_", "ATen piece of F.embedding(max_norm=)"),
    ("torch", "norm_except_dim", "ATen piece of the old weight_norm"),
    ("torch", "segment_reduce", "prototype op (no stable API)"),
    # --- removed from PyTorch: calling these raises "deprecated since 1.9 and is now removed"
    ("torch Tensor", "eig", "removed from PyTorch (raises; torch.linalg.eig)"),
    ("torch Tensor", "symeig", "removed from PyTorch (raises; torch.linalg.eigh)"),
    ("torch Tensor", "lstsq", "removed from PyTorch (raises; torch.linalg.lstsq)"),
    ("torch Tensor", "solve", "removed from PyTorch (raises; torch.linalg.solve)"),
    ("torch", "matrix_rank", "removed from PyTorch (raises; torch.linalg.matrix_rank)"),
    ("Tensor", "reinforce", "removed from PyTorch (stochastic functions; raises)"),
    # --- sparse compressed layouts (CSR/CSC/BSR/BSC): tapegrad's sparse support is COO, as the
    # issue asks; the COO names are counted
    ("*", "sparse_csr_tensor", "sparse compressed layouts"),
    ("*", "sparse_csc_tensor", "sparse compressed layouts"),
    ("*", "sparse_bsr_tensor", "sparse compressed layouts"),
    ("*", "sparse_bsc_tensor", "sparse compressed layouts"),
    ("*", "sparse_compressed_tensor", "sparse compressed layouts"),
    ("Tensor", "to_sparse_c??", "sparse compressed layouts"),
    ("Tensor", "to_sparse_bs?", "sparse compressed layouts"),
    ("Tensor", "crow_indices", "sparse compressed layouts"),
    ("Tensor", "col_indices", "sparse compressed layouts"),
    ("Tensor", "ccol_indices", "sparse compressed layouts"),
    ("Tensor", "row_indices", "sparse compressed layouts"),
    # --- nested (ragged) tensors
    ("Tensor", "to_padded_tensor", "nested tensors"),
    # --- __torch_function__ dispatch plumbing: how torch's own functions hand over to a subclass
    ("nn.functional autograd", "handle_torch_function", "__torch_function__ dispatch internals"),
    ("nn.functional autograd", "has_torch_function*", "__torch_function__ dispatch internals"),
    ("nn.functional", "boolean_dispatch", "an internal helper that builds F's return_indices variants"),
    ("nn.functional", "assert_int_or_pair", "an internal argument check of F.unfold/F.fold"),
    # --- fp8 / CUDA grouped GEMMs (no CPU kernel in PyTorch either)
    ("nn.functional", "*scaled_mm", "fp8 scaled GEMM: CUDA-only in PyTorch"),
    ("nn.functional", "grouped_mm", "grouped GEMM: CUDA-only in PyTorch"),
    ("nn.functional", "ScalingType", "fp8 scaled GEMM's enum: CUDA-only in PyTorch"),
    ("nn.functional", "SwizzleType", "fp8 scaled GEMM's enum: CUDA-only in PyTorch"),
    # --- the profiler (Kineto) and legacy autograd internals
    ("autograd", "Profiler*", "the Kineto profiler's types (tapegrad.profiler records through the tape's own hook)"),
    ("autograd", "DeviceType", "the profiler's device enum"),
    ("autograd", "NestedIOFunction", "legacy (pre-1.0) Function API, undocumented"),
    ("autograd", "enforce_grad_layout_policy", "internal switch for CUDA gradient strides"),
    ("autograd", "variable", "removed: torch.autograd.variable(...) only raises 'deprecated' (the module "
                             "torch.autograd.variable, for `import Variable`, exists here too)"),
    # --- DataPipes: deprecated in PyTorch 2.x (torchdata 0.10 removed them)
    ("utils.data", "*DataPipe", "DataPipes: deprecated upstream, removed from torchdata"),
    ("utils.data", "DataChunk", "DataPipes: deprecated upstream, removed from torchdata"),
    ("utils.data", "functional_datapipe", "DataPipes: deprecated upstream, removed from torchdata"),
    ("utils.data", "guaranteed_datapipes_determinism", "DataPipes: deprecated upstream"),
    ("utils.data", "non_deterministic", "DataPipes: deprecated upstream"),
    ("utils.data", "argument_validation", "DataPipes' type checks: deprecated upstream"),
    ("utils.data", "runtime_validation*", "DataPipes' type checks: deprecated upstream"),
    # --- the tensor type re-exported by a namespace for its annotations (counted once, in torch)
    ("nn.functional special fft linalg", "Tensor", "torch.Tensor re-exported for annotations"),
]

# Names an EXCLUDED pattern would match but that programs do call: counted after all.
KEPT = [
    ("torch", "index_copy", "a real op (index_copy_'s out-of-place form), not a view's copy"),
    ("torch", "UntypedStorage", "the memory under a tensor (tapegrad.storage)"),
    ("torch", "TypedStorage", "the memory under a tensor, read as a dtype (tapegrad.storage)"),
]

# The ratchet: no namespace may fall below its share here (measured on main, see the README).
FLOORS = {
    "torch": 0.984,
    "Tensor": 0.986,
    "nn": 1.0,
    "nn.functional": 0.992,
    "linalg": 1.0,
    "fft": 1.0,
    "special": 1.0,
    "distributions": 1.0,
    "optim": 1.0,
    "optim.swa_utils": 1.0,
    "nn.attention": 1.0,
    "nn.attention.flex_attention": 1.0,
    "utils.data": 1.0,
    "autograd": 0.944,
    "autograd.graph": 1.0,
    "nn.grad": 1.0,
    "overrides": 1.0,
    "nn.init": 1.0,
    "func": 1.0,
}


def _resolve(path):
    """The object at a dotted path (a module, or an attribute of one); None when it is missing."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for p in parts[i:]:
            obj = getattr(obj, p, None)
        return obj
    return None


def _foreign(obj) -> bool:
    """An object PyTorch only re-exports from outside torch (typing, collections.abc, builtins)."""
    mod = getattr(obj, "__module__", None)
    return isinstance(mod, str) and not mod.startswith("torch")


def _applies(namespaces: str, label: str) -> bool:
    return namespaces == "*" or label in namespaces.split()


def exclusion(label: str, name: str):
    """The reason ``name`` of namespace ``label`` is left out, or None when it is counted."""
    if any(_applies(ns, label) and name == kept for ns, kept, _ in KEPT):
        return None
    for ns, pattern, reason in EXCLUDED:
        if _applies(ns, label) and fnmatch.fnmatchcase(name, pattern):
            return reason
    return None


def public_callables(obj) -> list[str]:
    names = []
    for n in dir(obj):
        if n.startswith("_"):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            attr = getattr(obj, n, None)
        if callable(attr) and not _foreign(attr):
            names.append(n)
    return names


def measure() -> dict:
    """Per namespace: counted names, covered and missing ones, exclusions with reasons, floor."""
    result = {}
    for label, torch_path, tg_path in NAMESPACES:
        theirs, ours = _resolve(torch_path), _resolve(tg_path)
        counted, excluded = [], {}
        for n in public_callables(theirs):
            reason = exclusion(label, n)
            if reason is None:
                counted.append(n)
            else:
                excluded[n] = reason
        have = [n for n in counted if ours is not None and callable(getattr(ours, n, None))]
        missing = sorted(set(counted) - set(have))
        result[label] = {
            "torch": torch_path, "tapegrad": tg_path, "counted": len(counted), "covered": len(have),
            "share": len(have) / len(counted) if counted else 1.0, "floor": FLOORS.get(label, 0.0),
            "missing": missing, "covered_names": sorted(have), "excluded": excluded,
        }
    return result


def unused_exclusions(result: dict) -> list:
    """EXCLUDED/KEPT entries that match no name of their namespaces (stale or mistyped)."""
    stale = []
    for entry in EXCLUDED:
        ns, pattern, _ = entry
        if not any(_applies(ns, label) and any(fnmatch.fnmatchcase(n, pattern) for n in r["excluded"])
                   for label, r in result.items()):
            stale.append(entry)
    for entry in KEPT:
        ns, name, _ = entry
        if not any(_applies(ns, label) and name in r["missing"] + r["covered_names"] for label, r in result.items()):
            stale.append(entry)
    return stale


def table(result: dict) -> str:
    total_c = sum(r["counted"] for r in result.values())
    total_h = sum(r["covered"] for r in result.values())
    lines = ["| namespace | covered / counted | share | excluded |", "|---|---:|---:|---:|"]
    for label, r in result.items():
        lines.append(f"| `{r['torch']}` | {r['covered']} / {r['counted']} | {r['share']:.0%} | {len(r['excluded'])} |")
    lines.append(f"| all | {total_h} / {total_c} | {total_h / total_c:.0%} | "
                 f"{sum(len(r['excluded']) for r in result.values())} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--missing", metavar="NAMESPACE", help="print the names tapegrad lacks there")
    parser.add_argument("--excluded", metavar="NAMESPACE", help="print the names left out there, and why")
    parser.add_argument("--json", action="store_true", help="print every figure and name as JSON")
    args = parser.parse_args(argv)
    labels = [label for label, _, _ in NAMESPACES]
    for label in (args.missing, args.excluded):
        if label is not None and label not in labels:
            parser.error(f"unknown namespace {label!r}; one of: {', '.join(labels)}")
    import torch  # noqa: F401  (first, so that a missing torch says so before tapegrad's import)
    import tapegrad  # noqa: F401

    result = measure()
    if args.json:
        json.dump({"torch_version": torch.__version__, "namespaces": result}, sys.stdout, indent=1)
        print()
    elif args.missing:
        print("\n".join(result[args.missing]["missing"]))
    elif args.excluded:
        for n, why in sorted(result[args.excluded]["excluded"].items()):
            print(f"{n}: {why}")
    else:
        print(f"tapegrad against PyTorch {torch.__version__}")
        print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
