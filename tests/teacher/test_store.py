"""The on-disk teacher cache: chunks written as the pass goes, the index, row reads."""

from __future__ import annotations

import pytest
import torch

from layerkd.teacher.cache import shard_indices
from layerkd.teacher.store import (
    ChunkWriter,
    TeacherCache,
    load_calibration,
    save_calibration,
    write_index,
)


def _outputs(n: int, hidden: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {"scores": torch.randn(n, 5, generator=g), "user": torch.randn(n, 3, generator=g)}
    if hidden:
        out["hidden"] = torch.randn(n, 4, 6, generator=g).to(torch.bfloat16)
    return out


def _write(tmp_path, full, n_shards=3, rows=4, batch=2):
    dirs = []
    for s in range(n_shards):
        idx = shard_indices(len(full["scores"]), s, n_shards)
        w = ChunkWriter(tmp_path / f"shard{s}", rows)
        for start in range(0, len(idx), batch):  # batches, as the teacher pass yields them
            part = idx[start : start + batch]
            w.add(index=torch.tensor(part), **{k: v[part] for k, v in full.items()})
        w.close()
        dirs.append(tmp_path / f"shard{s}")
    return dirs


@pytest.mark.parametrize("hidden", [True, False])
def test_rows_read_back_bit_for_bit_in_any_order(tmp_path, hidden):
    full = _outputs(23, hidden)
    dirs = _write(tmp_path, full)
    index = write_index(dirs, tmp_path / "cache.json")
    assert index["n_train"] == 23 and index["hidden"] is hidden
    # 8 samples per shard, chunks of 4: 2 full chunks each (the last shard: 7 samples, 4 + 3)
    assert [c["rows"] for c in index["chunks"]] == [4, 4, 4, 4, 4, 3]
    assert all(len(c["sha256"]) == 16 for c in index["chunks"])
    cache = TeacherCache(tmp_path / "cache.json")
    assert len(cache) == 23
    order = [17, 0, 22, 5, 5, 9]
    for name, value in full.items():
        got = cache.rows(name, order)
        assert got.dtype == value.dtype and torch.equal(got, value[order]), name
    assert cache.shape("scores") == (23, 5)
    if not hidden:
        with pytest.raises(ValueError, match="no hidden states"):
            cache.rows("hidden", [0])


def test_index_refuses_missing_or_repeated_samples(tmp_path):
    full = _outputs(9, False)
    dirs = _write(tmp_path, full)
    with pytest.raises(ValueError, match="0..5"):
        write_index(dirs[:2], tmp_path / "cache.json")  # shard 2 missing: 6 of 9 samples
    with pytest.raises(ValueError, match="once"):
        write_index([dirs[0], dirs[0], dirs[1]], tmp_path / "cache.json")


def test_calibration_round_trip(tmp_path):
    stats = {
        "n": 3,
        "sums": {"fisher": torch.tensor([1.0, 2.0], dtype=torch.float64)},
        "rows": {"fisher": torch.rand(3, 2, dtype=torch.float64)},
        "last_states": torch.randn(3, 3, 4),
        "index": torch.tensor([0, 2, 4]),
    }
    save_calibration(tmp_path, stats)
    back = load_calibration(tmp_path)
    assert back["n"] == 3 and torch.equal(back["sums"]["fisher"], stats["sums"]["fisher"])
    assert torch.equal(back["last_states"], stats["last_states"])
    assert torch.equal(back["rows"]["fisher"], stats["rows"]["fisher"])
    assert back["index"].tolist() == [0, 2, 4]
