"""``memformer demo``: build a small model, stream a text through it, generate.

A tour of the streaming API on an untrained model (so the sample is noise): the text is read in
pieces of arbitrary length, the state is carried from piece to piece, and generation continues
from that state. ``memformer train`` is the real job.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ._terminal import TextOut, add_raw_argument

NAME = "demo"
HELP = "stream a text through a small untrained Memformer and generate from its state"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text", type=Path, help="UTF-8 text file to stream (default: this module's source)")
    parser.add_argument("--piece", type=int, default=100, help="bytes per call while streaming")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    add_raw_argument(parser)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..config import MemformerConfig
    from ..errors import UserError
    from ..model import Memformer

    if args.piece < 1:
        raise UserError(f"--piece must be >= 1, got {args.piece}")
    if args.max_new_tokens < 0:
        raise UserError(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")
    path = args.text or Path(__file__)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserError(f"cannot read --text {path}: {error.strerror}") from None
    if not data:
        raise UserError(f"--text {path} is empty; give a file with some text")
    torch.manual_seed(args.seed)
    config = MemformerConfig(d_model=128, num_heads=4, d_ff=512, num_encoder_layers=2, num_decoder_layers=2,
                             num_slots=16, segment_len=64)
    model = Memformer(config).eval()
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params / 1e6:.2f}M parameters, {config.num_slots} slots x {config.d_model}, segments of "
          f"{config.segment_len} bytes")
    ids = torch.tensor(list(data), dtype=torch.long).unsqueeze(0)
    state = model.init_state(1)
    start = time.perf_counter()
    total_loss, counted = 0.0, 0
    with torch.no_grad():
        for offset in range(0, ids.size(1), args.piece):
            piece = ids[:, offset : offset + args.piece]
            out = model(piece, state=state, labels=piece)
            total_loss += float(out.loss) * (piece.size(1) - 1)
            counted += piece.size(1) - 1
            state = out.state
    elapsed = time.perf_counter() - start
    out = TextOut(raw=args.raw)  # the file name and the untrained model's sample hold any byte
    out.print(f"streamed {ids.size(1)} bytes of {path.name} in pieces of {args.piece}: "
              f"{ids.size(1) / elapsed:,.0f} bytes/s, state {state.num_bytes():,} bytes "
              f"(constant), loss {total_loss / max(counted, 1) / 0.6931:.3f} bits/byte (untrained)")
    generator = torch.Generator().manual_seed(args.seed)
    prompt = ids[:, -1:]
    sample = model.generate(prompt, args.max_new_tokens, state=state, temperature=1.0, top_k=40, generator=generator)
    text = bytes(sample.tokens[0].tolist()).decode("utf-8", errors="replace")
    print(f"generated {args.max_new_tokens} bytes from the carried state (untrained: noise):")
    out.print(text)
    return 0
