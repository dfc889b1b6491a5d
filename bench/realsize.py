"""Real-size smoke steps on the CPU: one MultiDelete step or one GA (NegGrad) step of a real-size configuration
with random weights, built offline from its config (nothing downloaded), through the workbench's own adapters
(engine/models/*.py), methods (engine/methods/multidelete.py, neggrad.py) and AdamW (engine/loop.py's
build_optimizer); its shapes and dtypes checked and its peak resident memory growth set against
`mmul-workbench plan`'s total for the same config (engine/plan.py).

    clip-b32   CLIP ViT-B/32 at 224 px (CLIPConfig's defaults: ViT-B/32 + the 12-layer text tower), all weights
    blip-base  BlipForImageTextRetrieval with BLIP-base's sizes (BlipConfig's defaults: ViT-B/16 at 384 px +
               BERT-base with cross-attention), all weights
    qwen2-vl   Qwen2-VL-2B's language model (hidden 1536, MLP 8960, 12 heads / 2 KV heads, vocabulary 151,936,
               tied embeddings) with 2 decoder layers; its vision transformer at full width (1280, 16 heads) but
               2 blocks of 32, 448 px images (1,024 patches, 256 image tokens); LoRA r 16 on the language model
    llava-7b   LLaVA-1.5-7B's language model (Llama, hidden 4096, MLP 11008, 32 heads, vocabulary 32,064) with 2
               decoder layers; CLIP ViT-L/14 at 336 px at full width (1024, 16 heads) but 2 layers of 24 (576
               image tokens), its 2-layer GELU projector; LoRA r 16 on the language model

The LMMs' tokenizer is a word tokenizer built offline (engine/models/tokenizer.py) holding the chat markers at
the ids their configs name; the embedding tables keep their real vocabulary size. Retrieval batches are random
ids over the real vocabulary. Run one: `python bench/realsize.py NAME METHOD` (one JSON line); all:
bench/bench_realsize.py.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

METHODS = ("multidelete", "neggrad")
MULTIDELETE = {"alpha": 1.0, "beta": 1.0, "gamma": 1.0, "md_on": "similarity", "ukr_on": "df", "ukr_modalities": "both",
               "train": "all"}


def status(field: str) -> int:
    """A /proc/self/status size in bytes (VmRSS: now; VmHWM: the peak since the last reset)."""
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(field))


def reset_peak() -> int:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # VmHWM back to the current resident set
    return status("VmRSS:")


# --- the configurations ---------------------------------------------------------------------------------------
def clip_config():
    from transformers import CLIPConfig

    config = CLIPConfig()  # the defaults are ViT-B/32 at 224 px, text 512 x 12 layers, projection 512
    config.architectures = ["CLIPModel"]
    return config


def blip_config(layers: tuple[int, int] | None = None):
    """BLIP-base; `layers` (vision, text) keeps its widths and 384 px with fewer layers (tests/test_plan.py)."""
    from transformers import BlipConfig

    # the defaults are BLIP-base: ViT-B/16 at 384 px, BERT-base text encoder
    config = BlipConfig() if layers is None else BlipConfig(vision_config=dict(num_hidden_layers=layers[0]),
                                                            text_config=dict(num_hidden_layers=layers[1]))
    config.architectures = ["BlipForImageTextRetrieval"]
    return config


def llava_config(tokenizer):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    image_token = tokenizer.convert_tokens_to_ids("<image>")
    ids = dict(pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
               eos_token_id=tokenizer.eos_token_id)
    vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=2, num_attention_heads=16,
                              image_size=336, patch_size=14, projection_dim=768)
    text = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=2, num_attention_heads=32,
                       num_key_value_heads=32, vocab_size=32064, max_position_embeddings=4096, **ids)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_token, image_seq_length=576,
                         vision_feature_select_strategy="default", vision_feature_layer=-2, **ids)
    config.architectures = ["LlavaForConditionalGeneration"]
    return config


def qwen2_vl_config(tokenizer):
    from transformers import Qwen2VLConfig

    from engine.models.qwen2_vl import IMAGE_PAD, MARKERS

    marker = {token: tokenizer.convert_tokens_to_ids(token) for token in MARKERS}
    text = dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=2,
                num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768, tie_word_embeddings=True,
                rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
                pad_token_id=tokenizer.pad_token_id, bos_token_id=None, eos_token_id=marker["<|im_end|>"])
    vision = dict(depth=2, embed_dim=1280, hidden_size=1536, num_heads=16, mlp_ratio=4, patch_size=14,
                  temporal_patch_size=2, spatial_merge_size=2, in_channels=3)
    config = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=marker[IMAGE_PAD],
                           video_token_id=marker["<|video_pad|>"], vision_start_token_id=marker["<|vision_start|>"],
                           vision_end_token_id=marker["<|vision_end|>"], tie_word_embeddings=True)
    config.architectures = ["Qwen2VLForConditionalGeneration"]
    return config


WORDS = [f"w{index}" for index in range(200)]


def llava_tokenizer():
    from engine.models.llava import CHAT_TOKENS, IMAGE_TOKEN
    from engine.models.tokenizer import build_word_tokenizer

    tokenizer = build_word_tokenizer(WORDS, list(CHAT_TOKENS), max_length=2048)
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    return tokenizer


def qwen2_vl_tokenizer():
    from engine.models.qwen2_vl import CHAT_WORDS, MARKERS
    from engine.models.tokenizer import build_word_tokenizer

    tokenizer = build_word_tokenizer(WORDS, [*MARKERS, *CHAT_WORDS], max_length=2048)
    tokenizer.add_special_tokens({"additional_special_tokens": list(MARKERS)})
    tokenizer.eos_token = "<|im_end|>"
    return tokenizer


# --- adapters and batches -------------------------------------------------------------------------------------
def retrieval_rows(count: int, vocab: int, length: int, image_size: int, generator) -> dict:
    return {"pixel_values": torch.randn(count, 3, image_size, image_size, generator=generator),
            "input_ids": torch.randint(1000, vocab, (count, length), generator=generator),
            "attention_mask": torch.ones(count, length, dtype=torch.long),
            "image_index": torch.arange(count)}


def build_retrieval(name: str, config, forget: int, retain: int):
    from engine.models.blip import BlipRetrievalAdapter
    from engine.models.clip import ClipAdapter

    generator = torch.Generator().manual_seed(0)
    if name == "clip-b32":
        from transformers import CLIPModel

        adapter = ClipAdapter(CLIPModel(config), None, None, "random CLIP ViT-B/32")
        vocab, length, size = config.text_config.vocab_size, 32, config.vision_config.image_size
    else:
        from transformers import BlipForImageTextRetrieval

        adapter = BlipRetrievalAdapter(BlipForImageTextRetrieval(config), None, None, "random BLIP-base")
        vocab, length, size = config.text_config.vocab_size, 35, config.vision_config.image_size
    rows = retrieval_rows(forget + retain, vocab, length, size, generator)
    split = lambda part: {key: value[part] for key, value in rows.items()}  # noqa: E731
    forget_batch, retain_batch = split(slice(0, forget)), split(slice(forget, forget + retain))
    retain_batch["image_index"] = torch.arange(retain)
    return adapter, forget_batch, retain_batch, length


def build_lmm(name: str, config, tokenizer, forget: int, retain: int):
    from PIL import Image

    from engine.data.people_batches import Row, encode_rows

    if name == "llava-7b":
        from transformers import CLIPImageProcessorPil, LlavaForConditionalGeneration, LlavaProcessor

        from engine.models.llava import IMAGE_TOKEN, LlavaAdapter

        processor = LlavaProcessor(image_processor=CLIPImageProcessorPil(
            size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}), tokenizer=tokenizer, patch_size=14,
            vision_feature_select_strategy="default", num_additional_image_tokens=1, image_token=IMAGE_TOKEN)
        adapter = LlavaAdapter(LlavaForConditionalGeneration(config), processor, "random LLaVA-1.5-7B shape")
        side = 336
    else:
        from transformers import Qwen2VLForConditionalGeneration
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        from engine.models.qwen2_vl import CHECKPOINT_SIDE, Qwen2VLAdapter

        image_processor = Qwen2VLImageProcessorPil(min_pixels=CHECKPOINT_SIDE**2, max_pixels=CHECKPOINT_SIDE**2,
                                                   patch_size=14, temporal_patch_size=2, merge_size=2)
        adapter = Qwen2VLAdapter(Qwen2VLForConditionalGeneration(config), tokenizer, image_processor,
                                 "random Qwen2-VL-2B shape")
        side = CHECKPOINT_SIDE
    generator = torch.Generator().manual_seed(0)
    images = [Image.fromarray(torch.randint(0, 256, (side, side, 3), dtype=torch.uint8, generator=generator).numpy())
              for _ in range(forget + retain)]
    question = " ".join(WORDS[:24]) + " ?"  # 25 question tokens and an 8-word answer
    rows = [Row(question, " ".join(WORDS[40 + i: 48 + i]), image, group) for group, (i, image) in
            enumerate(zip(range(forget + retain), images))]
    encoded = encode_rows(adapter, rows, with_text=True)
    forget_batch = encoded.batch(torch.arange(forget), "cpu")
    retain_batch = encoded.batch(torch.arange(forget, forget + retain), "cpu")
    return adapter, forget_batch, retain_batch, int(forget_batch["input_ids"].shape[1])


SIZES = {  # name: (Df batch, Dr batch, update target)
    "clip-b32": (8, 8, "full"),
    "blip-base": (2, 2, "full"),
    "qwen2-vl": (1, 1, "llm"),
    "llava-7b": (1, 1, "llm"),
}


def config_of(name: str, layers: tuple[int, int] | None = None):
    """(config, tokenizer or None) of a named configuration (`layers`: BLIP-base's vision and text layers)."""
    if name == "clip-b32":
        return clip_config(), None
    if name == "blip-base":
        return blip_config(layers), None
    tokenizer = llava_tokenizer() if name == "llava-7b" else qwen2_vl_tokenizer()
    return (llava_config if name == "llava-7b" else qwen2_vl_config)(tokenizer), tokenizer


# --- one step ---------------------------------------------------------------------------------------------------
def smoke(name: str, method: str, threads: int | None = None, layers: tuple[int, int] | None = None) -> dict:
    """One `method` step of configuration `name`: shapes, dtypes, the peak resident growth and the plan's total."""
    from engine.loop import build_optimizer
    from engine.methods.multidelete import MultiDelete
    from engine.methods.neggrad import NegGrad
    from engine.models import lora
    from engine.plan import image_tokens, plan

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    forget, retain, update = SIZES[name]
    config, tokenizer = config_of(name, layers)
    started = time.perf_counter()
    before = reset_peak()  # from here: the model, its copy, the batches, the step
    lmm = tokenizer is not None
    if lmm:
        adapter, forget_batch, retain_batch, seq_len = build_lmm(name, config, tokenizer, forget, retain)
    else:
        adapter, forget_batch, retain_batch, seq_len = build_retrieval(name, config, forget, retain)
    built = time.perf_counter()
    # the model's random init and the batches alone; its transients (Qwen2-VL's init peaks at 1.6x its weights)
    # are not a run's (from_pretrained loads weights into place), so the step's peak is counted from here, over
    # the same baseline: the weights and batches in memory, plus whatever the step takes
    build_peak = status("VmHWM:") - before
    reset_peak()
    original = adapter.frozen_copy() if method == "multidelete" else None
    trainable = lora.attach(adapter, update) if lmm else list(adapter.model.parameters())
    for parameter in trainable:
        parameter.requires_grad_(True)
    adapter.model.train()
    steps = (MultiDelete(MULTIDELETE, adapter, original, torch.Generator().manual_seed(0)) if method == "multidelete"
             else NegGrad({}, adapter))
    optimizer = build_optimizer(trainable, 1e-5, 0.05)
    first = [p.detach().clone() for p in trainable[:4]] + [trainable[-1].detach().clone()]
    step_started = time.perf_counter()
    terms = steps.losses(forget_batch, retain_batch if method == "multidelete" else None)
    terms["total"].backward()
    optimizer.step()
    step_seconds = time.perf_counter() - step_started
    peak = status("VmHWM:") - before

    checks = {term: (list(value.shape), str(value.dtype)) for term, value in terms.items()}
    assert all(shape == [] and dtype == "torch.float32" and torch.isfinite(terms[t]).all()
               for t, (shape, dtype) in checks.items()), checks
    graded = [p for p in trainable if p.grad is not None]  # CLIP's logit_scale, for one, no term reads
    assert len(graded) >= 0.9 * len(trainable) and all(
        p.dtype == torch.float32 and p.grad.shape == p.shape and p.grad.dtype == p.dtype for p in graded), \
        "the trained weights have fp32 gradients of their shapes"
    moved = [not torch.equal(a, b) for a, b in zip(first, trainable[:4] + [trainable[-1]])]
    assert any(moved), "the step moved no trained weight"
    with torch.no_grad():  # what the method's terms read, at the configuration's sizes
        adapter.model.eval()
        image = adapter.image_embed(forget_batch)
        fused = adapter.fused_embed(forget_batch)
    width = config.projection_dim if name == "clip-b32" else (
        config.vision_config.hidden_size if name == "blip-base" else config.text_config.hidden_size)
    assert image.shape == (forget, width) and image.dtype == torch.float32, (image.shape, image.dtype)
    assert fused.shape[0] == forget and fused.dtype == torch.float32, (fused.shape, fused.dtype)

    with tempfile.TemporaryDirectory() as directory:
        config.save_pretrained(directory)
        # the plan's --seq-len is the text's tokens: it adds an LMM's image tokens from the config itself
        planned = plan(directory, method, update=update, batch_size=forget, retain_batch_size=retain,
                       seq_len=seq_len - image_tokens(config))
    core = adapter.core if lmm else adapter.model
    parameters = sum(p.numel() for n, p in core.named_parameters() if "lora_" not in n)
    assert parameters == planned["parameters"], (parameters, planned["parameters"])  # the plan counts this model
    return {"config": name, "method": method, "update": update, "batch": [forget, retain if method == "multidelete"
            else 0], "seq_len": seq_len, "parameters": planned["parameters"], "trainable": planned["trainable"],
            "counted_parameters": parameters, "terms": checks, "without_gradient": len(trainable) - len(graded), "image_embed": list(image.shape),
            "fused_embed": list(fused.shape), "build_seconds": round(built - started, 2),
            "step_seconds": round(step_seconds, 2), "peak_rss_growth_bytes": peak, "build_peak_bytes": build_peak,
            "plan_total_bytes": planned["total_bytes"], "plan_bytes": planned["bytes"],
            "plan_over_measured": round(planned["total_bytes"] / peak, 3), "torch_threads": torch.get_num_threads()}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="One real-size smoke step (one JSON line); see the module docstring.")
    parser.add_argument("name", choices=list(SIZES))
    parser.add_argument("method", choices=METHODS)
    parser.add_argument("threads", nargs="?", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--layers", default=None, help="VISION,TEXT layers to build (default: the module's)")
    args = parser.parse_args()
    layers = tuple(int(n) for n in args.layers.split(",")) if args.layers else None
    print(json.dumps(smoke(args.name, args.method, args.threads, layers)))
