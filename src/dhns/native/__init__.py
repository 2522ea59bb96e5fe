"""CPU loops compiled from C (the `.c` files here, their thread split in `parts.h`), PyTorch the fallback.

Distance scorers. TransE's and RotatE's scores are a sum over the entity width of |difference| or a complex modulus.
PyTorch has no fused form of either. `torch.cdist(p=1)` ranks at about 2.5 G elements/s on two cores
(six sevenths of an MKG-Y evaluation), and a training step gathers, differences, reduces, recomputes and
scatters the (batch, negatives, width) candidates in a dozen passes over memory. One C loop per pair reads
each candidate row once and writes one number.

The denoiser's hidden layer. Between its two matmuls the reverse chain runs scale, bias, ReLU and a
LayerNorm over an (L, N, hidden) tensor, five passes over memory (and under bf16 autocast, casts around
each); one C pass per row does all of it in fp32 and writes fp32 or bf16.

Negatives. Filtering drawn negatives against the known triples (`negatives.c`) decides each slot in registers,
where PyTorch runs a dozen passes over (batch, negatives) tensors per redraw round.

Sparse optimizers. Row-wise Adagrad's update of the rows a batch touched (`rows.c`) reads each gradient row once
and moves its table row in the same pass, where PyTorch builds three (rows, width) temporaries.

Noise. The reverse chain's normals come from a counter-based generator (`noise.c`, Philox4x32-10 and
Box-Muller): each value is a function of its index, so the loop is split across threads and vectorised with
the same result for any thread count (`dhns.diffusion.noise` holds the PyTorch form of the same numbers).

The library is built on first use with the system's C compiler into a cache folder keyed by the source,
the flags, the compiler and the CPU (`DHNS_NATIVE_CACHE`, default `~/.cache/dhns/native`), and loaded with
ctypes: no build step at install time, no Python headers, no OpenMP runtime. Without a compiler, or with
`DHNS_NATIVE=0`, every caller keeps its PyTorch form (`available()` is False); both forms are tested
against each other. Results do not depend on the thread count (see the C file).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

Tensor = torch.Tensor
log = logging.getLogger(__name__)

FOLDER = Path(__file__).parent
SOURCES = (FOLDER / "distance.c", FOLDER / "denoiser.c", FOLDER / "noise.c", FOLDER / "negatives.c", FOLDER / "rows.c")
HEADERS = (FOLDER / "parts.h", FOLDER / "bits.h")
KINDS = {"l1": 0, "modulus": 1}
BASE_FLAGS = ("-O3", "-shared", "-fPIC", "-fopenmp-simd", "-fno-math-errno", "-ffp-contract=off", "-pthread")
TUNED_FLAGS = ("-march=native",)
_i64, _f32, _ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
SIGNATURES = {
    "dhns_gathered_distance": [ctypes.c_int, _ptr, _ptr, _ptr, _ptr, _i64, _i64, _i64, _i64, _f32, _i64],
    "dhns_gathered_distance_backward": [ctypes.c_int, _ptr, _ptr, _ptr, _ptr, _ptr, _ptr, _i64, _i64, _i64, _i64,
                                        _f32, _i64],
    "dhns_all_distance": [ctypes.c_int, _ptr, _ptr, _ptr, _i64, _i64, _i64, _f32, _i64],
    "dhns_denoiser_hidden": [ctypes.c_int, _ptr, _ptr, _ptr, _ptr, _i64, _i64, _i64, _f32, _i64],
    "dhns_denoiser_inputs": [ctypes.c_int, _ptr, _ptr, _ptr, _ptr, _ptr, _ptr, _ptr, _i64, _i64, _i64, _i64, _f32,
                             _i64],
    "dhns_normal_jump": [_ptr, _ptr, _ptr, _f32, _f32, _f32, _i64, ctypes.c_uint64, ctypes.c_uint32, _i64],
    "dhns_philox": [_ptr, _ptr, _ptr, _i64],
    "dhns_filter_negatives": [_ptr, _ptr, _ptr, _ptr, _ptr, _ptr, _ptr] + [_i64] * 8,
    "dhns_row_adagrad": [_ptr, _ptr, _ptr, _ptr, _i64, _i64, _f32, _f32, _i64],
}
RESULTS = {"dhns_gathered_distance": ctypes.c_int, "dhns_gathered_distance_backward": ctypes.c_int}  # others: none
HIDDEN_STORES = {torch.float32: 0, torch.bfloat16: 1}


def enabled_by_environment() -> bool:
    return os.environ.get("DHNS_NATIVE", "1").strip().lower() not in {"0", "false", "no", "off"}


def available() -> bool:
    """Whether the compiled loops are in use (checked per call, so `DHNS_NATIVE=0` works at any time)."""
    return enabled_by_environment() and _library() is not None


def usable(*tensors: Tensor) -> bool:
    """The C loops take contiguous-able fp32 CPU tensors; anything else goes through PyTorch."""
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors) and available()


def gathered_distance(kind: str, queries: Tensor, table: Tensor, index: Tensor, epsilon: float) -> Tensor:
    """(B, k) distance(queries[b], table[index[b, j]]) without gathering anything."""
    queries, table, index = _contiguous(queries, table, index.long())
    distances = queries.new_empty(index.shape)
    done = _library().dhns_gathered_distance(KINDS[kind], _at(queries), _at(table), _at(index), _at(distances),
                                             index.shape[0], index.shape[1], table.shape[1], table.shape[0], epsilon,
                                             _threads())
    if done != 1:
        raise IndexError(f"gathered distance: a candidate id is outside the table's {table.shape[0]} rows")
    return distances


def gathered_distance_backward(kind: str, queries: Tensor, table: Tensor, index: Tensor, grad: Tensor,
                               epsilon: float, want_queries: bool, want_table: bool) -> tuple[Tensor | None, ...]:
    """The gradients of sum(grad * gathered_distance) with respect to the queries and the table."""
    queries, table, index, grad = _contiguous(queries, table, index.long(), grad.float())
    grad_queries = torch.empty_like(queries) if want_queries else None
    grad_table = torch.empty_like(table) if want_table else None  # every row written, untouched ones as zeros
    done = _library().dhns_gathered_distance_backward(
        KINDS[kind], _at(queries), _at(table), _at(index), _at(grad), _at(grad_queries), _at(grad_table),
        index.shape[0], index.shape[1], table.shape[1], table.shape[0], epsilon, _threads())
    if done == -1:
        raise IndexError(f"gathered distance: a candidate id is outside the table's {table.shape[0]} rows")
    if done == 0:
        raise MemoryError(f"the table gradient's grouping of {index.numel()} pairs over {table.shape[0]} rows")
    return grad_queries, grad_table


def all_distance(kind: str, queries: Tensor, entities: Tensor, epsilon: float = 0.0) -> Tensor:
    """(B, N) distance of every query to every entity, with no (B, N, w) temporary."""
    queries, entities = _contiguous(queries, entities)
    out = queries.new_empty(queries.shape[0], entities.shape[0])
    _library().dhns_all_distance(KINDS[kind], _at(queries), _at(entities), _at(out), queries.shape[0],
                                 entities.shape[0], entities.shape[1], epsilon, _threads())
    return out


def hidden_usable(hidden: Tensor, addend: Tensor | None = None) -> bool:
    """`denoiser_hidden_` takes a contiguous fp32 or bf16 CPU tensor, and an addend like it."""
    return (hidden.device.type == "cpu" and hidden.dtype in HIDDEN_STORES and hidden.is_contiguous()
            and (addend is None or (addend.dtype == hidden.dtype and addend.shape == hidden.shape
                                    and addend.device == hidden.device))
            and available())


def denoiser_hidden_(hidden: Tensor, row_scale: Tensor, bias: Tensor, epsilon: float,
                     addend: Tensor | None = None) -> Tensor:
    """In place on (L, N, H) `hidden`: LayerNorm(relu((hidden + addend) * row_scale + bias)), no affine part.

    row_scale is (L, N, 1) (or anything with L * N elements), bias (L, 1, H), addend None or like hidden;
    the arithmetic is fp32.
    """
    levels, rows, width = hidden.shape
    row_scale, bias = _contiguous(row_scale.float(), bias.float())
    if row_scale.numel() != levels * rows or bias.numel() != levels * width:
        raise ValueError(f"row_scale {tuple(row_scale.shape)} and bias {tuple(bias.shape)} do not fit hidden "
                         f"{tuple(hidden.shape)}")
    if addend is not None:
        (addend,) = _contiguous(addend)
    _library().dhns_denoiser_hidden(HIDDEN_STORES[hidden.dtype], _at(hidden), _at(addend), _at(row_scale), _at(bias),
                                    levels, rows, width, epsilon, _threads())
    return hidden


def denoiser_inputs_(inputs: Tensor, x: Tensor, tau_mean: Tensor, tau_m2: Tensor, condition_mean: Tensor,
                     condition_m2: Tensor, epsilon: float) -> Tensor:
    """Writes [x - m_x, the three part-mean shifts] into the first w + 3 columns of (L, N, w + 4) `inputs` (fp32 or
    bf16, contiguous) and returns the (L, N, 1) fp32 row scale 1 / sqrt(var + eps) of LayerNorm([x, tau, c]).

    x is (L, N, w) fp32; tau_mean, tau_m2 (L, 1, 1); condition_mean, condition_m2 (L, N, 1), all fp32
    (`PreparedDenoisers._first_inputs` is the PyTorch form).
    """
    levels, rows, width = x.shape
    x, tau_mean, tau_m2, condition_mean, condition_m2 = _contiguous(x, tau_mean, tau_m2, condition_mean, condition_m2)
    row_scale = torch.empty(levels, rows, 1)
    _library().dhns_denoiser_inputs(HIDDEN_STORES[inputs.dtype], _at(inputs), _at(row_scale), _at(x), _at(tau_mean),
                                    _at(tau_m2), _at(condition_mean), _at(condition_m2), levels, rows, width,
                                    inputs.shape[-1], epsilon, _threads())
    return row_scale


def normal_jump(key: int, draw: int, like: Tensor, sigma: float, x: Tensor | None = None, a: float = 0.0,
                e: Tensor | None = None, b: float = 0.0) -> Tensor:
    """A new fp32 tensor shaped like `like`: sigma z + a x + b e, z the counter-based normals of (key, draw)
    (`dhns.diffusion.noise`); x and e, when given, are fp32 CPU tensors of that shape."""
    x, e = (None if t is None else _contiguous(t)[0] for t in (x, e))
    out = torch.empty(like.shape, dtype=torch.float32)
    _library().dhns_normal_jump(_at(out), _at(x), _at(e), a, b, sigma, out.numel(), key, draw, _threads())
    return out


def philox(counters: Tensor, keys: Tensor) -> Tensor:
    """Philox4x32-10 of (n, 4) counters under (n, 2) keys (uint32 values in int64 tensors) -> (n, 4) words."""
    counters, keys = (t.to(torch.int64).to(torch.int32).contiguous() for t in (counters, keys))  # two's complement
    out = torch.empty_like(counters)
    _library().dhns_philox(_at(counters), _at(keys), _at(out), counters.shape[0])
    return out.to(torch.int64) & 0xFFFFFFFF


def filter_negatives(positives: Tensor, corrupt_tail: Tensor, draws: Tensor, bitmap: Tensor, keys: Tensor,
                     num_entities: int, num_relations: int) -> tuple[Tensor, Tensor]:
    """Per slot of (rounds, B, k) `draws` (int64 CPU), the first draw whose corrupted triple is not a key, else the
    last one: ((B, k) entities, (B, k) bool valid). `bitmap` and sorted distinct `keys` are `KeySet`'s
    (`NegativeSampler._filter` is the PyTorch form)."""
    positives, corrupt_tail, draws, bitmap, keys = _contiguous(positives.long(), corrupt_tail.bool(), draws.long(),
                                                               bitmap.bool(), keys.long())
    rounds, batch, negatives = draws.shape
    entities = torch.empty(batch, negatives, dtype=torch.int64)
    valid = torch.empty(batch, negatives, dtype=torch.bool)
    _library().dhns_filter_negatives(_at(positives), _at(corrupt_tail), _at(draws), _at(bitmap), _at(keys),
                                     _at(entities), _at(valid), bitmap.numel(), keys.numel(), batch, negatives,
                                     rounds, num_entities, num_relations, _threads())
    return entities, valid


def row_adagrad_(table: Tensor, sums: Tensor, rows: Tensor, values: Tensor, lr: float, eps: float) -> None:
    """In place on contiguous fp32 CPU `table` (N, w) and `sums` (N,): `RowAdagrad`'s update of the distinct `rows`
    (U,) given their summed gradients `values` (U, w), in one pass (`RowAdagrad.update_rows` is the PyTorch form)."""
    if not (table.is_contiguous() and sums.is_contiguous()):
        raise ValueError("row_adagrad_ updates the table and its accumulators in place: both must be contiguous")
    rows, values = _contiguous(rows.long(), values)
    _library().dhns_row_adagrad(_at(table), _at(sums), _at(rows), _at(values), rows.numel(), table.shape[1], lr, eps,
                                _threads())


def _contiguous(*tensors: Tensor) -> tuple[Tensor, ...]:
    return tuple(t.detach().contiguous() for t in tensors)


def _at(tensor: Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


def _threads() -> int:
    return max(1, torch.get_num_threads())


@functools.lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | None:
    """Build (once per cache key) and load the library; None, with one warning, when that is impossible."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        log.warning("no C compiler found: the distance scorers and the denoiser use their PyTorch forms (slower, "
                    "same results)")
        return None
    for flags in (BASE_FLAGS + TUNED_FLAGS, BASE_FLAGS):
        try:
            return _load(_build(compiler, flags))
        except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            detail = getattr(error, "stderr", None) or error
            log.debug("building %s with %s failed: %s", _names(), " ".join(flags), detail)
    log.warning("could not build %s with %s: the PyTorch forms are used", _names(), compiler)
    return None


def _build(compiler: str, flags: tuple[str, ...]) -> Path:
    target = _cache_dir() / f"kernels-{_cache_key(compiler, flags)}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:  # same filesystem: the rename is atomic
        built = Path(scratch) / target.name
        subprocess.run([compiler, *flags, f"-I{FOLDER}", "-o", str(built), *map(str, SOURCES), "-lm"], check=True,
                       capture_output=True, text=True, timeout=120)
        os.replace(built, target)
    log.debug("built %s", target)
    return target


def _load(path: Path) -> ctypes.CDLL:
    library = ctypes.CDLL(str(path))
    for name, argtypes in SIGNATURES.items():
        function = getattr(library, name)
        function.argtypes, function.restype = argtypes, RESULTS.get(name)
    return library


def _names() -> str:
    return ", ".join(path.name for path in SOURCES)


def _cache_dir() -> Path:
    if os.environ.get("DHNS_NATIVE_CACHE"):
        return Path(os.environ["DHNS_NATIVE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dhns" / "native"


def _cache_key(compiler: str, flags: tuple[str, ...]) -> str:
    """Source, flags, compiler version and CPU: a -march=native build must not travel to another CPU."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    digest = hashlib.sha256()
    for part in (*(path.read_bytes() for path in SOURCES + HEADERS), " ".join(flags).encode(), version.encode(), _cpu_identity().encode()):
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _cpu_identity() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    wanted = ("model name", "flags", "Features", "CPU implementer", "CPU part")
    return "\n".join(sorted({line for line in lines if line.split(":")[0].strip() in wanted}))
