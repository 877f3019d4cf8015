"""An int8 ONNX copy of a sentence-transformers model, made offline and cached by model and quantization.

The recipe, and why (bench/embed.py and `citeqa model export-onnx` measure the result):

1. torch.onnx's TorchScript exporter (`dynamo=False`) traces the whole SentenceTransformer (transformer,
   pooling, normalize) loaded with eager attention: onnxruntime's BERT fusions recognise that graph. On the
   dynamo exporter's graph they fuse no Attention, and its int8 model was slower (1.2x the fp32 torch floor
   against 1.8x in one run).
2. `onnxruntime.transformers.optimizer` fuses Attention, EmbedLayerNormalization, LayerNormalization and Gelu
   (python fusions only: the file stays independent of this CPU). Not SkipLayerNormalization nor BiasGelu:
   onnxruntime's CPU kernels for them are slower than the plain ops (SkipLayerNormalization 4.5 ns an element
   on one thread against 1.3 for Add + LayerNormalization, and 22% of the int8 model's time); without both,
   the embedder went from 135 to 167 passages/s (2 cores, bench/embed.py's first 512 passages; bench/embed.py
   itself: 2.97x the fp32 floor). The session must not fuse them back (`onnx_embedding.RUNTIME_FUSIONS_OFF`).
3. `onnxruntime.quantization`: symbolic shape inference (`quant_pre_process`, which knows the fused ops),
   then `quantize_dynamic`: int8 weights per output channel of every MatMul and of the fused Attention
   (whose fp32 QKV projection was half the int8 model's time). Per-tensor weights lose too much (cosine to
   fp32 ~0.95 on SQuAD paragraphs, against ~0.995).

sentence-transformers' own `export_dynamic_quantized_onnx_model` needs optimum-onnx, whose releases pin
transformers < 4.58 while sentence-transformers >= 5 needs transformers >= 5: they do not install together.

Layout of one cached model (`<onnx_dir>/<model>-<quantization>-<key>/`): model.onnx, tokenizer/,
export.json (what was exported, how, with which versions) and, once `citeqa model export-onnx` has run the
quality check (index/onnx_check.py), check.json. The directory is built aside and renamed into place, so an
interrupted export never leaves half a model; `checked_model_dir` refuses a model without a passed check.

Usage: model_dir = export_onnx("sentence-transformers/all-MiniLM-L6-v2", quantization="avx512_vnni",
       cache_dir=default_cache_dir())
"""

import contextlib
import datetime
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

from index.atomic import TEMP_PREFIX, fsync_dir, write_atomic
from index.config import EmbeddingSettings
from index.embedding import _model_location
from index.errors import EmbedderUnavailable

log = logging.getLogger(__name__)

RECIPE = 3  # bump when the steps above change: it is part of the cache key
OPSET = 17
MODEL_FILE = "model.onnx"
TOKENIZER_DIR = "tokenizer"
EXPORT_FILE = "export.json"
CHECK_FILE = "check.json"
# reduce_range (7-bit weights) avoids the int16 overflow of u8*s8 products on AVX2 without VNNI
# (onnxruntime's quantization docs); with VNNI, and on arm64, all 8 bits are safe.
QUANTIZATIONS: dict[str, dict[str, Any]] = {
    "avx512_vnni": {"per_channel": True, "reduce_range": False},
    "avx2": {"per_channel": True, "reduce_range": True},
    "arm64": {"per_channel": True, "reduce_range": False},
}
_OPS_TO_QUANTIZE = ["MatMul", "Attention"]
_FUSIONS_OFF = {"enable_skip_layer_norm": False, "enable_bias_skip_layer_norm": False, "enable_bias_gelu": False}


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/citeqa/onnx, else ~/.cache/citeqa/onnx."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "citeqa" / "onnx"


def resolve_quantization(name: str) -> str:
    """The preset `auto` stands for on this CPU: arm64 on ARM, avx512_vnni with VNNI, else avx2."""
    if name != "auto":
        if name not in QUANTIZATIONS:
            raise ValueError(f"unknown quantization {name!r}; choose one of {', '.join(QUANTIZATIONS)}")
        return name
    if platform.machine().lower() in ("arm64", "aarch64"):
        return "arm64"
    return "avx512_vnni" if {"avx512_vnni", "avx_vnni"} & _cpu_flags() else "avx2"


def model_dir(model: str, *, quantization: str, cache_dir: Path) -> Path:
    """Where the export of `model` with `quantization` is cached: keyed by the model files' contents."""
    location = Path(_model_location(model))
    if not location.is_dir():
        raise EmbedderUnavailable(f"cannot export {model!r} to ONNX: {location} is not a local model folder "
                                  "(citeqa never downloads)")
    digest = hashlib.sha256(json.dumps({"recipe": RECIPE, "opset": OPSET, "model": model,
                                        "quantization": quantization, **QUANTIZATIONS[quantization]},
                                       sort_keys=True).encode())
    for path in sorted(p for p in location.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(location)).encode() + b"\0" + _file_sha256(path))
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model).name)[-48:] or "model"
    return cache_dir / f"{slug}-{quantization}-{digest.hexdigest()[:12]}"


def export_onnx(model: str, *, quantization: str, cache_dir: Path, force: bool = False) -> Path:
    """Export, fuse and quantize `model` into its cache directory (kept when present, unless `force`).

    Raises:
        EmbedderUnavailable: the model cannot be loaded, or the `onnx` extra is not installed.
    """
    quantization = resolve_quantization(quantization)
    target = model_dir(model, quantization=quantization, cache_dir=cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(cache_dir / f"{target.name}.lock"):
        for leftover in cache_dir.glob(f"{TEMP_PREFIX}{target.name}-*"):  # from a killed export
            shutil.rmtree(leftover, ignore_errors=True)
        if (target / EXPORT_FILE).is_file() and not force:
            log.info("the ONNX export of %s is cached at %s", model, target)
            return target
        building = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{target.name}-", dir=cache_dir))
        try:
            info = _build(model, quantization, building)
            write_atomic(building / EXPORT_FILE, (json.dumps(info, indent=2) + "\n").encode())
            building.chmod(0o755)  # mkdtemp's 0700 would hide the cache from a server running as another user
            for path in building.rglob("*"):
                if path.is_file():
                    path.chmod(0o644)
                    _fsync(path)
            old = None
            if target.exists():
                old = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{target.name}-", dir=cache_dir))
                os.replace(target, old / "replaced")
            os.replace(building, target)
            fsync_dir(cache_dir)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return target


def read_export(directory: Path) -> dict[str, Any]:
    """export.json of a cached model."""
    return json.loads((directory / EXPORT_FILE).read_text(encoding="utf-8"))


def read_check(directory: Path) -> dict[str, Any] | None:
    """check.json of a cached model, or None when its check was never recorded."""
    path = directory / CHECK_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def record_check(directory: Path, result: dict[str, Any]) -> None:
    """Write the quality check's result next to the model (atomically)."""
    write_atomic(directory / CHECK_FILE, (json.dumps(result, indent=2) + "\n").encode())
    (directory / CHECK_FILE).chmod(0o644)


def checked_model_dir(settings: EmbeddingSettings) -> Path:
    """The cached int8 model the settings name, only if its quality check passed.

    Raises:
        EmbedderUnavailable: not exported, its check not run or failed (one line saying what to do).
    """
    quantization = resolve_quantization(settings.onnx_quantization)
    cache_dir = settings.onnx_dir or default_cache_dir()
    directory = model_dir(settings.model, quantization=quantization, cache_dir=cache_dir)
    how = "run `citeqa model export-onnx --check-data DIR`, or set CITEQA_EMBEDDING__BACKEND=torch"
    if not (directory / EXPORT_FILE).is_file():
        raise EmbedderUnavailable(f"the onnx-int8 backend has no {quantization} export of {settings.model} in "
                                  f"{cache_dir}: {how}")
    try:
        check = read_check(directory)
    except (OSError, ValueError) as exc:
        raise EmbedderUnavailable(f"the quality check record in {directory} is unreadable ({exc}): {how}") from exc
    if check is None:
        raise EmbedderUnavailable(f"the int8 ONNX model in {directory} has not passed its quality check "
                                  f"(it was not run): {how}")
    if not check.get("passed"):
        raise EmbedderUnavailable(f"the int8 ONNX model in {directory} failed its quality check "
                                  f"({'; '.join(check.get('failures') or ['no reason recorded'])}): use "
                                  "CITEQA_EMBEDDING__BACKEND=torch")
    return directory


def _build(model: str, quantization: str, out: Path) -> dict[str, Any]:
    """Export, fuse and quantize into `out`; return what export.json records."""
    try:
        import onnx
        import onnxruntime
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.shape_inference import quant_pre_process
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model
    except ImportError as exc:
        raise EmbedderUnavailable(f"exporting to ONNX needs the onnx extra ({exc.name} is missing): "
                                  "pip install 'citeqa[onnx]'") from exc
    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # its "Loading weights" bar is noise on every command
    location = _model_location(model)
    try:
        st = SentenceTransformer(location, device="cpu", model_kwargs={"attn_implementation": "eager"})
    except Exception as exc:  # sentence-transformers raises OSError, ValueError, HF errors…
        raise EmbedderUnavailable(f"cannot load embedding model {model!r} from {location}: {exc}") from exc
    st.eval()
    tokenizer = st.tokenizer
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]
    # Two texts of different lengths: the trace then sees padding, and the mask path is exported in general.
    sample = tokenizer(["a short text", "a somewhat longer text, so that the batch is padded"], padding=True,
                       return_tensors="pt")
    config: Any = st[0].auto_model.config  # type: ignore[union-attr]
    preset = QUANTIZATIONS[quantization]

    with tempfile.TemporaryDirectory(prefix="citeqa-onnx-") as scratch:
        traced, fused, prepared = (Path(scratch) / name for name in ("traced.onnx", "fused.onnx", "prepared.onnx"))
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes, checked by the gate
            axes = {n: {0: "batch", 1: "sequence"} for n in names}
            torch.onnx.export(_traceable(st, names), tuple(sample[n] for n in names), str(traced),
                              input_names=names, output_names=["sentence_embedding"],
                              dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
        with _quiet_info_logs():  # onnxruntime's tools log every fusion and tensor at INFO on the root logger
            fusion_options = FusionOptions("bert")
            for option, value in _FUSIONS_OFF.items():
                setattr(fusion_options, option, value)
            optimized = optimize_model(str(traced), model_type="bert", num_heads=int(config.num_attention_heads),
                                       hidden_size=int(config.hidden_size), optimization_options=fusion_options,
                                       opt_level=0)
            fusions = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
            optimized.save_model_to_file(str(fused))
            quant_pre_process(str(fused), str(prepared), skip_optimization=True)
            quantize_dynamic(str(prepared), str(out / MODEL_FILE), op_types_to_quantize=_OPS_TO_QUANTIZE,
                             weight_type=QuantType.QInt8, **preset)
    tokenizer.save_pretrained(str(out / TOKENIZER_DIR))
    log.info("exported %s to %s (fused: %s)", model, out / MODEL_FILE, fusions)
    return {
        "model": model, "source": location, "quantization": quantization, "recipe": RECIPE, "opset": OPSET,
        "weights": "int8", "ops_quantized": _OPS_TO_QUANTIZE, **preset, "fused": fusions,
        "inputs": names, "dimension": int(st.get_embedding_dimension() or 0),
        "max_seq_length": int(st.max_seq_length or 0),
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                     "transformers": transformers.__version__,
                     "sentence_transformers": sentence_transformers.__version__},
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _traceable(st: Any, names: list[str]) -> Any:
    """The SentenceTransformer as a module of positional tensors, as torch.onnx traces it."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.st = st

        def forward(self, *tensors: Any) -> Any:
            return self.st(dict(zip(names, tensors, strict=True)))["sentence_embedding"]

    return Encoder().eval()


@contextlib.contextmanager
def _quiet_info_logs() -> Iterator[None]:
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _file_sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _cpu_flags() -> set[str]:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()
