"""Raw data sources: which files a (source, category) needs, and loading them into tables.

Sources
-------
``synthetic``       generated 2023-format files (:mod:`layerkd.data.synthetic`).
``amazon2023``      2023 raw reviews ``{Category}.jsonl.gz`` + ``meta_{Category}.jsonl.gz``.
``amazon2023_csv``  2023 5-core benchmark ``{Category}.csv.gz`` (``.csv`` accepted) and, optionally,
                    the raw 2023 metadata for titles.
``amazon2018``      2018 5-core reviews ``{Category}_5.json.gz`` + ``meta_{Category}.json.gz``.
``amazon2018_csv``  2018 ratings only ``{Category}.csv`` + ``meta_{Category}.json.gz``.
``amazon2014``      2014 ``reviews_{Category}_5.json.gz`` + ``meta_{Category}.json.gz`` (metadata
                    lines are Python dict literals, read with ``ast.literal_eval``).
``recbole``         RecBole atomic ``{category}.inter`` + ``{category}.item``.
``local``           any format above, from a local directory: ``LoadOptions.format`` names it.

Items without metadata
----------------------
A source without metadata (e.g. the 2023 benchmark CSV alone) has no text for the LLM to read.
That is an error by default: an LLM recommender fed bare ids is a different experiment. Setting
``LoadOptions.allow_id_text`` names each item by its id (``title = text = "item <id>"``) and
records ``items_text_from_id`` in the stats, so the choice is explicit and visible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from layerkd.data import loaders, recbole
from layerkd.data.clean import build_items
from layerkd.data.readers import DEFAULT_MAX_BAD_SHARE

Loader = Callable[[Path, str, float], tuple[pd.DataFrame, pd.DataFrame | None, dict[str, Any]]]

LOADERS: dict[str, Loader] = {
    "synthetic": loaders.load_amazon2023,
    "amazon2023": loaders.load_amazon2023,
    "amazon2023_csv": loaders.load_amazon2023_csv,
    "amazon2018": loaders.load_amazon2018,
    "amazon2018_csv": loaders.load_amazon2018_csv,
    "amazon2014": loaders.load_amazon2014,
    "recbole": recbole.load_recbole_files,
}
SOURCES: tuple[str, ...] = (*LOADERS, "local")

_A23 = "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023"
_A18 = "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2"
_A14 = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles"


@dataclass(frozen=True)
class LoadOptions:
    """How raw files are read and cleaned."""

    format: str | None = None  # the format of a ``local`` source (one of ``LOADERS``)
    max_bad_share: float = DEFAULT_MAX_BAD_SHARE  # reject a file with more bad lines than this
    title_max_words: int = 24  # cap on the words of a cleaned title
    text_max_words: int = 64  # cap on the words of a fallback item text
    allow_id_text: bool = False  # without metadata, name items by id instead of failing


def _format(source: str, fmt: str | None) -> str:
    if source == "local":
        if fmt not in LOADERS:
            raise ValueError(f"source 'local' needs a format in {sorted(LOADERS)}, got {fmt!r}")
        return fmt
    if source not in LOADERS:
        raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
    return source


def raw_urls(source: str, category: str) -> list[str]:
    """The official URLs of a published source's files (same order as :func:`raw_files`)."""
    urls = {
        "amazon2023": [f"{_A23}/raw/review_categories/{category}.jsonl.gz",
                       f"{_A23}/raw/meta_categories/meta_{category}.jsonl.gz"],
        "amazon2023_csv": [f"{_A23}/benchmark/5core/rating_only/{category}.csv.gz",
                           f"{_A23}/raw/meta_categories/meta_{category}.jsonl.gz"],
        "amazon2018": [f"{_A18}/categoryFilesSmall/{category}_5.json.gz",
                       f"{_A18}/metaFiles2/meta_{category}.json.gz"],
        "amazon2018_csv": [f"{_A18}/categoryFilesSmall/{category}.csv",
                           f"{_A18}/metaFiles2/meta_{category}.json.gz"],
        "amazon2014": [f"{_A14}/reviews_{category}_5.json.gz",
                       f"{_A14}/meta_{category}.json.gz"],
    }
    if source not in urls:
        raise ValueError(f"source {source!r} has no official download URLs")
    return urls[source]


def raw_files(source: str, category: str, fmt: str | None = None) -> list[str]:
    """The file names (as published) that ``load_raw`` reads for ``(source, category)``.

    For ``amazon2023_csv`` the metadata file is listed but optional; ``local`` needs ``fmt``.
    """
    fmt = _format(source, fmt)
    if fmt == "synthetic":
        return [f"{category}.jsonl.gz", f"meta_{category}.jsonl.gz"]
    if fmt == "recbole":
        return [f"{category}.inter", f"{category}.item"]
    return [url.rsplit("/", 1)[-1] for url in raw_urls(fmt, category)]


def load_raw(
    raw_dir: Path, source: str, category: str, options: LoadOptions | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Read a source into ``(interactions, items, stats)``.

    ``interactions``: ``user_id`` (str), ``item_id`` (str), ``rating`` (float, NaN if none),
    ``timestamp`` (int64 seconds). ``items``: ``item_id, title, text`` for every metadata item with
    usable text (not only reviewed ones). ``stats``: line counts per file and cleaning counts.
    """
    options = options or LoadOptions()
    fmt = _format(source, options.format)
    inter, meta, stats = LOADERS[fmt](Path(raw_dir), category, options.max_bad_share)
    stats = {"source": source, "format": fmt, "category": category,
             "options": asdict(options), **stats, "interaction_rows": int(len(inter))}
    if meta is not None:
        items, item_stats = build_items(meta, title_max_words=options.title_max_words,
                                        text_max_words=options.text_max_words)
        stats["items"] = item_stats
    elif options.allow_id_text:
        ids = pd.Series(pd.unique(inter["item_id"]), dtype="string")
        names = "item " + ids
        items = pd.DataFrame({"item_id": ids, "title": names, "text": names})
        stats["items"] = {"items_text_from_id": int(len(items)), "items_with_text": int(len(items))}
    else:
        raise ValueError(
            f"source {source!r} category {category!r} in {raw_dir} has no item metadata, so items "
            "have no text for the LLM; add the metadata file "
            f"({', '.join(raw_files(source, category, options.format)[1:])}) or set "
            "allow_id_text to name items by their id"
        )
    return inter, items, stats
