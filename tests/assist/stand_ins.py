"""Stand-in encoder/decoder ONNX pairs for every assist family, built with onnx.helper.

Exact tensor names, shapes and dtypes of each family's public exports, with a predictable
answer: a disc of RADIUS (model-frame units) around each positive point, the box for a box,
negative discs cut out, the previous mask (when fed back) kept. Decoder output k is that
answer grown by OFFSETS[k] (signed-distance units), so its multimask answers differ
predictably; predicted IoUs are constants (IOUS).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
BIG = 1.0e4
RADIUS = {"sam1": 100.0, "sam2": 100.0, "edgesam": 100.0, "efficientsam": 40.0}
OFFSETS = {"sam1": (0.0, -10.0, 12.0, 24.0), "edgesam": (0.0, -10.0, 12.0, 24.0),
           "sam2": (0.0, 12.0, -10.0), "efficientsam": (0.0, 8.0, -6.0)}
IOUS = {"sam1": (0.80, 0.70, 0.95, 0.60), "edgesam": (0.80, 0.70, 0.95, 0.60),
        "sam2": (0.70, 0.90, 0.80), "efficientsam": (0.75, 0.85, 0.65)}
FLOAT = TensorProto.FLOAT


class _Graph:
    """A tiny graph builder: each op returns its output's name."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def _name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def const(self, value: np.ndarray | float | list, dtype: type = np.float32) -> str:
        name = self._name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: object) -> str:
        name = out or self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [name], **attrs))
        return name

    def model(self, inputs: list, outputs: list, path: Path) -> Path:
        graph = helper.make_graph(self.nodes, "stand_in", inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
        return path


def _scores(g: _Graph, coords: str, labels: str, gx: str, gy: str, radius: float,
            offsets: tuple[float, ...], prev: str | None = None) -> str:
    """[1,K,h,w] logits: discs, box, previous mask, negatives cut out, grown by offsets."""
    def axis(lo: int) -> str:
        part = g.op("Slice", coords, g.const([lo], np.int64), g.const([lo + 1], np.int64), g.const([2], np.int64))
        return g.op("Unsqueeze", part, g.const([3], np.int64))

    px, py = axis(0), axis(1)
    lab = g.op("Unsqueeze", labels, g.const([2, 3], np.int64))
    dx, dy = g.op("Sub", gx, px), g.op("Sub", gy, py)
    d2 = g.op("Add", g.op("Mul", dx, dx), g.op("Mul", dy, dy))
    disc = g.op("Div", g.op("Sub", g.const(radius * radius), d2), g.const(2.0 * radius))

    def where_label(value: float) -> str:
        return g.op("Cast", g.op("Equal", lab, g.const(value)), to=FLOAT)

    def gated_max(score: str, flag: str) -> str:
        masked = g.op("Add", g.op("Mul", score, flag), g.op("Mul", g.op("Sub", flag, g.const(1.0)), g.const(BIG)))
        return g.op("ReduceMax", masked, axes=[1], keepdims=1)

    positive = gated_max(disc, where_label(1.0))
    negative = gated_max(disc, where_label(0.0))
    tl, br = where_label(2.0), where_label(3.0)
    axes1 = g.const([1], np.int64)
    x0, y0 = (g.op("ReduceSum", g.op("Mul", p, tl), axes1) for p in (px, py))
    x1, y1 = (g.op("ReduceSum", g.op("Mul", p, br), axes1) for p in (px, py))
    has_box = g.op("ReduceSum", tl, axes1)
    bx = g.op("Min", g.op("Sub", gx, x0), g.op("Sub", x1, gx))
    by = g.op("Min", g.op("Sub", gy, y0), g.op("Sub", y1, gy))
    box = g.op("Min", bx, by)
    box = g.op("Add", g.op("Mul", box, has_box), g.op("Mul", g.op("Sub", has_box, g.const(1.0)), g.const(BIG)))
    inside = g.op("Max", positive, box, *([prev] if prev else []))
    answer = g.op("Min", inside, g.op("Neg", negative))
    return g.op("Add", answer, g.const(np.array(offsets, np.float32).reshape(1, -1, 1, 1)))


def _low_res_grid(g: _Graph) -> tuple[str, str]:
    """Cell centres of a 256x256 grid over the 1024 frame, as [1,1,1,256] and [1,1,256,1]."""
    centres = (np.arange(256, dtype=np.float32) + 0.5) * 4.0
    return g.const(centres.reshape(1, 1, 1, 256)), g.const(centres.reshape(1, 1, 256, 1))


def _prev(g: _Graph, mask_input: str, has_mask_input: str) -> str:
    has = g.op("Reshape", has_mask_input, g.const([1, 1, 1, 1], np.int64))
    return g.op("Add", g.op("Mul", mask_input, has), g.op("Mul", g.op("Sub", has, g.const(1.0)), g.const(BIG)))


def _conv_embed(g: _Graph, image: str, channels: int, stride: int, out: str) -> str:
    """Average-pool by `stride`, then a 1x1 convolution: cheap, and it depends on the pixels."""
    if stride > 1:
        image = g.op("AveragePool", image, kernel_shape=[stride, stride], strides=[stride, stride])
    weight = np.random.default_rng(channels).normal(0, 0.5, (channels, 3, 1, 1)).astype(np.float32)
    return g.op("Conv", image, g.const(weight), out=out)


def _slow_chain(g: _Graph, image: str, steps: int) -> str:
    """A deliberately heavy branch (matrix products) so a test can cancel a running encode."""
    x = g.op("Reshape", image, g.const([3072, 1024], np.int64))
    weight = g.const(np.eye(1024, dtype=np.float32) * 0.5)
    for _ in range(steps):
        x = g.op("MatMul", x, weight)
    return g.op("Mul", g.op("ReduceMean", x, keepdims=1), g.const(0.0))


def _tensor(name: str, dtype: int, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def sam1_encoder(path: Path, input_name: str = "image", slow_steps: int = 0) -> Path:
    """SAM 1 / MobileSAM encoder: `image` (or `x`) [1,3,1024,1024], or `input_image`
    [H,W,3] with pre-processing inside -> `image_embeddings` [1,256,64,64]."""
    g = _Graph()
    if input_name == "input_image":
        chw = g.op("Unsqueeze", g.op("Transpose", input_name, perm=[2, 0, 1]), g.const([0], np.int64))
        small = g.op("Resize", chw, "", "", g.const([1, 3, 64, 64], np.int64), mode="linear")
        source, stride, shape = small, 1, ["h", "w", 3]
    else:
        source, stride, shape = input_name, 16, [1, 3, 1024, 1024]
    if slow_steps:
        embed = _conv_embed(g, source, 256, stride, "embed_fast")
        g.op("Add", embed, _slow_chain(g, input_name, slow_steps), out="image_embeddings")
    else:
        _conv_embed(g, source, 256, stride, "image_embeddings")
    return g.model([_tensor(input_name, FLOAT, shape)],
                   [_tensor("image_embeddings", FLOAT, [1, 256, 64, 64])], path)


def sam1_decoder(path: Path, orig_size_type: int = FLOAT, multimask: bool = True) -> Path:
    """facebookresearch's decoder layout; `masks` is the naive resize of the whole 256 grid
    to (H, W), wrong for non-square images as the PyPI 1.0 exports are."""
    g = _Graph()
    gx, gy = _low_res_grid(g)
    offsets = OFFSETS["sam1"] if multimask else OFFSETS["sam1"][:1]
    ious = IOUS["sam1"] if multimask else IOUS["sam1"][:1]
    low = _scores(g, "point_coords", "point_labels", gx, gy, RADIUS["sam1"], offsets,
                  _prev(g, "mask_input", "has_mask_input"))
    g.op("Identity", low, out="low_res_masks")
    g.op("Identity", g.const(np.array([ious], np.float32)), out="iou_predictions")
    size = g.op("Cast", "orig_im_size", to=TensorProto.INT64)
    sizes = g.op("Concat", g.const([1, len(offsets)], np.int64), size, axis=0)
    g.op("Resize", low, "", "", sizes, out="masks", mode="linear")
    k = len(offsets)
    return g.model(
        [_tensor("image_embeddings", FLOAT, [1, 256, 64, 64]), _tensor("point_coords", FLOAT, [1, "n", 2]),
         _tensor("point_labels", FLOAT, [1, "n"]), _tensor("mask_input", FLOAT, [1, 1, 256, 256]),
         _tensor("has_mask_input", FLOAT, [1]), _tensor("orig_im_size", orig_size_type, [2])],
        [_tensor("masks", FLOAT, [1, k, "h", "w"]), _tensor("iou_predictions", FLOAT, [1, k]),
         _tensor("low_res_masks", FLOAT, [1, k, 256, 256])], path)


def edgesam_decoder(path: Path) -> Path:
    g = _Graph()
    gx, gy = _low_res_grid(g)
    g.op("Identity", _scores(g, "point_coords", "point_labels", gx, gy, RADIUS["edgesam"], OFFSETS["edgesam"]), out="masks")
    g.op("Identity", g.const(np.array([IOUS["edgesam"]], np.float32)), out="scores")
    return g.model(
        [_tensor("image_embeddings", FLOAT, [1, 256, 64, 64]), _tensor("point_coords", FLOAT, [1, "n", 2]),
         _tensor("point_labels", FLOAT, [1, "n"])],
        [_tensor("scores", FLOAT, [1, 4]), _tensor("masks", FLOAT, [1, 4, 256, 256])], path)


def sam2_encoder(path: Path) -> Path:
    g = _Graph()
    _conv_embed(g, "image", 32, 4, "high_res_feats_0")
    _conv_embed(g, "image", 64, 8, "high_res_feats_1")
    _conv_embed(g, "image", 256, 16, "image_embed")
    return g.model([_tensor("image", FLOAT, [1, 3, 1024, 1024])],
                   [_tensor("high_res_feats_0", FLOAT, [1, 32, 256, 256]),
                    _tensor("high_res_feats_1", FLOAT, [1, 64, 128, 128]),
                    _tensor("image_embed", FLOAT, [1, 256, 64, 64])], path)


def sam2_decoder(path: Path) -> Path:
    g = _Graph()
    gx, gy = _low_res_grid(g)
    low = _scores(g, "point_coords", "point_labels", gx, gy, RADIUS["sam2"], OFFSETS["sam2"],
                  _prev(g, "mask_input", "has_mask_input"))
    g.op("Identity", low, out="masks")
    g.op("Identity", g.const(np.array([IOUS["sam2"]], np.float32)), out="iou_predictions")
    return g.model(
        [_tensor("image_embed", FLOAT, [1, 256, 64, 64]), _tensor("high_res_feats_0", FLOAT, [1, 32, 256, 256]),
         _tensor("high_res_feats_1", FLOAT, [1, 64, 128, 128]), _tensor("point_coords", FLOAT, [1, "n", 2]),
         _tensor("point_labels", FLOAT, [1, "n"]), _tensor("mask_input", FLOAT, [1, 1, 256, 256]),
         _tensor("has_mask_input", FLOAT, [1])],
        [_tensor("masks", FLOAT, [1, 3, 256, 256]), _tensor("iou_predictions", FLOAT, [1, 3])], path)


def efficientsam_encoder(path: Path) -> Path:
    g = _Graph()
    small = g.op("Resize", "batched_images", "", "", g.const([1, 3, 64, 64], np.int64), mode="linear")
    _conv_embed(g, small, 256, 1, "image_embeddings")
    return g.model([_tensor("batched_images", FLOAT, [1, 3, "h", "w"])],
                   [_tensor("image_embeddings", FLOAT, [1, 256, 64, 64])], path)


def efficientsam_decoder(path: Path) -> Path:
    g = _Graph()

    def grid(index: int, shape: list[int]) -> str:
        part = g.op("Slice", "orig_im_size", g.const([index], np.int64), g.const([index + 1], np.int64))
        count = g.op("Squeeze", part, g.const([0], np.int64))
        ramp = g.op("Range", g.const(0, np.int64), count, g.const(1, np.int64))
        centres = g.op("Add", g.op("Cast", ramp, to=FLOAT), g.const(0.5))
        return g.op("Reshape", centres, g.const(shape, np.int64))

    gy, gx = grid(0, [1, 1, -1, 1]), grid(1, [1, 1, 1, -1])
    coords = g.op("Squeeze", "batched_point_coords", g.const([1], np.int64))
    labels = g.op("Squeeze", "batched_point_labels", g.const([1], np.int64))
    full = _scores(g, coords, labels, gx, gy, RADIUS["efficientsam"], OFFSETS["efficientsam"])
    g.op("Unsqueeze", full, g.const([1], np.int64), out="output_masks")
    g.op("Identity", g.const(np.array([[IOUS["efficientsam"]]], np.float32)), out="iou_predictions")
    return g.model(
        [_tensor("image_embeddings", FLOAT, [1, 256, 64, 64]), _tensor("batched_point_coords", FLOAT, [1, 1, "n", 2]),
         _tensor("batched_point_labels", FLOAT, [1, 1, "n"]), _tensor("orig_im_size", TensorProto.INT64, [2])],
        [_tensor("output_masks", FLOAT, [1, 1, 3, "h", "w"]), _tensor("iou_predictions", FLOAT, [1, 1, 3])], path)


def foreign_decoder(path: Path) -> Path:
    """A valid ONNX file that is no SAM-family decoder."""
    g = _Graph()
    g.op("Relu", "features", out="scores")
    return g.model([_tensor("features", FLOAT, [1, 8])], [_tensor("scores", FLOAT, [1, 8])], path)


def write_pair(folder: Path, family: str, **options: object) -> tuple[Path, Path]:
    """(encoder, decoder) stand-ins of `family` ('sam1', 'sam1_inside', 'sam1_x', 'sam2',
    'efficientsam', 'edgesam') written into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    enc, dec = folder / f"{family}.encoder.onnx", folder / f"{family}.decoder.onnx"
    if family.startswith("sam1"):
        name = {"sam1": "image", "sam1_inside": "input_image", "sam1_x": "x"}[family]
        sam1_encoder(enc, name, slow_steps=int(options.pop("slow_steps", 0)))
        sam1_decoder(dec, **options)
    elif family == "edgesam":
        sam1_encoder(enc)
        edgesam_decoder(dec)
    elif family == "sam2":
        sam2_encoder(enc)
        sam2_decoder(dec)
    elif family == "efficientsam":
        efficientsam_encoder(enc)
        efficientsam_decoder(dec)
    else:
        raise ValueError(family)
    return enc, dec


def expected_disc(height: int, width: int, family: str, centres: list[tuple[float, float]],
                  offset: float = 0.0) -> np.ndarray:
    """The answer computed analytically: pixels whose centre, mapped into the model frame,
    lies within the grown radius of any centre (image pixels)."""
    if family in ("sam1", "edgesam"):
        scale = 1024.0 / max(height, width)
        sx = sy = scale
    elif family == "sam2":
        sx, sy = 1024.0 / width, 1024.0 / height
    else:
        sx = sy = 1.0
    radius = RADIUS[family]
    reach2 = radius * radius + 2.0 * radius * offset
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    out = np.zeros((height, width), bool)
    for cx, cy in centres:
        out |= ((xs - cx) * sx) ** 2 + ((ys - cy) * sy) ** 2 < reach2
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0
