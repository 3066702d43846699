"""winograd_conv2d as a graph of standard ONNX ops, for the engines effseg.compile drives.

OpenVINO and ONNX Runtime run a 3x3 convolution directly (oneDNN's brgemm kernels at
~90 % of the float32 GEMM peak on the zoo models, bench/bench_roofline.py), so no kernel
doing the same 9 multiplies per output and channel pair can gain much there. Winograd
F(m x m, 3x3) (Lavin & Gray, CVPR 2016; effseg.ops.winograd_conv2d) does 2.25 (m = 4)
or 4 (m = 2). Written as ordinary nodes, the engine runs every part with its own kernels
and keeps its thread pool and memory layout across them (a cut into effseg's C++ op lost
both):

  input transform   V[ij] = B^T d B: t = m + 2 depthwise row convolutions (t x 1,
                    stride m), each followed by t column ones (1 x t, stride m),
                    concatenated ij-major: N x t*t*C x Th x Tw. The conv pads do the
                    layer's padding and round the size up to whole tiles.
  products          one 1x1 convolution with t*t groups (U = G g G^T, t*t*K x C):
                    group ij is the GEMM U[ij] @ V[ij]. The bias goes into group (1, 1),
                    whose column of A^T is all ones, so every output gets it once.
  output transform  A^T M A as additions of the t*t channel slices (rows, then
                    columns), concatenated pq-major, then DepthToSpace (DCR) to the
                    m x m tiles, a crop where the size is not a multiple of m, the ReLU.

The tile size: F(4x4) where the layer has at least MIN_TILES_F4 4x4 tiles; below that
F(2x2). F(4x4)'s transformed weight is 4x the direct one (36 / 9) and its products on a
small map are too few to hide reading it (bench/bench_winograd_conv2d_onnx.py, OpenVINO,
512 channels at 16^2: F(2x2) 1.25x its own conv, F(4x4) 1.14x; a spot check on UNetFormer
512^2 with those layers on F(2x2): whole model 0.93 -> 0.90 of plain). Bundles keep the plain Conv
(effseg.ops.winograd_conv2d's lowering): TensorRT chooses its own algorithms.
"""
from __future__ import annotations

# F(4x4, 3x3), interpolation points 0, +-1, +-2 and infinity, as effseg.ops.winograd_conv2d's G.
BT4 = ((4, 0, -5, 0, 1, 0),
       (0, -4, -4, 1, 1, 0),
       (0, 4, -4, -1, 1, 0),
       (0, -2, -1, 2, 1, 0),
       (0, 2, -1, -2, 1, 0),
       (0, 4, 0, -5, 0, 1))
AT4 = ((1, 1, 1, 1, 1, 0),
       (0, 1, -1, 2, -2, 0),
       (0, 1, 1, 4, 4, 0),
       (0, 1, -1, 8, -8, 1))
# F(2x2, 3x3), points 0, +-1 and infinity.
BT2 = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
G2 = ((1, 0, 0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0, 0, 1))
AT2 = ((1, 1, 1, 0), (0, 1, -1, -1))
MIN_TILES_F4 = 64


def tile_size(out_h: int, out_w: int) -> int:
    """m of F(m x m, 3x3) for an out_h x out_w output (see the module's note)."""
    return 4 if (out_h // 4) * (out_w // 4) >= MIN_TILES_F4 else 2


def _combine(op, terms, scale):
    """A^T's row as nodes: sum of c * t over the nonzero c, with +-1 as Add / Sub."""
    out = None
    for c, t in zip(scale, terms):
        if c == 0:
            continue
        if out is None:
            out = t if c == 1 else op.Mul(t, op.Constant(value_float=float(c)))
        elif c == 1:
            out = op.Add(out, t)
        elif c == -1:
            out = op.Sub(out, t)
        else:
            out = op.Add(out, op.Mul(t, op.Constant(value_float=float(c))))
    return out


def _output_transform(op, slices, at):
    """[t*t slices M_ij] -> [m*m slices Y_pq], pq-major: Y = A^T M A."""
    m, t = len(at), len(at[0])
    rows = [[_combine(op, [slices[i * t + j] for i in range(t)], at[p]) for j in range(t)] for p in range(m)]
    return [_combine(op, rows[p], at[q]) for p in range(m) for q in range(m)]


def _plain(op, x, weight, bias, pad_h, pad_w, relu):
    pads = [pad_h, pad_w, pad_h, pad_w]
    y = op.Conv(x, weight, bias, pads=pads) if bias is not None else op.Conv(x, weight, pads=pads)
    return op.Relu(y) if relu else y


def translation(x, weight, weight_t, bias, pad_h: int, pad_w: int, relu: bool):
    """torch.onnx custom translation of effseg::winograd_conv2d: the Winograd graph above
    where the input's shape is static, else a plain Conv (whose padding is the same)."""
    return _winograd_graph(x, weight, weight_t, bias, pad_h, pad_w, relu, None)


def _winograd_graph(x, weight, weight_t, bias, pad_h, pad_w, relu, tile):
    import numpy as np
    from onnx import numpy_helper
    from onnxscript import opset18 as op

    shape = [d if isinstance(d, int) else None for d in (x.shape or ())]
    if len(shape) != 4 or None in shape[1:]:
        return _plain(op, x, weight, bias, pad_h, pad_w, relu)
    _, C, H, W = shape
    K = int(weight.shape[0])
    Ho, Wo = H + 2 * pad_h - 2, W + 2 * pad_w - 2
    m = tile or tile_size(Ho, Wo)
    bt, at = (BT4, AT4) if m == 4 else (BT2, AT2)
    t = m + 2
    T2 = t * t
    th, tw = -(-Ho // m), -(-Wo // m)
    # Bottom / right padding that makes the input exactly th x tw windows of t at stride m.
    pb = th * m + 2 - H - pad_h
    pr = tw * m + 2 - W - pad_w
    bt = np.asarray(bt, dtype=np.float32)

    def const(a, name):
        return op.Constant(value=numpy_helper.from_array(np.ascontiguousarray(a, dtype=np.float32), name))

    rows = [op.Conv(x, const(np.tile(bt[i].reshape(1, 1, t, 1), (C, 1, 1, 1)), f"bt_row{i}"),
                    group=C, strides=[m, 1], pads=[pad_h, 0, pb, 0]) for i in range(t)]
    cols = [const(np.tile(bt[j].reshape(1, 1, 1, t), (C, 1, 1, 1)), f"bt_col{j}") for j in range(t)]
    v = op.Concat(*[op.Conv(r, cols[j], group=C, strides=[1, m], pads=[0, pad_w, 0, pr])
                    for r in rows for j in range(t)], axis=1)
    if m == 4:  # weight_t is F(4x4)'s U already
        u = op.Reshape(weight_t, op.Constant(value_ints=[T2 * K, C, 1, 1]))
    else:
        # U = G g G^T from the weight, folded to a constant by the engine.
        g = np.asarray(G2, dtype=np.float64)
        kron = np.kron(g, g).T.astype(np.float32)  # 9 x 16
        u = op.MatMul(op.Reshape(weight, op.Constant(value_ints=[K * C, 9])), const(kron, "g_kron"))
        u = op.Reshape(op.Transpose(u, perm=[1, 0]), op.Constant(value_ints=[T2 * K, C, 1, 1]))
    slot = 1 * t + 1  # A^T's all-ones column is column 1 for both tile sizes
    if bias is None:
        mm = op.Conv(v, u, group=T2)
    else:
        zeros = op.ConstantOfShape(op.Constant(value_ints=[slot * K]))
        rest = op.ConstantOfShape(op.Constant(value_ints=[(T2 - slot - 1) * K]))
        mm = op.Conv(v, u, op.Concat(op.CastLike(zeros, bias), bias, op.CastLike(rest, bias), axis=0), group=T2)
    slices = op.Split(mm, num_outputs=T2, axis=1)
    y = op.DepthToSpace(op.Concat(*_output_transform(op, slices, at), axis=1), blocksize=m, mode="DCR")
    if (th * m, tw * m) != (Ho, Wo):
        y = op.Slice(y, op.Constant(value_ints=[0, 0]), op.Constant(value_ints=[Ho, Wo]),
                     op.Constant(value_ints=[2, 3]))
    return op.Relu(y) if relu else y


def translation_table(tile: int | None = None) -> dict:
    """torch.onnx's custom_translation_table entry for effseg::winograd_conv2d. tile: 2 or
    4 forces that tile size on every layer (bench/bench_winograd_conv2d_onnx.py); None
    chooses per layer (tile_size)."""
    import torch

    import effseg.ops.winograd_conv2d  # noqa: F401  (registers the op)

    if tile not in (None, 2, 4):
        raise ValueError(f"tile must be None, 2 or 4, got {tile!r}")
    if tile is None:
        return {torch.ops.effseg.winograd_conv2d.default: translation}

    # The exporter reads the translation's signature: a closure, not a partial.
    def forced(x, weight, weight_t, bias, pad_h: int, pad_w: int, relu: bool):
        return _winograd_graph(x, weight, weight_t, bias, pad_h, pad_w, relu, tile)

    return {torch.ops.effseg.winograd_conv2d.default: forced}
