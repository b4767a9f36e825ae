"""Saving the fine-tuned NER model for optkit: TorchScript (``model.pt``) and ``torch.export``
(``model.pt2``) programs taking ``(input_ids, attention_mask, token_type_ids)`` int64
``(batch, sequence)`` and returning float32 logits ``(batch, sequence, labels)``, each embedding
``optkit/model_info.json`` and the Hugging Face config/tokenizer files as extra files, each checked
against the eager model (max abs diff < :data:`ATOL`) on shapes other than the trace shape.

Used by ``build_ner_minilm.py``; torch is imported inside the functions.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

INPUT_NAMES = ["input_ids", "attention_mask", "token_type_ids"]
OUTPUT_NAMES = ["logits"]
HF_EXTRA_FILES = ["config.json", "tokenizer.json", "tokenizer_config.json"]
HF_OPTIONAL_EXTRA_FILES = ["special_tokens_map.json"]
ATOL = 1e-4


def logits_wrapper(model):
    """``model`` (a HF token classifier) in an nn.Module taking explicit tensors, returning logits."""
    import torch

    class LogitsOnly(torch.nn.Module):
        """Token-classification model returning only its logits tensor."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    return LogitsOnly(model).eval()


def example_inputs(batch: int, sequence: int, vocab_size: int, seed: int):
    """Random int64 ``(batch, sequence)`` inputs; every row after the first has trailing padding."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1000, vocab_size, (batch, sequence), generator=generator)
    attention_mask = torch.ones(batch, sequence, dtype=torch.long)
    for row in range(1, batch):
        attention_mask[row, max(1, sequence - 3 * row) :] = 0
    token_type_ids = torch.zeros(batch, sequence, dtype=torch.long)
    return input_ids, attention_mask, token_type_ids


def check_close(name: str, candidate, reference, shapes, vocab_size: int) -> None:
    """Raise RuntimeError unless ``candidate`` matches ``reference`` within ATOL on ``shapes``."""
    import torch

    for batch, sequence in shapes:
        args = example_inputs(batch, sequence, vocab_size, seed=batch * 1000 + sequence)
        with torch.inference_mode():
            diff = (candidate(*args) - reference(*args)).abs().max().item()
        print(f"  {name} vs eager on ({batch}, {sequence}): max abs diff {diff:.2e}")
        if not diff < ATOL:
            raise RuntimeError(f"{name} differs from eager on ({batch}, {sequence}): {diff}")


def extra_files(hf_dir: Path) -> dict[str, str]:
    """Extra files embedded in model.pt / model.pt2: ``optkit/model_info.json`` (task, I/O names,
    dynamic axes) and ``optkit/hf/<name>`` for the HF config and tokenizer files."""
    axes = {"0": "batch", "1": "sequence"}
    info = {
        "task": "token-classification",
        "input_names": INPUT_NAMES,
        "output_names": OUTPUT_NAMES,
        "dynamic_axes": {name: dict(axes) for name in INPUT_NAMES + OUTPUT_NAMES},
    }
    extra = {"optkit/model_info.json": json.dumps(info)}
    for name in HF_EXTRA_FILES + HF_OPTIONAL_EXTRA_FILES:
        path = hf_dir / name
        if name in HF_EXTRA_FILES or path.is_file():
            extra[f"optkit/hf/{name}"] = path.read_text(encoding="utf-8")
    return extra


def save_torchscript(wrapper, path: Path, extra: dict[str, str], vocab_size: int) -> None:
    """Trace ``wrapper`` on (2, 16), check it on (3, 40) and (1, 128), save with ``extra``."""
    import torch

    with torch.inference_mode():
        traced = torch.jit.trace(wrapper, example_inputs(2, 16, vocab_size, seed=0), check_trace=False)
    check_close("TorchScript", traced, wrapper, [(3, 40), (1, 128)], vocab_size)
    torch.jit.save(traced, str(path), _extra_files=extra)


def save_exported(wrapper, path: Path, extra: dict[str, str], vocab_size: int) -> None:
    """torch.export ``wrapper`` with dynamic batch (1-1024) and sequence (2-512), save, reload, check."""
    import torch

    batch = torch.export.Dim("batch", min=1, max=1024)
    sequence = torch.export.Dim("sequence", min=2, max=512)
    dynamic = {name: {0: batch, 1: sequence} for name in INPUT_NAMES}
    program = torch.export.export(wrapper, example_inputs(2, 16, vocab_size, seed=0), dynamic_shapes=dynamic)
    torch.export.save(program, str(path), extra_files=extra)
    reloaded = torch.export.load(str(path)).module()
    check_close("torch.export", reloaded, wrapper, [(3, 40)], vocab_size)


def verify_extras(out: Path, extra: dict[str, str]) -> None:
    """Check the embedded ``model_info.json`` reads back via ``torch.jit.load`` and, in both
    archives, as a zip entry; raise RuntimeError otherwise."""
    import torch

    wanted = {"optkit/model_info.json": ""}
    torch.jit.load(str(out / "model.pt"), _extra_files=wanted)
    loaded = wanted["optkit/model_info.json"]  # comes back as bytes
    if isinstance(loaded, bytes):
        loaded = loaded.decode("utf-8")
    if loaded != extra["optkit/model_info.json"]:
        raise RuntimeError("model.pt: model_info.json did not round-trip via jit.load")
    for name in ("model.pt", "model.pt2"):
        with zipfile.ZipFile(out / name) as archive:
            entries = [n for n in archive.namelist() if "/extra/" in n or n.startswith("extra/")]
            info = [n for n in entries if n.endswith("extra/optkit/model_info.json")]
            if len(info) != 1 or archive.read(info[0]).decode() != extra["optkit/model_info.json"]:
                raise RuntimeError(f"{name}: optkit/model_info.json not found in zip")
        print(f"  {name} extra entries: {entries}")


def save_all(model, hf_dir: Path, out: Path) -> None:
    """Write ``out/model.pt`` and ``out/model.pt2`` from the eager ``model`` (already saved, with
    its tokenizer, in ``hf_dir``) and verify their extras."""
    extra = extra_files(hf_dir)
    wrapper = logits_wrapper(model)
    vocab_size = model.config.vocab_size
    print("saving TorchScript and torch.export programs", flush=True)
    save_torchscript(wrapper, out / "model.pt", extra, vocab_size)
    save_exported(wrapper, out / "model.pt2", extra, vocab_size)
    verify_extras(out, extra)
