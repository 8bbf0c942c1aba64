"""Stage 2: a byte-level BPE CLIP tokenizer whose merges make every caption word one token, and
a small ``CLIPTextModel`` pre-trained to name a caption's subject, colour and key colour."""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import texgen

from pixelkiln_server.backends.tiny_random import bytes_to_unicode

from .data import Pool, batches
from .recipe import Recipe, Report, log

BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def learn_merges(counts: Counter[str]) -> list[tuple[str, str]]:
    """Byte-pair merges learnt from word counts until every word is a single token.

    Ties go to the lexicographically larger pair, so the result is deterministic."""
    enc = bytes_to_unicode()
    words: dict[tuple[str, ...], int] = {}
    for word, count in counts.items():
        chars = [enc[b] for b in word.encode("utf-8")]
        chars[-1] += "</w>"
        key = tuple(chars)
        words[key] = words.get(key, 0) + count
    merges: list[tuple[str, str]] = []
    while True:
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, count in words.items():
            for a, b in zip(symbols, symbols[1:]):  # noqa: B905
                pairs[(a, b)] += count
        if not pairs:
            return merges
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append(best)
        merged: dict[tuple[str, ...], int] = {}
        for symbols, count in words.items():
            out: list[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + count
        words = merged


def tokenizer_files() -> dict[str, str]:
    """vocab.json and merges.txt of the tokenizer (deterministic): every byte symbol, its
    end-of-word form, the learnt merges and the two specials."""
    merges = learn_merges(texgen.word_counts())
    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [s + "</w>" for s in symbols]
    seen = set(tokens)
    for a, b in merges:
        if a + b not in seen:
            tokens.append(a + b)
            seen.add(a + b)
    tokens += [BOS, EOS]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    return {
        "vocab.json": json.dumps(vocab, ensure_ascii=False),
        "merges.txt": "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges),
    }


def build_tokenizer(max_tokens: int) -> Any:
    """A CLIP tokenizer (byte-level BPE) whose merges make every caption word one token."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory(prefix="pixelkiln-tok-") as tmp:
        for name, text in tokenizer_files().items():
            (Path(tmp) / name).write_text(text, "utf-8")
        return CLIPTokenizer.from_pretrained(
            tmp, model_max_length=max_tokens, local_files_only=True
        )


def build_text_encoder(r: Recipe, tokenizer: Any) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=r.text_hidden,
            intermediate_size=r.text_ffn,
            projection_dim=r.text_hidden,
            num_hidden_layers=r.text_layers,
            num_attention_heads=r.text_heads,
            max_position_embeddings=r.max_tokens,
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )


def tokenize(tokenizer: Any, captions: list[str]) -> Any:
    return tokenizer(
        captions,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


def train_text(
    r: Recipe, pool: Pool, tokenizer: Any, report: Report, deadline: float | None
) -> Any:
    """Pre-train the text encoder to name a caption's subject, colour and key colour (from the
    mean of its token states), so the UNet starts from informative embeddings."""
    import torch

    torch.manual_seed(r.seed + 2)
    encoder = build_text_encoder(r, tokenizer)
    names = {
        "subject": list(texgen.SUBJECTS),
        "colour": list(texgen.COLOUR_NAMES),
        "key": ["", "green", "magenta", "blue", "other"],
    }
    heads = torch.nn.ModuleDict(
        {k: torch.nn.Linear(r.text_hidden, len(v)) for k, v in names.items()}
    )
    params = list(encoder.parameters()) + list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=r.text_lr, weight_decay=0.01)
    ids = tokenize(tokenizer, pool.captions)
    targets = {
        "subject": torch.tensor([names["subject"].index(s) for s in pool.subjects]),
        "colour": torch.tensor([names["colour"].index(c) for c in pool.colours]),
        "key": torch.tensor([names["key"].index(k) for k in pool.keys]),
    }
    rng = np.random.default_rng([r.seed, 2])
    order = batches(rng, len(pool.captions), min(r.text_batch, len(pool.captions)))
    t0, done, loss_value = time.perf_counter(), 0, float("nan")
    for step in range(r.text_steps):
        if deadline is not None and time.monotonic() > deadline:
            report.cut_short = True
            break
        idx = torch.from_numpy(next(order))
        states = encoder(ids[idx]).last_hidden_state
        mask = (ids[idx] != tokenizer.pad_token_id).float()
        mask[:, 0] = 1.0
        pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        loss = torch.stack(
            [torch.nn.functional.cross_entropy(heads[k](pooled), targets[k][idx]) for k in names]
        ).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = loss.item()
        done = step + 1
    report.add("text", done, done * r.text_batch, time.perf_counter() - t0, loss_value)
    log(f"  text encoder: {done} steps, loss {loss_value:.4f}")
    return encoder
