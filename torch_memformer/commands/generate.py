"""``memformer generate``: continue a prompt with a trained model, printing text as it comes.

    memformer generate --checkpoint runs/quickstart --prompt "def main(" --max-new-tokens 300

A stream can be kept in a state file and continued later (``state_file.py``):

    memformer generate --checkpoint runs/q --prompt "$(cat notes.txt)" --max-new-tokens 0 --state-out notes.state
    memformer generate --checkpoint runs/q --state-in notes.state --prompt "Summary:" --state-out notes.state
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._terminal import TextOut, add_raw_argument

NAME = "generate"
HELP = "sample a continuation of --prompt from a checkpoint, printed as it is produced"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="a checkpoint directory, or a run directory (its latest checkpoint)")
    parser.add_argument("--prompt", required=True, help="the text to continue (at least one character)")
    parser.add_argument("--max-new-tokens", type=int, default=200, help="tokens to sample (default 200)")
    parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    parser.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens")
    parser.add_argument("--top-p", type=float, default=None, help="sample from the smallest set holding this mass")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the sample (default 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads for PyTorch (default: the idle cores, by the load average; 0: one per core)")
    parser.add_argument("--no-echo", action="store_true", help="print only the continuation, not the prompt")
    parser.add_argument("--state-in", type=Path, default=None,
                        help="continue the stream saved in this state file (--state-out of an earlier run of the "
                             "same model); the prompt is read after it")
    parser.add_argument("--state-out", type=Path, default=None,
                        help="write the stream's state after the prompt and the new tokens to this file "
                             "(with --max-new-tokens 0: read the prompt into a state without generating)")
    add_raw_argument(parser)


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import load_model
    from ..errors import UserError
    from ..generate import generate_text
    from ..model.generation import check_sampling
    from ..runs import resolve_checkpoint
    from ..state_file import load_state, save_state
    from ..training.precision import resolve_device
    from ._threads import set_threads

    _check_sampling_flags(args)
    check_sampling(args.max_new_tokens, args.temperature, args.top_k, args.top_p)
    set_threads(args.threads)
    if not args.prompt:
        raise UserError("--prompt is empty; give at least one character to continue from")
    loaded = load_model(resolve_checkpoint(args.checkpoint), device=resolve_device(args.device))
    if loaded.tokenizer is None:
        raise UserError(f"checkpoint {loaded.directory} has no tokenizer files; cannot turn text into token ids")
    state = None
    if args.state_in is not None:
        state = load_state(args.state_in, model=loaded.model, tokenizer=loaded.tokenizer)
        if state.batch_size != 1:
            raise UserError(f"{args.state_in} holds {state.batch_size} streams; generate continues one")
    pieces = generate_text(loaded.model, loaded.tokenizer, args.prompt, max_new_tokens=args.max_new_tokens,
                           temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                           state=state)
    out = TextOut(raw=args.raw)
    if not args.no_echo:
        out.write(args.prompt)
    while True:
        try:
            piece = next(pieces)
        except StopIteration as stop:  # the generator returns the state after every token
            state = stop.value
            break
        out.write(piece)
        out.flush()
    out.write("\n")
    if args.state_out is not None:
        save_state(args.state_out, state, model=loaded.model, tokenizer=loaded.tokenizer)
    return 0


def _check_sampling_flags(args: argparse.Namespace) -> None:
    """The sampling flags' bounds, in the flags' own names (the library's ``check_sampling`` names
    its Python arguments, which a command-line user never typed)."""
    from ..errors import UserError

    if args.max_new_tokens < 0:
        raise UserError(f"--max-new-tokens must be >= 0, got {args.max_new_tokens}")
    if not args.temperature >= 0:  # also refuses nan
        raise UserError(f"--temperature must be >= 0 (0 means greedy), got {args.temperature}")
    if args.top_k is not None and args.top_k < 1:
        raise UserError(f"--top-k must be >= 1, got {args.top_k}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise UserError(f"--top-p must be in (0, 1], got {args.top_p}")
    if not -(2**63) <= args.seed < 2**64:  # what torch.Generator.manual_seed takes
        raise UserError(f"--seed must fit in 64 bits (from -2**63 to 2**64 - 1), got {args.seed}")
