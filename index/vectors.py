"""The vector index behind the store: exact search up to a size, an IVF index above it, optionally 8-bit codes.

Every kind is inner-product search over unit vectors, addressed by passage id (the store's `vid`):

    flat        IndexIDMap(IndexFlatIP)                       exact
    flat sq8    IndexIDMap(IndexScalarQuantizer QT_8bit)      exact over 8-bit codes
    ivf         IndexIVFFlat, an IndexFlatIP of k-means       probes the `nprobe` lists nearest the query
                centroids as its coarse quantizer
    ivf sq8     IndexIVFScalarQuantizer QT_8bit               the same over 8-bit codes

8-bit scores are approximate, so an SQ8 index returns `candidates(k)` = 2k hits for the caller to score
again with the exact vectors (the store keeps them in SQLite). IVF lists and SQ8 ranges are trained on the
vectors at hand; `suits` says when the store should build the index again (another kind or quantization,
or grown past what it was trained for). IVF, not HNSW: FAISS's IVF removes ids in place and keeps its
recall under an id filter by probing more lists, where HNSW can do neither (bench/ann_tune.py measures both).

A snapshot is FAISS's own file format, whose type tags say which kind it holds; the flat IndexIDMap2 of
older stores is still read. Opened with `mmap`, the codes stay in the file's pages (IO_FLAG_MMAP_IFC), which
every process that maps the same file shares; such an index is read-only, `writable()` gives a copy to change.
"""

import contextlib
import math
import os
from collections.abc import Iterator
from typing import Literal, cast

import faiss
import numpy as np

from index.config import DEFAULT_NPROBE, VectorSettings

Kind = Literal["flat", "ivf"]
Quantize = Literal["none", "sq8"]

# k-means wants at least ~39 points per list (FAISS warns below); more than 64 per list buys little.
MIN_POINTS_PER_LIST = 39
TRAIN_POINTS_PER_LIST = 64
SQ_TRAIN_POINTS = 65_536
SQ_RANGE_MARGIN = 0.1  # codes cover the trained min..max widened by 10% each side: later vectors fit
# SQ8 candidates per wanted hit: at 100k passages recall@10 and @30 against exact search were the same with
# 1.5 as with 2 or 3 (ivf+sq8, 300 questions); each candidate's vector is one SQLite row read.
RESCORE_FACTOR = 1.5
MMAP_FLAGS = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY
_SEED = 1234


def choose_kind(settings: VectorSettings, count: int, current: Kind | None = None) -> Kind:
    """The kind for `count` vectors; `auto` leaves IVF only below half the threshold, so it does not flap."""
    if count == 0:
        return "flat"  # nothing to train on yet
    if settings.kind != "auto":
        return cast(Kind, settings.kind)
    if count > settings.exact_up_to:
        return "ivf"
    if current == "ivf" and count > settings.exact_up_to // 2:
        return "ivf"
    return "flat"


def choose_nlist(settings: VectorSettings, count: int) -> int:
    """IVF lists for `count` vectors: the setting, else ~4·√count as a power of two; ≥39 points per list."""
    wanted = settings.nlist or 2 ** round(math.log2(max(1.0, 4 * math.sqrt(count))))
    return max(1, min(wanted, count // MIN_POINTS_PER_LIST))


def build(settings: VectorSettings, dimension: int, ids: np.ndarray, vectors: np.ndarray, *,
          current: Kind | None = None) -> "VectorIndex":
    """A new index holding these vectors, of the kind the settings choose for their count (trained on them)."""
    if dimension < 1:
        raise ValueError(f"dimension must be positive, got {dimension}")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, dimension)
    count = len(vectors)
    kind = choose_kind(settings, count, current)
    sq8 = settings.quantize == "sq8" and count > 0  # nothing to train the 8-bit ranges on yet: plain flat
    with _all_threads():
        if kind == "flat":
            inner = _new_sq8(dimension) if sq8 else faiss.IndexFlatIP(dimension)
            if sq8:
                inner.train(_sample(vectors, SQ_TRAIN_POINTS))
            index: faiss.Index = faiss.IndexIDMap(inner)
        else:
            nlist = choose_nlist(settings, count)
            quantizer = faiss.IndexFlatIP(dimension)
            if sq8:
                index = faiss.IndexIVFScalarQuantizer(quantizer, dimension, nlist, faiss.ScalarQuantizer.QT_8bit,
                                                      faiss.METRIC_INNER_PRODUCT)
                _widen_sq_range(index.sq)
            else:
                index = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = _SEED
            index.cp.min_points_per_centroid = 1  # nlist is capped already; FAISS would warn below 39 vectors
            index.train(_sample(vectors, nlist * TRAIN_POINTS_PER_LIST))
    result = VectorIndex(index, dimension, nprobe=settings.nprobe, trained_on=count)
    result.add(ids, vectors)
    return result


class VectorIndex:
    """Id-addressed inner-product search over unit vectors. Usage: build(settings, 384, ids, vecs).search(q, 10)"""

    def __init__(self, index: faiss.Index, dimension: int, *, nprobe: int = DEFAULT_NPROBE,
                 trained_on: int | None = None, mapped: bool = False) -> None:
        kind, quantize = _describe(index, dimension)
        self.dimension = dimension
        self.kind: Kind = kind
        self.quantize: Quantize = quantize
        self.nprobe = nprobe
        self.mapped = mapped
        self._index = index
        self.trained_on = self.size if trained_on is None else trained_on

    # ----- reading and writing files ------------------------------------------------------------

    @classmethod
    def open(cls, path: str, dimension: int, *, mmap: bool, nprobe: int = DEFAULT_NPROBE, trained_on: int | None = None
             ) -> "VectorIndex":
        """Read an index file; with `mmap` its codes stay in the (shared) file pages. ValueError if not ours."""
        try:
            index = faiss.read_index(path, MMAP_FLAGS if mmap else 0)
        except RuntimeError as exc:
            raise ValueError(f"not a FAISS index: {str(exc).strip().splitlines()[-1]}") from exc
        return cls(index, dimension, nprobe=nprobe, trained_on=trained_on, mapped=mmap)

    @classmethod
    def from_bytes(cls, data: bytes, dimension: int, *, nprobe: int = DEFAULT_NPROBE, trained_on: int | None = None
                   ) -> "VectorIndex":
        """Read an index written by `to_bytes`; raise ValueError when it is not one of ours."""
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            raise ValueError(f"not a FAISS index: {str(exc).strip().splitlines()[-1]}") from exc
        return cls(index, dimension, nprobe=nprobe, trained_on=trained_on)

    def to_bytes(self) -> bytes:
        return faiss.serialize_index(self._index).tobytes()

    def writable(self) -> "VectorIndex":
        """This index, or a private in-memory copy when it is memory-mapped (a mapped one cannot change)."""
        if not self.mapped:
            return self
        copy = faiss.deserialize_index(faiss.serialize_index(self._index))
        return VectorIndex(copy, self.dimension, nprobe=self.nprobe, trained_on=self.trained_on)

    # ----- what it is -----------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """How many vectors it holds."""
        return int(self._index.ntotal)

    @property
    def nlist(self) -> int:
        """IVF lists (0 for flat)."""
        return int(faiss.extract_index_ivf(self._index).nlist) if self.kind == "ivf" else 0

    def suits(self, settings: VectorSettings, count: int) -> bool:
        """Whether `count` vectors may go on in this index, or the settings want it built (trained) again:
        another kind or quantization, IVF lists grown 2x (4x the vectors), SQ8 ranges trained on < half."""
        if choose_kind(settings, count, self.kind) != self.kind or settings.quantize != self.quantize:
            return False
        if self.kind == "ivf":
            return choose_nlist(settings, count) < 2 * self.nlist
        return self.quantize == "none" or count <= 2 * max(self.trained_on, 1)

    # ----- changing -------------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add (n,) int64 ids with their (n, dimension) float32 vectors."""
        if not len(ids):
            return
        self._check_writable()
        with _all_threads():
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32),
                                     np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        """Remove the vectors with these ids (unknown ids are ignored)."""
        if not len(ids):
            return
        self._check_writable()
        self._index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64)))

    def _check_writable(self) -> None:
        # FAISS aborts the process when a mapped (viewed) index is resized.
        if self.mapped:
            raise RuntimeError("a memory-mapped vector index is read-only; change writable() instead")

    # ----- searching ------------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Return (scores, ids) of shape (n_queries, k), only among `allowed` ids if given; missing → id -1.

        With a filter, IVF probes more lists (nprobe / share of vectors allowed, at most all of them), so
        about as many allowed vectors are compared as without one.
        """
        k = max(1, min(k, self.size)) if self.size else 1
        # `selector` stays referenced until the search returns: SWIG does not keep it alive for `params`.
        selector = None if allowed is None else faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        params: faiss.SearchParameters | None = None
        if self.kind == "ivf":
            params = faiss.SearchParametersIVF()
            params.nprobe = self.probes(None if allowed is None else len(allowed))
        elif selector is not None:
            params = faiss.SearchParameters()
        if selector is not None and params is not None:
            params.sel = selector
        # One OpenMP thread: a query or two scans 10k-1M vectors in a few ms, and spinning up the team costs
        # more than it saves — on a busy machine ~20x more (bench/ask.py). Applies to the calling thread.
        faiss.omp_set_num_threads(1)
        scores, ids = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k, params=params)
        del selector
        return scores, ids

    def candidates(self, k: int) -> int:
        """How many to ask `search` for when k are wanted: 8-bit scores are approximate, so SQ8 returns
        ⌈RESCORE_FACTOR·k⌉ for the caller to score again with the exact vectors (the store keeps them)."""
        return math.ceil(k * RESCORE_FACTOR) if self.quantize == "sq8" else k

    def probes(self, allowed: int | None = None) -> int:
        """IVF lists searched when `allowed` vectors (None: all) may be returned."""
        nlist = self.nlist
        if allowed is None or allowed >= self.size:
            return min(self.nprobe, nlist)
        return min(nlist, math.ceil(self.nprobe * self.size / max(allowed, 1)))


def _describe(index: faiss.Index, dimension: int) -> tuple[Kind, Quantize]:
    """(kind, quantize) of a FAISS index; ValueError for anything this module did not write."""
    if index.d != dimension or index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise ValueError(f"expected an inner-product index of dimension {dimension}, got dimension {index.d}")
    if isinstance(index, faiss.IndexIDMap | faiss.IndexIDMap2):
        inner = faiss.downcast_index(index.index)
        if type(inner) is faiss.IndexFlatIP or type(inner) is faiss.IndexFlat:
            return "flat", "none"
        if isinstance(inner, faiss.IndexScalarQuantizer) and _is_sq8(inner.sq):
            return "flat", "sq8"
    elif isinstance(index, faiss.IndexIVFScalarQuantizer) and _is_sq8(index.sq):
        return "ivf", "sq8"
    elif type(index) is faiss.IndexIVFFlat:
        return "ivf", "none"
    raise ValueError(f"not a citeqa vector index: {type(index).__name__}")


def _is_sq8(sq: faiss.ScalarQuantizer) -> bool:
    return bool(sq.qtype == faiss.ScalarQuantizer.QT_8bit)


def _new_sq8(dimension: int) -> faiss.IndexScalarQuantizer:
    index = faiss.IndexScalarQuantizer(dimension, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    _widen_sq_range(index.sq)
    return index


def _widen_sq_range(sq: faiss.ScalarQuantizer) -> None:
    sq.rangestat = faiss.ScalarQuantizer.RS_minmax
    sq.rangestat_arg = SQ_RANGE_MARGIN


def _sample(vectors: np.ndarray, at_most: int) -> np.ndarray:
    """A seeded sample of at most `at_most` rows (all of them when there are fewer)."""
    if len(vectors) <= at_most:
        return vectors
    rows = np.sort(np.random.default_rng(_SEED).choice(len(vectors), at_most, replace=False))
    return np.ascontiguousarray(vectors[rows])


@contextlib.contextmanager
def _all_threads() -> Iterator[None]:
    """Training and adding use every core; searches set one thread again themselves."""
    before = faiss.omp_get_max_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    faiss.omp_set_num_threads(cores)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)
