"""MultiDelete steps on real-size configurations with random weights, on a CUDA device only (called by
bench/bench_engine.py): model FLOP utilisation (torch's FLOP counter over one step against the device's
peak), peak memory and steps/s, through `run_loop` (bf16 autocast, deferred reads, cached targets).

    BLIP-base retrieval (ViT-B/16 at 384 px + BERT-base), all weights trained, Df batch 16, Dr batch 64
    LLaVA-7B size (CLIP ViT-L/14 at 336 px + a 7B Llama), LoRA r=16 on the language model, Df 4, Dr 8, bf16 weights

Written for the GPU path; the CPU machine the project is developed on cannot run it.
"""
from __future__ import annotations

import time

import torch

# dense bf16 peak TFLOP/s by device name (no sparsity); the first name found in the device's name is used
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "4090": 165.0}
STEPS = 20


def peak_tflops(device: torch.device) -> float | None:
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


class Rows:
    """A set of random rows with the `len` + `.batch(indices, device)` shape the loop draws from."""

    def __init__(self, size: int, make):
        self.size, self.make = size, make
        self.rows = make(torch.arange(size))

    def __len__(self) -> int:
        return self.size

    def batch(self, indices, device) -> dict:
        return {key: value[indices].to(device) for key, value in self.rows.items()}


def blip_base(device):
    from transformers import BlipConfig, BlipForImageTextRetrieval

    from engine.models.blip import BlipRetrievalAdapter

    model = BlipForImageTextRetrieval(BlipConfig()).to(device)  # the defaults are BLIP-base at 384 px
    adapter = BlipRetrievalAdapter(model, None, None, "random BLIP-base")
    generator = torch.Generator().manual_seed(0)

    def rows(indices):
        n = len(indices)
        return {"pixel_values": torch.randn(n, 3, 384, 384, generator=generator),
                "input_ids": torch.randint(1000, 30000, (n, 35), generator=generator),
                "attention_mask": torch.ones(n, 35, dtype=torch.long), "image_index": indices.clone()}

    params = {"md_on": "similarity", "ukr_on": "df", "ukr_modalities": "both", "train": "all"}
    return adapter, Rows(256, rows), Rows(1024, rows), params, (16, 64)


def llava_7b_lora(device):
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    from engine.models import lora
    from engine.models.llava import LlavaAdapter

    vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                              image_size=336, patch_size=14, projection_dim=768)
    text = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                       vocab_size=32064)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=32000)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(device):
        model = LlavaForConditionalGeneration(config)
    torch.set_default_dtype(torch.float32)

    class Processor:  # the adapter reads only the tokenizer and image processor off it
        tokenizer = image_processor = None

    adapter = LlavaAdapter(model.eval(), Processor(), "random LLaVA-7B size")
    image_tokens, prompt, answer = adapter.n_image_tokens, 24, 8
    generator = torch.Generator().manual_seed(0)

    def rows(indices):
        n, length = len(indices), 1 + image_tokens + prompt + answer
        ids = torch.randint(3, 32000, (n, length), generator=generator)
        ids[:, 1 : 1 + image_tokens] = config.image_token_index  # the image's placeholders at the same positions
        labels = torch.full_like(ids, -100)
        labels[:, -answer:] = ids[:, -answer:]
        text_ids = torch.randint(3, 32000, (n, prompt + answer), generator=generator)
        text_labels = torch.full_like(text_ids, -100)
        text_labels[:, -answer:] = text_ids[:, -answer:]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels,
                "pixel_values": torch.randn(n, 3, 336, 336, generator=generator).to(torch.bfloat16),
                "has_image": torch.ones(n, dtype=torch.bool), "image_index": indices.clone(),
                "text_input_ids": text_ids, "text_attention_mask": torch.ones_like(text_ids), "text_labels": text_labels}

    original = adapter.frozen_copy()
    lora.attach(adapter, "llm", r=16, alpha=16.0, dropout=0.05)
    params = {"ukr_on": "df", "ukr_modalities": "image", "train": "all"}  # f_T reads the tokenizer's template
    return adapter, Rows(64, rows), Rows(256, rows), params, (4, 8), original


def measure(name: str, build, device) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    from engine.loop import LoopConfig, run_loop
    from engine.methods.multidelete import MultiDelete

    torch.cuda.reset_peak_memory_stats(device)
    built = build(device)
    adapter, forget, retain, params, (forget_batch, retain_batch) = built[:5]
    original = built[5] if len(built) > 5 else adapter.frozen_copy()
    params = {"alpha": 1.0, "beta": 1.0, "gamma": 1.0, **params}

    def steps(count: int) -> float:
        method = MultiDelete(params, adapter, original, torch.Generator().manual_seed(0))
        config = LoopConfig(lr=1e-5, epochs=1, iterates="forget", forget_batch_size=forget_batch,
                            retain_batch_size=retain_batch, max_steps=count)
        torch.cuda.synchronize(device)
        started = time.perf_counter()
        run_loop(method, forget, retain, config, lambda *_args, **_fields: None)
        torch.cuda.synchronize(device)
        return time.perf_counter() - started

    with FlopCounterMode(display=False) as counter:  # one step: its forward, backward and the original's rows
        steps(1)
    seconds = steps(STEPS)  # the cache is warm only within a run: this counts its fills as a real run does
    flops_per_step = counter.get_total_flops()
    achieved = flops_per_step * STEPS / seconds / 1e12
    peak = peak_tflops(device)
    mfu = f"{100 * achieved / peak:.1f}%" if peak else "n/a (device not in the peak table)"
    print(f"{name}: {STEPS / seconds:.2f} steps/s, {achieved:.1f} TFLOP/s, MFU {mfu}, "
          f"peak memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")


def report_real_size(device: torch.device) -> None:
    print(f"real-size configurations, random weights, on {torch.cuda.get_device_name(device)}:")
    measure("BLIP-base retrieval", blip_base, device)
    torch.cuda.empty_cache()  # BLIP's tensors went with measure's frame
    measure("LLaVA-7B size, LoRA on the LLM", llava_7b_lora, device)


if __name__ == "__main__":  # it is bench_engine.py's CUDA part, not a script of its own
    raise SystemExit("bench_cuda.py runs inside bench/bench_engine.py on a CUDA device: run "
                     "`python bench/bench_engine.py --model clip-tiny --delete 100` on a machine with a GPU")
