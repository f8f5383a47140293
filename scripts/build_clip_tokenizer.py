"""Build the CLIP BPE tokenizer files (``vocab.json``, ``merges.txt``) that ship with the tiny presets.

Why: with no hub access, ``CLIPTokenizer.from_pretrained("<hub id>")`` fails (or, offline, silently returns an
empty tokenizer). The byte-level BPE that CLIP and OpenCLIP use is fully described by one public merges file,
``bpe_simple_vocab_16e6.txt.gz`` (MIT; shipped inside the ``open_clip_torch`` wheel and the original CLIP repo).
Its first 48,894 merges define the 49,408-token vocabulary:

    256 byte symbols, the same 256 with the end-of-word marker ``</w>``, one token per merge, then
    ``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407).

Usage (offline; the wheel comes from PyPI, nothing is imported from it)::

    pip download --no-deps open_clip_torch -d /tmp/oc
    unzip -o /tmp/oc/open_clip_torch-*.whl 'open_clip/bpe_simple_vocab_16e6.txt.gz' -d /tmp/oc
    python scripts/build_clip_tokenizer.py /tmp/oc/open_clip/bpe_simple_vocab_16e6.txt.gz \
        showme_i2g/assets/clip_tokenizer
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

CLIP_VOCAB_SIZE = 49408
NUM_MERGES = CLIP_VOCAB_SIZE - 2 * 256 - 2  # 48,894


def byte_symbols() -> list[str]:
    """The printable stand-ins of the 256 bytes, in CLIP's vocabulary order.

    GPT-2-style byte-level BPE maps each byte to a printable character: printable Latin-1 bytes map to
    themselves, the others to code points from 256 up. CLIP's vocabulary lists the printable bytes first
    (in byte order), then the remapped ones, so ``"a</w>"`` gets id 320 as in the released tokenizer.
    """
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    others = [b for b in range(256) if b not in set(printable)]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]


def build(bpe_gz: Path, out_dir: Path) -> None:
    lines = gzip.open(bpe_gz, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : NUM_MERGES + 1]]
    if len(merges) != NUM_MERGES or any(len(m) != 2 for m in merges):
        raise SystemExit(f"{bpe_gz} is not a CLIP BPE merges file ({len(merges)} merges read).")
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    if len(vocab) != CLIP_VOCAB_SIZE:
        raise SystemExit(f"Expected {CLIP_VOCAB_SIZE} distinct tokens, got {len(vocab)}.")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    with open(out_dir / "merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        f.writelines(f"{a} {b}\n" for a, b in merges)
    config = {"model_max_length": 77, "tokenizer_class": "CLIPTokenizer", "do_lower_case": True}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out_dir}/vocab.json ({len(vocab)} tokens) and merges.txt ({len(merges)} merges)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bpe_gz", type=Path, help="path to bpe_simple_vocab_16e6.txt.gz")
    parser.add_argument("out_dir", type=Path, help="folder to write vocab.json and merges.txt into")
    args = parser.parse_args()
    build(args.bpe_gz, args.out_dir)


if __name__ == "__main__":
    main()
