"""Word-level tokenizers built offline from a world's vocabulary (no hub download).

Wrapped in `PreTrainedTokenizerFast` and saved with `save_pretrained`, so a tiny model directory
is loaded back by the same `AutoTokenizer.from_pretrained(dir)` call that loads a real checkpoint.
"""
from __future__ import annotations

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_word_tokenizer(vocabulary: list[str], extra_tokens: list[str] = (), max_length: int = 32):
    """Ids: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, then `extra_tokens`, then the words."""
    tokens = SPECIAL_TOKENS + [t for t in extra_tokens if t not in SPECIAL_TOKENS]
    tokens += [w for w in vocabulary if w not in tokens]
    vocab = {token: index for index, token in enumerate(tokens)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        bos_token="[CLS]",
        eos_token="[SEP]",
        model_max_length=max_length,
    )
