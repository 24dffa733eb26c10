"""Tiny random-weight models of the toolbox's real architectures, saved into a model store.

Each builder makes the transformers class the serving code loads (same
architecture, a few thousand parameters), with a processor and a small
tokenizer written here, and installs it under its store name, so the real
loading and serving code runs without any download. Their answers are
meaningless: tests check shapes, types and contracts, never accuracy.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from toolmesh_models.store import ModelStore

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "a", "the", "cat", "dog",
         "red", "car", "what", "is", "color", "?", "yes", "no", "of", "photo", "person"]  # fmt: skip
VISION = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
          "num_attention_heads": 2, "image_size": 32, "patch_size": 8}  # fmt: skip


def _transformers():  # imported lazily: only the tests that build models pay for torch
    import torch
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    return transformers


def _bert_tokenizer(t):
    return t.BertTokenizer(vocab={w: i for i, w in enumerate(WORDS)}, bos_token="[DEC]")


def _clip_tokenizer(t, folder: Path):
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {c: i for i, c in enumerate(letters)}
    vocab.update({c + "</w>": len(letters) + i for i, c in enumerate(letters)})
    for token in ("re", "red</w>", "<|startoftext|>", "<|endoftext|>"):
        vocab[token] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\nr e\nre d</w>\n")
    return t.CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))


def _clip_text_config(tokenizer) -> dict:
    end = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    return {"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 37,
            "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 16,
            "bos_token_id": tokenizer.convert_tokens_to_ids("<|startoftext|>"),
            "eos_token_id": end, "pad_token_id": end}  # fmt: skip


def _blip(architecture: str) -> Callable[[Path], None]:
    def build(folder: Path) -> None:
        t = _transformers()
        text = {"vocab_size": len(WORDS), "hidden_size": 32, "intermediate_size": 37,
                "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 64,
                "encoder_hidden_size": 32, "bos_token_id": 5, "sep_token_id": 3, "pad_token_id": 0}  # fmt: skip
        config = t.BlipConfig(
            vision_config=VISION, text_config=text, projection_dim=16, image_text_hidden_size=16
        )
        getattr(t, architecture)(config).save_pretrained(folder)
        processor = t.BlipProcessor(
            image_processor=t.BlipImageProcessor(size={"height": 32, "width": 32}),
            tokenizer=_bert_tokenizer(t),
        )
        processor.save_pretrained(folder)

    return build


def _clip(folder: Path) -> None:
    t = _transformers()
    tokenizer = _clip_tokenizer(t, folder)
    config = t.CLIPConfig(
        text_config=_clip_text_config(tokenizer), vision_config=VISION, projection_dim=16
    )
    t.CLIPModel(config).save_pretrained(folder)
    image_processor = t.CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    t.CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)


def _owlv2(folder: Path) -> None:
    t = _transformers()
    tokenizer = _clip_tokenizer(t, folder)
    # OWLv2's class head maps image embeddings to text space: projection_dim = text hidden_size.
    config = t.Owlv2Config(
        text_config=_clip_text_config(tokenizer), vision_config=VISION, projection_dim=32
    )
    t.Owlv2ForObjectDetection(config).save_pretrained(folder)
    image_processor = t.Owlv2ImageProcessor(size={"height": 32, "width": 32})
    t.Owlv2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)


def _depth(folder: Path) -> None:
    t = _transformers()
    backbone = t.Dinov2Config(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=37,
        image_size=28, patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )  # fmt: skip
    config = t.DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16, head_hidden_size=8, patch_size=14,
    )  # fmt: skip
    t.DepthAnythingForDepthEstimation(config).save_pretrained(folder)
    t.DPTImageProcessor(
        size={"height": 28, "width": 28}, keep_aspect_ratio=False, ensure_multiple_of=14
    ).save_pretrained(folder)


BUILDERS: dict[str, Callable[[Path], None]] = {
    "owlv2": _owlv2,
    "blip-vqa": _blip("BlipForQuestionAnswering"),
    "blip-caption": _blip("BlipForConditionalGeneration"),
    "blip-itm": _blip("BlipForImageTextRetrieval"),
    "clip": _clip,
    "depth": _depth,
}


def install_tiny_models(store: ModelStore, names: list[str] | None = None) -> None:
    """Build and install tiny models under their store names (all of :data:`BUILDERS` by default)."""
    for name in names or list(BUILDERS):
        with tempfile.TemporaryDirectory(prefix=f"tiny-{name}-") as tmp:
            BUILDERS[name](Path(tmp))
            store.add(name, tmp, revision="tiny-random")
