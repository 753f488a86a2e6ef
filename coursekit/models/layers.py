"""The layers of a network, traced with torch.fx: a table of operations, data tensors and
weights (Fn, Xn, Wn), and the floating-point operations of each (notebook 04).

`operation_counts` documents the counting rules: additions, multiplications, maxima and
other operations (exp, log, division...), per image.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import partial

import pandas as pd
import torch
import torch.fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

NO_WEIGHT = "aucun"  # the sheet's word, shown in the `weights` column of parameter-free ops
COUNT_COLUMNS = ("additions", "multiplications", "maxima", "other", "total")

# Shape-only operations: no floating-point arithmetic (dropout is the identity in eval mode).
_FREE_OPS = frozenset(
    "flatten unflatten view reshape dropout dropout1d dropout2d dropout3d alpha_dropout "
    "feature_alpha_dropout identity permute transpose contiguous squeeze unsqueeze cat "
    "stack getitem expand expand_as chunk split clone to float detach".split()
)
_DOT_FUNCTIONS = frozenset({"conv1d", "conv2d", "conv3d", "linear"})
_MATMUL_FUNCTIONS = frozenset({"matmul", "mm", "bmm"})
_ADD_FUNCTIONS = frozenset({"add", "iadd", "add_", "sub", "isub", "sub_"})
_MUL_FUNCTIONS = frozenset({"mul", "imul", "mul_"})
_DIV_FUNCTIONS = frozenset({"truediv", "itruediv", "div", "div_"})
_FUNCTION_PREFIXES = {
    "torch.nn.functional": "F.",
    "torch._C._nn": "F.",
    "torch": "torch.",
    "_operator": "operator.",
}
_MODULE_KINDS: tuple[tuple[type[nn.Module] | tuple[type[nn.Module], ...], str], ...] = (
    ((nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear), "dot"),
    ((nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d), "max_pool"),
    ((nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d), "avg_pool"),
    ((nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d), "adaptive_avg_pool"),
    ((nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d), "adaptive_max_pool"),
    (nn.modules.batchnorm._BatchNorm, "batch_norm"),
    (nn.ReLU, "relu"),
    ((nn.ReLU6, nn.Hardtanh), "relu6"),
    (nn.LeakyReLU, "leaky_relu"),
    (nn.GELU, "gelu"),
    (nn.SiLU, "silu"),
    (nn.Sigmoid, "sigmoid"),
    (nn.Tanh, "tanh"),
    (nn.Hardsigmoid, "hardsigmoid"),
    (nn.Hardswish, "hardswish"),
    (nn.Softmax, "softmax"),
    (nn.LogSoftmax, "log_softmax"),
    (
        (nn.Flatten, nn.Unflatten, nn.Identity, nn.modules.dropout._DropoutNd),
        "free",
    ),
)

Shape = tuple[int, ...]


@dataclass
class _Op:
    """One operation of the forward pass, as seen by the fx trace or by a forward hook.

    Shapes keep the batch dimension (the trace runs on a batch of one image); `args` and
    `kwargs` are the call's arguments with every traced tensor replaced by its shape.
    """

    name: str
    type: str
    kind: str
    module: nn.Module | None
    inputs: list[str]
    input_shapes: list[Shape]
    output_shape: Shape | tuple
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    weights: list[tuple[str, torch.Tensor]] = field(default_factory=list)


def layer_table(model: nn.Module, input_shape: tuple[int, ...]) -> pd.DataFrame:
    """Return one row per operation of model's forward pass on one image of `input_shape`.

    input_shape: one image without the batch dimension, e.g. (3, 32, 32).
    Rows are numbered F1..Fk in execution order. Operation Fi reads data tensors (`input`,
    X0 being the image; two names for a residual addition) and produces Xi (`output`).
    Columns: layer, name (qualified module name or function such as 'F.relu'), type
    ('Conv2d', 'relu', 'flatten'...), params (hyper-parameters as text, '' if none), input,
    input_shape (a tuple per image, a list of tuples when the op reads several tensors),
    output, output_shape, weights (W1, W2... in order of first use, 'aucun' without
    parameter), weight_shapes (e.g. '(6, 3, 5, 5) + (6,)'), n_params (trainable scalars),
    n_frozen (scalars of parameters that do not train, e.g. a whitening conv computed from
    the data: part of the network, counted apart).

    A module called twice (the tutorial's `self.pool`, a shared conv) gets one row per call
    with the same W name, but its parameters count in n_params at the first call only, so
    the column sums to count_parameters(model) whenever every parameter is used (and
    n_params + n_frozen to count_parameters(model, trainable_only=False)).

    The model is traced with torch.fx (symbolic_trace + ShapeProp), which also sees the
    functional calls of `forward` (F.relu, torch.flatten, x + y). A model that fx cannot
    trace (data-dependent control flow...) falls back, with a warning, to forward hooks on
    its leaf modules: functional calls are then missing, and a data tensor produced by one
    of them shows as '?'. The model runs in eval mode for the trace; each submodule's
    train/eval mode is restored afterwards.
    """
    rows = []
    weight_names: dict[tuple[int, ...], str] = {}
    counted: set[int] = set()
    for index, op in enumerate(_trace_ops(model, input_shape), start=1):
        weights, shapes, n_params, n_frozen = _weight_columns(op, weight_names, counted)
        rows.append(
            {
                "layer": f"F{index}",
                "name": op.name,
                "type": op.type,
                "params": _params_text(op),
                "input": ", ".join(op.inputs),
                "input_shape": _per_image_inputs(op.input_shapes),
                "output": f"X{index}",
                "output_shape": _per_image(op.output_shape),
                "weights": weights,
                "weight_shapes": shapes,
                "n_params": n_params,
                "n_frozen": n_frozen,
            }
        )
    return pd.DataFrame(rows)


def layer_totals(table: pd.DataFrame) -> dict[str, int]:
    """Return {'operations', 'weight_tensors', 'data_tensors', 'n_params'} of a layer_table.

    weight_tensors counts distinct W names (a shared module once); data_tensors counts X0
    (the input) to Xk; n_params sums the column (each parameter counted once).
    """
    weights = table.loc[table["weights"] != NO_WEIGHT, "weights"]
    return {
        "operations": len(table),
        "weight_tensors": int(weights.nunique()),
        "data_tensors": len(table) + 1,
        "n_params": int(table["n_params"].sum()),
    }


def operation_counts(model: nn.Module, input_shape: tuple[int, ...]) -> pd.DataFrame:
    """Return the floating-point operations per image of each operation, plus a 'total' row.

    input_shape: one image without the batch dimension, e.g. (3, 32, 32).
    Index: layer (F1..Fk as in layer_table, then 'total'); columns name, type, additions,
    multiplications, maxima, other, total (the sum of the four). Subtractions count as
    additions, comparisons (max or min) as maxima; 'other' holds divisions and special
    functions (exp, log, erf, sqrt). With n_out the number of output values of the op:

    - Conv (groups g, kernel k1×k2..., C_in→C_out) and Linear (n→m): each output is a dot
      product of length K = (C_in/g)·k1·k2... (Linear: K = n): multiplications n_out·K,
      additions n_out·(K−1), plus n_out if there is a bias. Zero padding is counted like
      real values. Same for F.conv2d, F.linear; matmul uses K = last dim of the left operand.
    - MaxPool (window of w = k1·k2... values): maxima n_out·(w−1), padding included.
      AvgPool: additions n_out·(w−1) and one multiplication by the constant 1/w per output.
      Adaptive pooling: the same with the exact (possibly overlapping) windows.
    - BatchNorm in eval mode, folded as PyTorch's CPU kernel does, y = x·s + t with
      s = γ/√(var+ε) and t = β − mean·s: 1 multiplication + 1 addition per value; computing
      s and t (per channel, once per call, not per image) is not counted.
    - ReLU: 1 maximum per value (max(0, x)); ReLU6/Hardtanh: 2 (a max and a min);
      LeakyReLU: 1 maximum + 1 multiplication. GELU (erf form, also used for the tanh
      form): 3 multiplications + 1 addition + 1 other (erf). Sigmoid 1/(1+exp(−x)):
      1 addition + 2 other (exp, division); SiLU x·sigmoid(x): that + 1 multiplication;
      Tanh: 1 other. Hardsigmoid relu6(x+3)/6: 1 addition + 2 maxima + 1 multiplication
      (by 1/6); Hardswish x·hardsigmoid(x): that + 1 multiplication.
    - Element-wise x + y, x − y (residual): n_out additions; x·y: n_out multiplications;
      x/y: n_out other. mean: (n_in − n_out) additions + n_out multiplications (by 1/n);
      sum: n_in − n_out additions.
    - Softmax over C classes, per row: C−1 maxima (the max subtracted for stability),
      C additions (subtract it) + C−1 (sum the exponentials), C exp + C divisions (other).
      LogSoftmax: C−1 maxima, 3C−1 additions (subtract the max, sum, subtract log of the
      sum), C exp + 1 log (other).
    - flatten, view, reshape, dropout (eval), identity, cat, getitem...: 0.

    Operations outside these rules count 0 with a warning naming them.
    """
    rows, unknown = {}, set()
    for index, op in enumerate(_trace_ops(model, input_shape), start=1):
        counts = _count(op)
        if counts is None:
            unknown.add(op.type)
            counts = (0, 0, 0, 0)
        rows[f"F{index}"] = {"name": op.name, "type": op.type, **_count_row(counts)}
    if unknown:
        warnings.warn(
            f"operations not counted (0 assumed): {', '.join(sorted(unknown))}", stacklevel=2
        )
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.loc["total"] = {"name": "", "type": "", **frame[list(COUNT_COLUMNS)].sum().to_dict()}
    frame[list(COUNT_COLUMNS)] = frame[list(COUNT_COLUMNS)].astype("int64")
    frame.index.name = "layer"
    return frame


def count_summary(
    counts: pd.DataFrame, batch_size: int, n_images: int, seconds: float | None = None
) -> dict[str, float]:
    """Return forward-pass operation totals per image, per batch and per pass over n_images.

    counts: a frame from operation_counts. Keys: per_image, per_batch (batch_size images),
    per_pass (n_images images, forward only), train_pass_estimate (3 × per_pass: forward
    plus about twice as much for the backward pass, an estimate, not a count) and, when
    the pass took `seconds`, seconds and ops_per_second (per_pass / seconds).
    """
    per_image = int(counts.loc["total", "total"])
    summary: dict[str, float] = {
        "per_image": per_image,
        "per_batch": per_image * batch_size,
        "per_pass": per_image * n_images,
        "train_pass_estimate": 3 * per_image * n_images,
    }
    if seconds is not None:
        summary["seconds"] = seconds
        summary["ops_per_second"] = per_image * n_images / seconds
    return summary


def pass_operations(
    counts: pd.DataFrame, n_images: int, factor: float = 1.0
) -> dict[str, int]:
    """Return the operations of one pass over n_images by type: additions, multiplications,
    maxima, other and total (forward counts x n_images x factor, rounded).

    factor 3 estimates a training pass (forward plus about twice as much backward), an
    estimate, not a count; factor 1 is the exact forward pass of an evaluation.
    """
    kinds = ("additions", "multiplications", "maxima", "other", "total")
    return {k: round(int(counts.loc["total", k]) * n_images * factor) for k in kinds}


# --- tracing ----------------------------------------------------------------------------------


def _trace_ops(model: nn.Module, input_shape: tuple[int, ...]) -> list[_Op]:
    """Return the operations of model(x) for x of shape (1, *input_shape), in order."""
    x = _example_input(model, input_shape)
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            try:
                return _fx_ops(model, x)
            except Exception as fx_error:  # fx fails in many ways (TraceError, TypeError...)
                fx_message = f"{type(fx_error).__name__}: {fx_error}"
            try:
                ops = _hook_ops(model, x)
            except Exception as hook_error:
                raise ValueError(
                    f"cannot analyse {type(model).__name__}: torch.fx tracing failed "
                    f"({fx_message}) and so did running it on a batch of shape "
                    f"{tuple(x.shape)} ({type(hook_error).__name__}: {hook_error})"
                ) from hook_error
            warnings.warn(
                f"torch.fx could not trace {type(model).__name__} ({fx_message}); "
                "falling back to hooks on leaf modules: functional calls are not listed",
                stacklevel=3,
            )
            return ops
    finally:
        for module, training in modes.items():
            module.training = training


def _example_input(model: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    """Return a random batch (1, *input_shape) on the model's device, in its float dtype."""
    floats = [p for p in model.parameters() if p.is_floating_point()]
    device = floats[0].device if floats else torch.device("cpu")
    dtype = floats[0].dtype if floats else torch.float32
    return torch.randn(1, *input_shape, device=device, dtype=dtype)


def _fx_ops(model: nn.Module, x: torch.Tensor) -> list[_Op]:
    """Return the operations of model(x) from a torch.fx trace with shape propagation."""
    graph_module = torch.fx.symbolic_trace(model)
    ShapeProp(graph_module).propagate(x)
    data_names: dict[torch.fx.Node, str] = {}
    ops = []
    for node in graph_module.graph.nodes:
        if node.op == "placeholder":
            data_names[node] = "?" if data_names else "X0"
        elif node.op in ("call_module", "call_function", "call_method") and _has_tensor(
            node.meta.get("tensor_meta")
        ):
            ops.append(_fx_op(graph_module, model, node, data_names))
            data_names[node] = f"X{len(ops)}"
    return ops


def _fx_op(
    graph_module: torch.fx.GraphModule,
    model: nn.Module,
    node: torch.fx.Node,
    data_names: dict[torch.fx.Node, str],
) -> _Op:
    """Return the _Op of one traced node; get_attr inputs that are parameters are weights."""
    data = [n for n in node.all_input_nodes if n in data_names]
    attributes = [n for n in node.all_input_nodes if n.op == "get_attr"]
    weights = [
        (str(n.target), value)
        for n in attributes
        if isinstance(value := _attribute(graph_module, str(n.target)), nn.Parameter)
    ]
    args = torch.fx.node.map_arg(node.args, _node_shape)
    kwargs = torch.fx.node.map_arg(node.kwargs, _node_shape)
    common = {
        "inputs": [data_names[n] for n in data],
        "input_shapes": [_node_shape(n) for n in data],
        "output_shape": _node_shape(node),
        "args": args,
        "kwargs": kwargs,
    }
    if node.op == "call_module":
        module = model.get_submodule(str(node.target))
        kind = _module_kind(module)
        return _Op(str(node.target), type(module).__name__, kind, module, **common)
    if node.op == "call_method":
        name = str(node.target)
        return _Op(f"Tensor.{name}", name, _function_kind(name), None, weights=weights, **common)
    name = getattr(node.target, "__name__", str(node.target))
    prefix = _FUNCTION_PREFIXES.get(getattr(node.target, "__module__", None) or "", "")
    return _Op(prefix + name, name, _function_kind(name), None, weights=weights, **common)


def _attribute(root: nn.Module, target: str) -> object:
    """Return the attribute at dotted path `target` of root (a get_attr node's value)."""
    value: object = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _has_tensor(meta: object) -> bool:
    """Return whether ShapeProp's metadata describes a tensor, or a tuple holding one."""
    if isinstance(meta, TensorMetadata):
        return True
    return isinstance(meta, (tuple, list)) and any(_has_tensor(m) for m in meta)


def _node_shape(node: torch.fx.Node) -> Shape | tuple | None:
    """Return the full shape (batch dim included) of a node's tensor output, else None."""
    return _meta_shape(node.meta.get("tensor_meta"))


def _meta_shape(meta: object) -> Shape | tuple | None:
    """Return the shape in a TensorMetadata, nested like the metadata for tuple outputs."""
    if isinstance(meta, TensorMetadata):
        return tuple(meta.shape)
    if isinstance(meta, (tuple, list)):
        return tuple(_meta_shape(m) for m in meta)
    return None


def _hook_ops(model: nn.Module, x: torch.Tensor) -> list[_Op]:
    """Return the calls of model's leaf modules during model(x), caught with forward hooks."""
    names: dict[int, str] = {id(x): "X0"}
    keep: list[object] = [x]  # holding every tensor keeps its id from being reused
    ops: list[_Op] = []

    def hook(module: nn.Module, inputs: tuple, output: object, name: str = "") -> None:
        tensors = [t for t in inputs if isinstance(t, torch.Tensor)]
        ops.append(
            _Op(
                name or type(module).__name__,
                type(module).__name__,
                _module_kind(module),
                module,
                inputs=[names.get(id(t), "?") for t in tensors],
                input_shapes=[tuple(t.shape) for t in tensors],
                output_shape=_value_shape(output),
                args=tuple(tuple(t.shape) for t in tensors),
            )
        )
        names[id(output)] = f"X{len(ops)}"
        keep.extend([*tensors, output])

    leaves = [(n, m) for n, m in model.named_modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(partial(hook, name=n)) for n, m in leaves]
    try:
        model(x)
    finally:
        for handle in handles:
            handle.remove()
    if not ops:
        raise ValueError("no leaf module was called")
    return ops


def _value_shape(value: object) -> Shape | tuple | None:
    """Return the shape of a tensor, nested for tuples of tensors, else None."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (tuple, list)):
        return tuple(_value_shape(v) for v in value)
    return None


# --- layer table columns ----------------------------------------------------------------------


def _weight_columns(
    op: _Op, weight_names: dict[tuple[int, ...], str], counted: set[int]
) -> tuple[str, str, int, int]:
    """Return (W name, weight shapes text, trainable and frozen scalars not counted before)."""
    params = list(op.module.parameters()) if op.module is not None else [w for _, w in op.weights]
    if not params:
        return NO_WEIGHT, "", 0, 0
    key = tuple(id(p) for p in params)
    name = weight_names.setdefault(key, f"W{len(weight_names) + 1}")
    fresh = [p for p in params if id(p) not in counted]
    counted.update(id(p) for p in params)
    shapes = " + ".join(str(tuple(p.shape)) for p in params)
    trainable = sum(p.numel() for p in fresh if p.requires_grad)
    return name, shapes, trainable, sum(p.numel() for p in fresh) - trainable


def _per_image(shape: Shape | tuple | None) -> Shape | tuple | None:
    """Return a full shape without its batch dimension (recursively for tuple outputs)."""
    if shape is None or not shape:
        return shape
    if isinstance(shape[0], int):
        return tuple(shape[1:])
    return tuple(_per_image(s) for s in shape)


def _per_image_inputs(shapes: list[Shape]) -> Shape | list[Shape] | None:
    """Return the one input's per-image shape, a list of them for several, None for none."""
    per_image = [_per_image(s) for s in shapes]
    if not per_image:
        return None
    return per_image[0] if len(per_image) == 1 else per_image


def _params_text(op: _Op) -> str:
    """Return the hyper-parameters of an operation as text ('' when it has none worth it)."""
    module, dims = op.module, _spatial_dims(op)
    if isinstance(module, nn.modules.conv._ConvNd):
        return _conv_text(module)
    if isinstance(module, nn.Linear):
        return f"{module.in_features}→{module.out_features}"
    if op.kind in ("max_pool", "avg_pool"):
        kernel = module.kernel_size if module is not None else _arg(op, 1, "kernel_size")
        stride = module.stride if module is not None else _arg(op, 2, "stride")
        padding = module.padding if module is not None else _arg(op, 3, "padding", 0)
        text = f"{_size_text(kernel, dims)}, stride {_size_text(stride or kernel, dims, '')}"
        return text + (f", pad {_size_text(padding, dims, '')}" if _nonzero(padding) else "")
    if op.kind.startswith("adaptive"):
        size = module.output_size if module is not None else _arg(op, 1, "output_size")
        return f"output {_size_text(size, dims)}"
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return f"{module.num_features} channels"
    if isinstance(module, nn.modules.dropout._DropoutNd):
        return f"p={module.p}"
    if op.kind in ("softmax", "log_softmax"):
        return f"dim {_softmax_dim(op)}"
    return ""


def _conv_text(conv: nn.modules.conv._ConvNd) -> str:
    """Return e.g. '3→6, 5×5, stride 1, pad 0' (plus groups, dilation when not 1)."""
    dims = len(conv.kernel_size)
    padding = conv.padding if isinstance(conv.padding, str) else _size_text(conv.padding, dims, "")
    parts = [
        f"{conv.in_channels}→{conv.out_channels}",
        _size_text(conv.kernel_size, dims),
        f"stride {_size_text(conv.stride, dims, '')}",
        f"pad {padding}",
    ]
    if _nonzero(tuple(d - 1 for d in conv.dilation)):
        parts.append(f"dilation {_size_text(conv.dilation, dims, '')}")
    if conv.groups != 1:
        parts.append(f"groups {conv.groups}")
    return ", ".join(parts)


def _size_text(size: object, dims: int, equal: str | None = None) -> str:
    """Return '5×5' for 5 or (5, 5) in 2-d; with equal='' a uniform size is written once."""
    values = tuple(size) if isinstance(size, (tuple, list)) else (size,) * max(dims, 1)
    if equal is not None and len(set(values)) == 1:
        return str(values[0])
    return "×".join(str(v) for v in values)


def _nonzero(size: object) -> bool:
    """Return whether an int or tuple hyper-parameter has a non-zero entry."""
    return any(size) if isinstance(size, (tuple, list)) else bool(size)


def _spatial_dims(op: _Op) -> int:
    """Return the number of spatial dims of the op's first input (N, C, *spatial)."""
    return max(len(op.input_shapes[0]) - 2, 1) if op.input_shapes else 1


# --- operation counts -------------------------------------------------------------------------


def _module_kind(module: nn.Module) -> str:
    """Return the counting rule of a module ('dot', 'relu'...), 'unknown' if none applies."""
    for types, kind in _MODULE_KINDS:
        if isinstance(module, types):
            return kind
    return "unknown"


def _function_kind(name: str) -> str:
    """Return the counting rule of a function or method called `name`."""
    base = name.rstrip("_")
    if name in _FREE_OPS or base in _FREE_OPS or name == "size":
        return "free"
    if name in _DOT_FUNCTIONS:
        return "dot"
    if name in _MATMUL_FUNCTIONS:
        return "matmul"
    for names, kind in (
        (_ADD_FUNCTIONS, "add"),
        (_MUL_FUNCTIONS, "mul"),
        (_DIV_FUNCTIONS, "div"),
    ):
        if name in names:
            return kind
    for prefix in ("max_pool", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool"):
        if base.startswith(prefix):
            return prefix
    aliases = {"relu6": "relu6", "hardtanh": "relu6", "batch_norm": "batch_norm"}
    if base in aliases:
        return aliases[base]
    known = {"relu", "leaky_relu", "gelu", "silu", "sigmoid", "tanh", "hardsigmoid", "hardswish"}
    known |= {"softmax", "log_softmax"}
    if base in known | {"mean", "sum"}:
        return base
    return "unknown"


def _count(op: _Op) -> tuple[int, int, int, int] | None:
    """Return (additions, multiplications, maxima, other) per image, None if not counted."""
    n_out = _numel(op.output_shape)
    n_in = _numel(op.input_shapes[0]) if op.input_shapes else 0
    per_value = {  # (additions, multiplications, maxima, other) for each output value
        "free": (0, 0, 0, 0),
        "batch_norm": (1, 1, 0, 0),
        "relu": (0, 0, 1, 0),
        "relu6": (0, 0, 2, 0),
        "leaky_relu": (0, 1, 1, 0),
        "gelu": (1, 3, 0, 1),
        "sigmoid": (1, 0, 0, 2),
        "silu": (1, 1, 0, 2),
        "tanh": (0, 0, 0, 1),
        "hardsigmoid": (1, 1, 2, 0),
        "hardswish": (1, 2, 2, 0),
        "add": (1, 0, 0, 0),
        "mul": (0, 1, 0, 0),
        "div": (0, 0, 0, 1),
    }
    if op.kind in per_value:
        return tuple(n_out * c for c in per_value[op.kind])
    if op.kind in ("dot", "matmul"):
        length, bias = _dot_length(op)
        return n_out * (length - 1) + n_out * bias, n_out * length, 0, 0
    if op.kind in ("max_pool", "avg_pool", "adaptive_max_pool", "adaptive_avg_pool"):
        reductions = _window_values(op) - n_out  # a window of w values takes w − 1 steps
        if op.kind.endswith("max_pool"):
            return 0, 0, reductions, 0
        return reductions, n_out, 0, 0
    if op.kind in ("softmax", "log_softmax"):
        classes = op.input_shapes[0][_softmax_dim(op)]
        rows = n_out // classes
        if op.kind == "softmax":
            return rows * (2 * classes - 1), 0, rows * (classes - 1), rows * 2 * classes
        return rows * (3 * classes - 1), 0, rows * (classes - 1), rows * (classes + 1)
    if op.kind == "mean":
        return n_in - n_out, n_out, 0, 0
    if op.kind == "sum":
        return n_in - n_out, 0, 0, 0
    return None


def _count_row(counts: tuple[int, int, int, int]) -> dict[str, int]:
    """Return the count columns of one operation, total included."""
    row = dict(zip(COUNT_COLUMNS[:4], counts, strict=True))
    return {**row, "total": sum(counts)}


def _numel(shape: Shape | tuple | None) -> int:
    """Return the number of values of a shape (summed over a tuple output's tensors)."""
    if shape is None:
        return 0
    if all(isinstance(s, int) for s in shape):
        return math.prod(shape)
    return sum(_numel(s) for s in shape)


def _arg(op: _Op, index: int, name: str, default: object = None) -> object:
    """Return the call argument given at position `index` or as keyword `name`."""
    if len(op.args) > index:
        return op.args[index]
    return op.kwargs.get(name, default)


def _dot_length(op: _Op) -> tuple[int, bool]:
    """Return (K, has bias): each output value is a dot product of K terms (plus a bias)."""
    module = op.module
    if isinstance(module, nn.Linear):
        return module.in_features, module.bias is not None
    if isinstance(module, nn.modules.conv._ConvNd):
        return math.prod(module.weight.shape[1:]), module.bias is not None
    if op.kind == "matmul":
        return op.input_shapes[0][-1], False
    # F.conv*d(x, weight, bias) and F.linear(x, weight, bias): K from the weight's shape
    weight_shape = _arg(op, 1, "weight")
    length = math.prod(weight_shape[1:])
    return length, _arg(op, 2, "bias") is not None


def _window_values(op: _Op) -> int:
    """Return the number of input values read by all the pooling windows together."""
    n_out = _numel(op.output_shape)
    if op.kind.startswith("adaptive"):
        in_shape, out_shape = op.input_shapes[0], op.output_shape
        dims = len(out_shape) - 2
        per_position = math.prod(
            _adaptive_window_sum(i, o)
            for i, o in zip(in_shape[-dims:], out_shape[-dims:], strict=True)
        )
        return n_out // math.prod(out_shape[-dims:]) * per_position
    kernel = op.module.kernel_size if op.module is not None else _arg(op, 1, "kernel_size")
    values = tuple(kernel) if isinstance(kernel, (tuple, list)) else (kernel,) * _spatial_dims(op)
    return n_out * math.prod(values)


def _adaptive_window_sum(size_in: int, size_out: int) -> int:
    """Return the summed lengths of adaptive pooling's windows along one dimension."""
    return sum(
        -((-(i + 1) * size_in) // size_out) - (i * size_in) // size_out for i in range(size_out)
    )


def _softmax_dim(op: _Op) -> int:
    """Return the non-negative dimension a softmax runs over (PyTorch's legacy default)."""
    dim = op.module.dim if op.module is not None else _arg(op, 1, "dim")
    ndim = len(op.input_shapes[0])
    if dim is None:
        dim = 0 if ndim in (0, 1, 3) else 1
    return dim % ndim
