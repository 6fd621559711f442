"""The teacher cache on disk: written chunk by chunk, merged into an index, read row by row.

Memory of every step that touches the cache stays flat in the number of training samples:

* ``teacher_cache`` writes each shard as a directory: ``calibration.safetensors`` (the
  calibration statistics, a few MB) and ``train-{c:05d}.safetensors`` chunks of at most
  ``teacher.cache_chunk`` training samples, each flushed as soon as it is full. A chunk holds
  ``index`` (the global training-sample ids), ``scores`` (candidate scores, fp32), ``user`` (the
  user vector, fp32) and, only when a later step needs them (``distill.w_hidden > 0`` or compact
  students initialised from the teacher), ``hidden``: the last-token output of every layer, in
  the teacher's dtype.
* ``merge_cache`` reads only the calibration files and the chunk headers and writes the index
  ``teacher/cache.json``: every chunk with its rows and its sha256 (hashed in a stream).
* Distillation reads the rows of each batch with positioned reads (``os.pread``) at the offsets
  the safetensors header gives: nothing is memory-mapped or loaded whole, so a step's resident
  memory is one batch, whatever the size of the cache.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from layerkd.io import atomic_path, write_json
from layerkd.models.checkpoint import file_digest

CALIBRATION = "calibration.safetensors"
_DTYPES = {"F32": torch.float32, "F64": torch.float64, "BF16": torch.bfloat16,
           "F16": torch.float16, "I64": torch.int64}  # fmt: skip


def _save(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))


def save_calibration(shard_dir: Path, stats: dict[str, Any]) -> None:
    """The calibration statistics of one shard (``calibration_pass`` plus ``index``)."""
    flat = {f"sums.{k}": v for k, v in stats["sums"].items()}
    flat.update({f"rows.{k}": v.contiguous() for k, v in stats.get("rows", {}).items()})
    flat.update(
        n=torch.tensor(int(stats["n"])),
        last_states=stats["last_states"],
        index=stats["index"].long(),
    )
    _save(shard_dir / CALIBRATION, flat)


def load_calibration(shard_dir: Path) -> dict[str, Any]:
    """Inverse of :func:`save_calibration`."""
    flat = load_file(str(shard_dir / CALIBRATION))
    sums = {k.split(".", 1)[1]: v for k, v in flat.items() if k.startswith("sums.")}
    rows = {k.split(".", 1)[1]: v for k, v in flat.items() if k.startswith("rows.")}
    n = int(flat["n"])
    return {"n": n, "sums": sums, "rows": rows, "last_states": flat["last_states"],
            "index": flat["index"]}  # fmt: skip


class ChunkWriter:
    """Training-sample outputs of one shard, flushed every ``rows`` samples."""

    def __init__(self, shard_dir: Path, rows: int) -> None:
        if rows < 1:
            raise ValueError(f"teacher.cache_chunk={rows} must be at least 1")
        self.dir, self.rows = shard_dir, rows
        self.buffer: dict[str, list[torch.Tensor]] = {}
        self.buffered, self.written = 0, 0
        shard_dir.mkdir(parents=True, exist_ok=True)

    def add(self, **tensors: torch.Tensor) -> None:
        """Rows of one batch (``index`` and the outputs, all with the same first dimension)."""
        for k, v in tensors.items():
            self.buffer.setdefault(k, []).append(v.detach().cpu())
        self.buffered += len(tensors["index"])
        while self.buffered >= self.rows:
            self._flush(self.rows)

    def _flush(self, n: int) -> None:
        full = {k: torch.cat(v) for k, v in self.buffer.items()}
        _save(
            self.dir / f"train-{self.written:05d}.safetensors", {k: v[:n] for k, v in full.items()}
        )
        self.buffer = {k: [v[n:]] for k, v in full.items()} if n < self.buffered else {}
        self.buffered -= n
        self.written += 1

    def close(self) -> int:
        """Write what is left; return the number of chunk files."""
        if self.buffered:
            self._flush(self.buffered)
        return self.written


def _header(path: Path) -> tuple[int, dict[str, Any]]:
    """(byte offset of the data, tensor table) of a safetensors file."""
    with open(path, "rb") as fh:
        (size,) = struct.unpack("<Q", fh.read(8))
        table = json.loads(fh.read(size))
    table.pop("__metadata__", None)
    return 8 + size, table


def write_index(shard_dirs: list[Path], index_path: Path) -> dict[str, Any]:
    """The cache index over every shard's chunks (row counts, tensors, sha256), checked: every
    training sample appears exactly once. Paths are relative to the index's directory."""
    chunks, ids = [], []
    for d in shard_dirs:
        for path in sorted(d.glob("train-*.safetensors")):
            start, table = _header(path)
            idx = _read_index(path, start, table)
            ids.append(idx)
            chunks.append(
                {
                    "file": os.path.relpath(path, index_path.parent),
                    "rows": len(idx),
                    "tensors": sorted(table),
                    "sha256": file_digest(path),
                }
            )
    all_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    n = len(all_ids)
    if n and not np.array_equal(np.sort(all_ids), np.arange(n)):
        raise ValueError(f"cache shards {shard_dirs} do not hold training samples 0..{n - 1} once")
    names = {tuple(c["tensors"]) for c in chunks}
    if len(names) > 1:
        raise ValueError(f"cache chunks hold different tensors: {sorted(names)}")
    index = {
        "n_train": n,
        "hidden": any("hidden" in c["tensors"] for c in chunks),
        "chunks": chunks,
    }
    write_json(index_path, index)
    return index


def _read_index(path: Path, start: int, table: dict[str, Any]) -> np.ndarray:
    """The global training-sample ids of one chunk."""
    lo, hi = table["index"]["data_offsets"]
    with open(path, "rb") as fh:
        fh.seek(start + lo)
        return np.frombuffer(fh.read(hi - lo), dtype=np.int64).copy()


class TeacherCache:
    """Read access to the merged teacher cache (``teacher/cache.json``), batch by batch."""

    def __init__(self, index_path: Path) -> None:
        self.path = Path(index_path)
        meta = json.loads(self.path.read_text())
        self.n, self.has_hidden = int(meta["n_train"]), bool(meta["hidden"])
        self.files: list[tuple[int, int, dict[str, Any]]] = []  # (fd, data start, table)
        self.chunk = np.zeros(self.n, dtype=np.int64)
        self.row = np.zeros(self.n, dtype=np.int64)
        for c, entry in enumerate(meta["chunks"]):
            path = self.path.parent / entry["file"]
            start, table = _header(path)
            self.files.append((os.open(path, os.O_RDONLY), start, table))
            ids = _read_index(path, start, table)
            self.chunk[ids], self.row[ids] = c, np.arange(len(ids))

    def __len__(self) -> int:
        return self.n

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of tensor ``name`` over all training samples."""
        return (self.n, *self.files[0][2][name]["shape"][1:])

    def rows(self, name: str, idx: list[int] | np.ndarray) -> torch.Tensor:
        """Rows ``idx`` (global training-sample ids, in this order) of tensor ``name``."""
        if name == "hidden" and not self.has_hidden:
            raise ValueError(
                f"{self.path}: the cache holds no hidden states (they are written only when "
                "distill.w_hidden > 0 or compact students start from the teacher): rerun "
                "teacher_cache"
            )
        out = []
        for i in np.asarray(idx, dtype=np.int64):
            fd, start, table = self.files[self.chunk[i]]
            spec = table[name]
            dtype, shape = _DTYPES[spec["dtype"]], spec["shape"]
            row_bytes = (spec["data_offsets"][1] - spec["data_offsets"][0]) // shape[0]
            at = start + spec["data_offsets"][0] + int(self.row[i]) * row_bytes
            buf = bytearray(os.pread(fd, row_bytes, at))
            out.append(torch.frombuffer(buf, dtype=dtype).reshape(1, *shape[1:]))
        return torch.cat(out) if out else torch.zeros(0, *self.shape(name)[1:])

    def close(self) -> None:
        """Close the chunk files."""
        for fd, _, _ in self.files:
            os.close(fd)
        self.files = []

    def __del__(self) -> None:
        if getattr(self, "files", None):
            self.close()


class InMemoryOutputs:
    """The :class:`TeacherCache` interface over tensors already in memory (tests, small runs):
    ``{"scores": (N, C), "hidden": (N, L, H), ...}``."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors, self.n = tensors, len(tensors["scores"])
        self.has_hidden = "hidden" in tensors

    def __len__(self) -> int:
        return self.n

    def rows(self, name: str, idx: list[int] | np.ndarray) -> torch.Tensor:
        """Rows ``idx`` of tensor ``name``."""
        return self.tensors[name][list(idx)]


def teacher_outputs(source: Any) -> TeacherCache | InMemoryOutputs:
    """A reader of teacher outputs: the cache index at a path, or tensors in a dict."""
    if isinstance(source, TeacherCache | InMemoryOutputs):
        return source
    if isinstance(source, dict):
        return InMemoryOutputs(source)
    return TeacherCache(Path(source))
