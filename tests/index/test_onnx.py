"""The onnx-int8 embedding backend: its cache, its quality gate and the refusal to run an unchecked model.

The gate's arithmetic, the cache's atomicity and the refusals run everywhere (a fake export stands in for
the real one where only the cache is under test). The real export (torch.onnx, onnxruntime's fusions and
int8 quantization of the bundled MiniLM) is slow and needs the `onnx` extra: those tests skip without it.
"""

import importlib.util
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

import index.onnx_export as onnx_export
from api.cli import main
from index.config import DEFAULT_MODEL, EmbeddingSettings
from index.embedding import HashEmbedder, SentenceTransformerEmbedder, make_embedder
from index.errors import EmbedderUnavailable
from index.onnx_check import MIXED_INDEX_FP32, K, load_check_data, recall_at_k, run_check

ONNX_MISSING = [name for name in ("onnxruntime", "onnx") if importlib.util.find_spec(name) is None]
ONNX_SKIP = f"the onnx extra is not installed ({', '.join(ONNX_MISSING)} missing): pip install -e '.[onnx]'"
needs_onnx = pytest.mark.skipif(bool(ONNX_MISSING), reason=ONNX_SKIP)

# Made-up articles, one topic a paragraph, and questions each written on one paragraph.
ARTICLES = [
    ("Harbour", ["The old harbour of Velmora was dredged in 1911 so that steamships could dock at the quay.",
                 "Fishing boats still land their catch at dawn, and the fish market opens at six.",
                 "A lighthouse on the northern breakwater has guided ships since 1874."]),
    ("Orchard", ["The valley's apple orchards were planted by monks who kept bees among the trees.",
                 "Frost in late April can destroy the blossom and with it the year's harvest.",
                 "Cider pressed in the autumn is sold at the October fair in the market square."]),
]
QUESTIONS = [
    ("When was the harbour of Velmora dredged?", 0, 0),
    ("What time does the fish market open?", 0, 1),
    ("Since when has the lighthouse guided ships?", 0, 2),
    ("Who planted the apple orchards?", 1, 0),
    ("What can late April frost destroy?", 1, 1),
    ("When is the cider sold at the fair?", 1, 2),
]


@pytest.fixture
def check_data(tmp_path: Path) -> Path:
    """corpus.jsonl and qa.jsonl in the shared datasets' layout, with one unanswerable question."""
    directory = tmp_path / "check-data"
    directory.mkdir()
    with open(directory / "corpus.jsonl", "w", encoding="utf-8") as corpus:
        for title, paragraphs in ARTICLES:
            corpus.write(json.dumps({"doc_id": title, "title": title, "text": "\n\n".join(paragraphs)}) + "\n")
    with open(directory / "qa.jsonl", "w", encoding="utf-8") as qa:
        for number, (question, article, paragraph) in enumerate(QUESTIONS):
            paragraphs = ARTICLES[article][1]
            start = sum(len(p) + 2 for p in paragraphs[:paragraph]) + 4  # inside the paragraph
            qa.write(json.dumps({"id": f"q{number}", "question": question, "answers": ["x"],
                                 "doc_id": ARTICLES[article][0], "answer_starts": [start]}) + "\n")
        qa.write(json.dumps({"id": "none", "question": "Who owns the moon?", "answers": [], "doc_id": "Harbour",
                             "answer_starts": []}) + "\n")
    return directory


class ReversedWords(HashEmbedder):
    """A deliberately different model: hashes every word spelled backwards."""

    def embed(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        return super().embed([" ".join(word[::-1] for word in text.split()) for text in texts], progress=progress)


# ----- the gate --------------------------------------------------------------------------------------


def test_check_data_maps_each_answerable_question_to_its_paragraph(check_data: Path) -> None:
    data = load_check_data(check_data)
    assert len(data.passages) == 6 and data.passages[3] == ARTICLES[1][1][0]
    assert len(data.questions) == len(QUESTIONS)  # the unanswerable one is left out
    assert list(data.gold) == [3 * article + paragraph for _, article, paragraph in QUESTIONS]


def test_check_data_must_be_complete(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="corpus.jsonl and qa.jsonl"):
        load_check_data(tmp_path)
    (tmp_path / "corpus.jsonl").write_text('{"doc_id": "a", "text": "One paragraph."}\n', encoding="utf-8")
    (tmp_path / "qa.jsonl").write_text('{"id": "q", "question": "?", "doc_id": "b", "answer_starts": [0]}\n',
                                       encoding="utf-8")
    with pytest.raises(ValueError, match="no answerable question"):
        load_check_data(tmp_path)


def test_recall_at_k_counts_the_gold_passage_among_the_top_k() -> None:
    passages = np.eye(4, dtype=np.float32)
    queries = np.array([[1, 0.5, 0, 0], [0.2, 0.1, 0, 0.9], [0, 0.9, 0.1, 0]], dtype=np.float32)
    gold = np.array([0, 1, 2])
    assert recall_at_k(queries, passages, gold, 1) == pytest.approx(1 / 3)
    assert recall_at_k(queries, passages, gold, 2) == pytest.approx(2 / 3)
    assert recall_at_k(queries, passages, gold, 10) == 1.0  # k above the passage count: everything


def test_the_gate_passes_the_same_model_and_fails_another(check_data: Path) -> None:
    data = load_check_data(check_data)
    same = run_check(reference=HashEmbedder(), candidate=HashEmbedder(), data=data)
    assert same.passed and not same.failures
    assert same.cosine_mean == pytest.approx(1.0) and same.cosine_min == pytest.approx(1.0)
    assert same.recall["int8"] == same.recall["fp32"] == same.recall[MIXED_INDEX_FP32]
    assert same.k == K and same.questions == len(QUESTIONS) and same.passages == 6
    other = run_check(reference=HashEmbedder(), candidate=ReversedWords(), data=data)
    assert not other.passed
    assert any(f.startswith("mean cosine to fp32") for f in other.failures)
    assert other.to_json()["bounds"] == {"min_cosine_mean": 0.99, "max_recall_drop": 0.01}


# ----- settings and refusals ------------------------------------------------------------------------


def test_the_backend_setting_is_torch_unless_asked() -> None:
    assert EmbeddingSettings().backend == "torch"
    with pytest.raises(ValidationError):
        EmbeddingSettings(backend="onnx")  # type: ignore[arg-type]


def test_quantization_presets() -> None:
    assert onnx_export.resolve_quantization("avx2") == "avx2"
    assert onnx_export.resolve_quantization("auto") in onnx_export.QUANTIZATIONS
    with pytest.raises(ValueError, match="unknown quantization"):
        onnx_export.resolve_quantization("avx9000")


def test_the_cache_is_keyed_by_model_and_quantization(tmp_path: Path) -> None:
    vnni = onnx_export.model_dir(DEFAULT_MODEL, quantization="avx512_vnni", cache_dir=tmp_path)
    assert vnni.name.startswith("all-MiniLM-L6-v2-avx512_vnni-")
    assert vnni != onnx_export.model_dir(DEFAULT_MODEL, quantization="avx2", cache_dir=tmp_path)
    assert vnni == onnx_export.model_dir(DEFAULT_MODEL, quantization="avx512_vnni", cache_dir=tmp_path)
    assert vnni.parent == tmp_path


def onnx_settings(cache_dir: Path) -> EmbeddingSettings:
    return EmbeddingSettings(backend="onnx-int8", onnx_quantization="avx2", onnx_dir=cache_dir)


def fake_build(model: str, quantization: str, out: Path) -> dict[str, Any]:
    (out / onnx_export.MODEL_FILE).write_bytes(b"not a real model")
    return {"model": model, "quantization": quantization}


def test_the_backend_refuses_a_model_not_exported_unchecked_or_failed(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    settings = onnx_settings(tmp_path)
    refusals = []
    with pytest.raises(EmbedderUnavailable, match=r"no avx2 export of .* run `citeqa model export-onnx") as caught:
        make_embedder(settings)
    refusals.append(str(caught.value))
    monkeypatch.setattr(onnx_export, "_build", fake_build)
    directory = onnx_export.export_onnx(DEFAULT_MODEL, quantization="avx2", cache_dir=tmp_path)
    with pytest.raises(EmbedderUnavailable, match=r"has not passed its quality check \(it was not run\)") as caught:
        make_embedder(settings)
    refusals.append(str(caught.value))
    onnx_export.record_check(directory, {"passed": False, "failures": ["mean cosine to fp32 0.9500 < 0.99"]})
    with pytest.raises(EmbedderUnavailable, match=r"failed its quality check \(mean cosine to fp32 0.9500") as caught:
        make_embedder(settings)
    refusals.append(str(caught.value))
    assert all("\n" not in refusal for refusal in refusals)  # the CLI prints each as its one line


@needs_onnx
def test_a_model_file_onnxruntime_cannot_read_is_refused_with_its_reason(tmp_path: Path) -> None:
    from index.onnx_embedding import OnnxEmbedder

    (tmp_path / "export.json").write_text(json.dumps({"dimension": 384, "max_seq_length": 256}), encoding="utf-8")
    (tmp_path / "model.onnx").write_bytes(b"not a model")  # onnxruntime fails inside the loader thread
    with pytest.raises(EmbedderUnavailable, match=r"cannot load the ONNX model in .*: .*model\.onnx"):
        OnnxEmbedder(model_dir=tmp_path, name=DEFAULT_MODEL)


def test_an_interrupted_export_leaves_no_model_and_keeps_the_old_one(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(model: str, quantization: str, out: Path) -> dict[str, Any]:
        (out / onnx_export.MODEL_FILE).write_bytes(b"half a mod")
        raise KeyboardInterrupt

    target = onnx_export.model_dir(DEFAULT_MODEL, quantization="avx2", cache_dir=tmp_path)
    monkeypatch.setattr(onnx_export, "_build", interrupted)
    with pytest.raises(KeyboardInterrupt):
        onnx_export.export_onnx(DEFAULT_MODEL, quantization="avx2", cache_dir=tmp_path)
    assert not target.exists()
    assert not list(tmp_path.glob(".tmp-*"))

    monkeypatch.setattr(onnx_export, "_build", fake_build)
    assert onnx_export.export_onnx(DEFAULT_MODEL, quantization="avx2", cache_dir=tmp_path) == target
    monkeypatch.setattr(onnx_export, "_build", interrupted)
    with pytest.raises(KeyboardInterrupt):
        onnx_export.export_onnx(DEFAULT_MODEL, quantization="avx2", cache_dir=tmp_path, force=True)
    assert (target / onnx_export.MODEL_FILE).read_bytes() == b"not a real model"
    assert onnx_export.read_export(target) == {"model": DEFAULT_MODEL, "quantization": "avx2"}
    assert onnx_export.export_onnx(DEFAULT_MODEL, quantization="avx2", cache_dir=tmp_path) == target  # cached
    assert not list(tmp_path.glob(".tmp-*"))


def test_the_cli_rejects_missing_check_data_in_one_line(capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    code = main(["model", "export-onnx", "--check-data", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("citeqa: error: the check data needs") and err.count("\n") == 1


# ----- the real export (slow, needs the onnx extra) -------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if ONNX_MISSING:
        pytest.skip(ONNX_SKIP)
    return onnx_export.export_onnx(DEFAULT_MODEL, quantization="avx512_vnni",
                                   cache_dir=tmp_path_factory.mktemp("onnx-cache"))


@needs_onnx
@pytest.mark.slow
def test_the_export_is_fused_int8_and_close_to_fp32(exported: Path, minilm: SentenceTransformerEmbedder) -> None:
    from index.onnx_embedding import OnnxEmbedder

    info = onnx_export.read_export(exported)
    assert info["quantization"] == "avx512_vnni" and info["weights"] == "int8" and info["per_channel"]
    assert info["fused"]["Attention"] == 6  # the BERT fusions found the graph they speed up
    # ...but not the two whose onnxruntime kernels are slower than the plain ops (index/onnx_export.py)
    assert info["fused"]["LayerNormalization"] == 12 and info["fused"]["Gelu"] == 6
    assert "SkipLayerNormalization" not in info["fused"] and "BiasGelu" not in info["fused"]
    assert info["dimension"] == minilm.dimension and info["max_seq_length"] == 256
    embedder = OnnxEmbedder(model_dir=exported, name=DEFAULT_MODEL, threads=2)
    texts = [p for _, paragraphs in ARTICLES for p in paragraphs] * 7  # > batch size: the sorted path too
    texts += ["x", "A question?"]
    vectors = embedder.embed(texts)
    assert vectors.dtype == np.float32 and vectors.shape == (len(texts), minilm.dimension)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(vectors * minilm.embed(texts), axis=1)
    assert cosines.min() > 0.97
    # Dynamic int8 scales activations per batch: a text's vector moves a little with its batch, no more.
    assert np.sum(embedder.embed(texts[:3]) * vectors[:3], axis=1).min() > 0.99
    assert embedder.token_spans(texts[:4]) == minilm.token_spans(texts[:4])
    assert embedder.name == minilm.name  # one index serves both backends


@needs_onnx
@pytest.mark.slow
def test_the_checked_model_is_used_and_the_cli_records_the_check(
        exported: Path, check_data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from index.onnx_embedding import OnnxEmbedder

    monkeypatch.delenv("CITEQA_EMBEDDING__BACKEND", raising=False)
    monkeypatch.setenv("CITEQA_EMBEDDING__ONNX_DIR", str(exported.parent))
    monkeypatch.setenv("CITEQA_EMBEDDING__THREADS", "2")
    settings = EmbeddingSettings(backend="onnx-int8", onnx_quantization="avx512_vnni", onnx_dir=exported.parent)
    with pytest.raises(EmbedderUnavailable, match="it was not run"):
        make_embedder(settings)
    code = main(["model", "export-onnx", "--check-data", str(check_data), "--quantization", "avx512_vnni",
                 "--json"])
    out = capsys.readouterr().out
    assert code == 0
    document = json.loads(out)
    assert document["passed"] and document["model_dir"] == str(exported)
    assert document["questions"] == len(QUESTIONS) and document["passages"] == 6
    assert document["cosine_mean"] >= 0.99 and set(document["recall"]) == {
        "fp32", "int8", "fp32 passages, int8 queries", "int8 passages, fp32 queries"}
    assert onnx_export.read_check(exported) == document
    embedder = make_embedder(settings)
    assert isinstance(embedder, OnnxEmbedder)
    question = QUESTIONS[0][0]
    np.testing.assert_array_equal(embedder.embed([question]), embedder.embed([question]))


@needs_onnx
@pytest.mark.slow
def test_loading_the_model_leaves_the_callers_floating_point_alone(exported: Path) -> None:
    # onnxruntime flushes denormals to zero in the thread that creates a process's first session, once: a fresh
    # process, so that this load is the first. Seen before the fix: hypothesis' float strategies then failed.
    script = ("import sys; from pathlib import Path; from index.onnx_embedding import OnnxEmbedder;"
              "e = OnnxEmbedder(model_dir=Path(sys.argv[1]), name='m', threads=2); e.embed(['a text']);"
              "tiny, smallest_normal = 5e-324, 2.2250738585072014e-308;"
              "print(tiny * 1.0 > 0.0, smallest_normal / 4 > 0.0)")  # variables: no folding at compile time
    done = subprocess.run([sys.executable, "-c", script, str(exported)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


@needs_onnx
@pytest.mark.slow
def test_the_session_does_not_fuse_back_what_the_export_left_out(exported: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx
    import onnxruntime

    from index.onnx_embedding import OnnxEmbedder

    saved = tmp_path / "as-run.onnx"

    class Saving(onnxruntime.SessionOptions):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.optimized_model_filepath = str(saved)  # the graph after onnxruntime's own optimizations

    monkeypatch.setattr(onnxruntime, "SessionOptions", Saving)
    OnnxEmbedder(model_dir=exported, name=DEFAULT_MODEL, threads=2)
    ops = {node.op_type for node in onnx.load(str(saved)).graph.node}
    assert "LayerNormalization" in ops and "SkipLayerNormalization" not in ops and "BiasGelu" not in ops
