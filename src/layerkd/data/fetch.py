"""The ``fetch_raw`` stage: put a dataset's raw files in place.

``fetch_raw`` generates (``synthetic``), links (``local``) or downloads (every published
release, through the mirror first) the files ``load_raw`` reads, and writes ``MANIFEST.json``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from layerkd.data import synthetic
from layerkd.data.download import download_all, sha256_file
from layerkd.data.sources import raw_files, raw_urls
from layerkd.io import write_json

log = logging.getLogger(__name__)


def fetch_raw(*, manifest: Path, dataset: dict[str, Any], mirror: str | None) -> None:
    """Put the raw files of ``dataset`` (a ``datasets`` entry of the config) beside
    ``manifest`` (``data/raw/{dataset}/MANIFEST.json``), which records them."""
    out_dir = manifest.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    source, category = dataset["source"], dataset["category"]
    if source in ("synthetic", "local"):
        if source == "synthetic":
            synthetic.generate(out_dir, category, **dataset.get("synthetic", {}))
            origin = "synthetic"
        else:
            src = Path(dataset["path"])
            for name in raw_files(source, category, dataset.get("format")):
                if not (src / name).is_file():
                    raise FileNotFoundError(f"datasets[{dataset['name']}]: {src / name} not found")
                target = out_dir / name
                if target.exists() or target.is_symlink():
                    target.unlink()
                os.symlink((src / name).resolve(), target)
            origin = "local"
        files = [
            {"url": None, "file": n, "bytes": (out_dir / n).stat().st_size,
             "sha256": sha256_file(out_dir / n), "verified": False, "source": origin}
            for n in raw_files(source, category, dataset.get("format"))
        ]
        write_json(manifest, {"files": files})
        return
    base = dataset.get("base_url")
    urls = raw_urls(source, category)
    if base:
        urls = [f"{base.rstrip('/')}/{u.rsplit('/', 1)[-1]}" for u in urls]
    known = dataset.get("sha256", {})
    download_all([(u, known.get(u.rsplit("/", 1)[-1])) for u in urls], out_dir, mirror=mirror)
