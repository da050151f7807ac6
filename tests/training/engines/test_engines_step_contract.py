"""MRBP is not Memformer's alone: a model written here, knowing nothing of Memformer, that
implements the step contract (``training/engines/step_contract.py``) gets BPTT's gradients from
MRBP and gradient checkpointing in float64.

The model is a memory-token LM in the style of the Recurrent Memory Transformer (Bulatov et al.
2022): M learned memory vectors are prepended to each segment; the segment's tokens read them and
the earlier tokens through one causal attention block; when the segment is complete the memory
vectors attend to themselves and the whole segment, and their outputs are the next segment's
memory. Unlike Memformer, a segment's tokens are predicted from the memory entering that segment
(there is no encoder context), so the test also shows the engines assume nothing of how the
state is read.

Shape legend: B batch, N tokens in a call, T tokens in a segment (<= L), L segment length,
M memory vectors, X memory + tokens, D width, V vocabulary.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torch_memformer.training.engines import backward_window

SEGMENT = 4
BATCH = 3
VOCAB = 13


@dataclasses.dataclass(frozen=True)
class TokenMemoryConfig:
    vocab_size: int = VOCAB
    segment_len: int = SEGMENT
    num_memory: int = 2
    d_model: int = 8


@dataclasses.dataclass(frozen=True)
class TokenMemoryState:
    memory: torch.Tensor  # (B, M, D) the memory vectors entering the current segment
    tokens: torch.Tensor  # (B, L) the current segment's tokens so far (first `position` meaningful)
    position: torch.Tensor  # (B,) int64
    started: torch.Tensor  # (B,) bool

    def replace(self, **changes: torch.Tensor) -> "TokenMemoryState":
        return dataclasses.replace(self, **changes)

    def detach(self) -> "TokenMemoryState":
        return TokenMemoryState(**{f.name: getattr(self, f.name).detach() for f in dataclasses.fields(self)})


@dataclasses.dataclass(frozen=True)
class Output:
    logits: torch.Tensor
    state: TokenMemoryState
    loss: torch.Tensor | None


class TokenMemoryLM(nn.Module):
    """Implements the step contract: ``config.segment_len``, ``state_class``, ``init_state``,
    ``advance``, ``predict`` and ``forward``; nothing else is asked of it."""

    state_class = TokenMemoryState

    def __init__(self, config: TokenMemoryConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.embedding = nn.Embedding(config.vocab_size + 1, d)  # last row: BOS
        self.positions = nn.Parameter(0.3 * torch.randn(config.segment_len + 1, d))
        self.initial_memory = nn.Parameter(torch.randn(config.num_memory, d))
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.Tanh(), nn.Linear(2 * d, d))
        # Used only when writing the memory: it gets a gradient only through a later segment's
        # loss, so a non-zero gradient shows the engines carried one across segments.
        self.write = nn.Linear(d, d)
        self.head = nn.Linear(d, config.vocab_size)

    # ------------------------------------------------------------------ the step contract

    def init_state(self, batch_size: int, *, device: torch.device | str | None = None) -> TokenMemoryState:
        with torch.no_grad():
            memory_BMD = self.initial_memory.expand(batch_size, -1, -1).clone()
        return TokenMemoryState(
            memory=memory_BMD.to(device),
            tokens=torch.zeros(batch_size, self.config.segment_len, dtype=torch.long, device=device),
            position=torch.zeros(batch_size, dtype=torch.long, device=device),
            started=torch.zeros(batch_size, dtype=torch.bool, device=device),
        )

    def forward(self, input_ids, state=None, labels=None, reset=None) -> Output:
        state = self._begin(input_ids, state, reset)
        logits, state = self._walk(input_ids, state, offset=1, want_state=True)
        loss = None
        if labels is not None:
            targets = labels[:, 1:].reshape(-1)
            total = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), targets, reduction="sum")
            loss = total / (targets != -100).sum().clamp(min=1)
        return Output(logits=logits, state=state, loss=loss)

    def predict(self, input_ids, *, state=None, reset=None) -> torch.Tensor:
        logits, _ = self._walk(input_ids, self._begin(input_ids, state, reset), offset=0, want_state=False)
        return logits

    def advance(self, input_ids, *, state=None, reset=None) -> TokenMemoryState:
        _, state = self._walk(input_ids, self._begin(input_ids, state, reset), offset=None, want_state=True)
        return state

    # ------------------------------------------------------------------ the model

    def _block(self, x_BXD: torch.Tensor, visible_XX: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x_BXD).chunk(3, dim=-1)
        scores_BXX = q @ k.transpose(1, 2) / q.size(-1) ** 0.5
        x_BXD = x_BXD + self.out(scores_BXX.masked_fill(~visible_XX, float("-inf")).softmax(-1) @ v)
        return x_BXD + self.mlp(x_BXD)

    def _read(self, memory_BMD: torch.Tensor, prefix_BT: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, T + 1, D) for [BOS, prefix] after the memory: output i predicts
        prefix[:, i]. Memory sees memory; token i sees the memory and tokens <= i."""
        m, t = memory_BMD.size(1), prefix_BT.size(1) + 1
        bos_B1 = prefix_BT.new_full((prefix_BT.size(0), 1), self.config.vocab_size)
        tokens_BTD = self.embedding(torch.cat([bos_B1, prefix_BT], dim=1)) + self.positions[:t]
        visible_XX = torch.ones(m + t, m + t, dtype=torch.bool).tril(0)
        visible_XX[:, :m] = True
        visible_XX[:m, m:] = False
        return self._block(torch.cat([memory_BMD, tokens_BTD], dim=1), visible_XX)[:, m:]

    def _write(self, memory_BMD: torch.Tensor, segment_BL: torch.Tensor) -> torch.Tensor:
        """The next memory (B, M, D): the memory vectors read themselves and the whole segment."""
        m, length = memory_BMD.size(1), segment_BL.size(1)
        tokens_BLD = self.embedding(segment_BL) + self.positions[1 : length + 1]
        visible_XX = torch.ones(m + length, m + length, dtype=torch.bool)
        hidden_BMD = self._block(torch.cat([memory_BMD, tokens_BLD], dim=1), visible_XX)[:, :m]
        return torch.tanh(self.write(hidden_BMD))

    def _begin(self, input_ids, state, reset) -> TokenMemoryState:
        """Fresh and reset rows restart from the (trained) initial memory."""
        if state is None:
            state = self.init_state(input_ids.size(0), device=input_ids.device)
        fresh_B = ~state.started if reset is None else ~state.started | reset
        state = TokenMemoryState(
            memory=torch.where(fresh_B.view(-1, 1, 1), self.initial_memory, state.memory),
            tokens=state.tokens.masked_fill(fresh_B.view(-1, 1), 0),
            position=state.position.masked_fill(fresh_B, 0),
            started=torch.ones_like(state.started),
        )
        if not bool((state.position == state.position[0]).all()):
            raise ValueError("this test model reads rows at one in-segment position only")
        return state

    def _walk(self, input_ids_BN, state, *, offset, want_state):
        """Like Memformer's walk over the segments a call touches: ``offset`` 1 predicts the
        token after each input (forward), 0 each input itself (predict), None nothing (advance)."""
        length = self.config.segment_len
        p, n = int(state.position[0]), input_ids_BN.size(1)
        memory_BMD, known_end = state.memory, p + n
        last_segment = (known_end - 1) // length
        if offset is not None:
            first_pred, last_pred = p + offset, p + n - 1 + offset
            last_segment = max(last_segment, last_pred // length)
        hidden, segment_BT, consumed = [], state.tokens[:, :p], 0
        for s in range(last_segment + 1):
            start = s * length
            take = max(0, min(start + length, known_end) - max(start, p))
            new_BT = input_ids_BN[:, consumed : consumed + take]
            consumed += take
            segment_BT = torch.cat([segment_BT, new_BT], dim=1) if s == 0 else new_BT
            if offset is not None:
                lo, hi = max(first_pred - start, 0), min(last_pred - start, length - 1)
                if lo <= hi:
                    hidden.append(self._read(memory_BMD, segment_BT[:, :hi])[:, lo : hi + 1])
            if segment_BT.size(1) == length and (want_state or s < last_segment):
                memory_BMD, segment_BT = self._write(memory_BMD, segment_BT), input_ids_BN[:, :0]
        logits = None if offset is None else self.head(torch.cat(hidden, dim=1))
        if not want_state:
            return logits, None
        position = segment_BT.size(1)
        return logits, TokenMemoryState(
            memory=memory_BMD,
            tokens=F.pad(segment_BT, (0, length - position)),
            position=torch.full_like(state.position, position),
            started=state.started,
        )


def make_model() -> TokenMemoryLM:
    torch.manual_seed(0)
    return TokenMemoryLM(TokenMemoryConfig()).double()


def run(model: nn.Module, method: str, input_ids: torch.Tensor, **kwargs):
    model.zero_grad(set_to_none=True)
    result = backward_window(model, input_ids, method=method, **kwargs)
    grads = {name: torch.zeros_like(p) if p.grad is None else p.grad.clone() for name, p in model.named_parameters()}
    return result, grads


def test_the_walk_is_one_computation() -> None:
    """Requirement 3 of the contract, so the engines' equality below is about the engines: the
    three views agree, and reading a stream in pieces equals reading it at once."""
    model = make_model()
    ids = torch.randint(0, VOCAB, (BATCH, 11))
    whole = model(ids)
    assert torch.allclose(whole.logits[:, :-1], model.predict(ids)[:, 1:], atol=1e-12)
    assert torch.allclose(model.advance(ids).memory, whole.state.memory, atol=1e-12)
    first = model(ids[:, :5])
    second = model(ids[:, 5:], state=first.state)
    assert torch.allclose(torch.cat([first.logits, second.logits], dim=1), whole.logits, atol=1e-12)


@pytest.mark.parametrize("length", [1, 3, 4, 6, 9, 13])
@pytest.mark.parametrize("case", ["fresh", "mid_segment_start", "resets_and_padding"])
def test_mrbp_and_checkpoint_gradients_equal_bptt(length: int, case: str) -> None:
    model = make_model()
    torch.manual_seed(1)
    ids = torch.randint(0, VOCAB, (BATCH, length))
    kwargs = {}
    if case == "mid_segment_start":
        with torch.no_grad():  # rows 3 tokens into their segment: the window's chunks are 1, 4, 4, ...
            kwargs["state"] = model(torch.randint(0, VOCAB, (BATCH, 7))).state
    if case == "resets_and_padding":
        reset = torch.zeros(BATCH, length, dtype=torch.bool)
        reset[1, 0] = True
        reset[2, SEGMENT :: SEGMENT * 2] = True  # restarts fall on segment starts
        labels = ids.clone()
        labels[0, length // 2 :] = -100
        kwargs.update(reset=reset, labels=labels)

    reference, reference_grads = run(model, "bptt", ids, **kwargs)
    for method in ("mrbp", "checkpoint"):
        result, grads = run(model, method, ids, **kwargs)
        assert torch.allclose(result.loss, reference.loss, rtol=0, atol=1e-12), method
        assert torch.equal(result.num_targets, reference.num_targets)
        for name, grad in reference_grads.items():
            assert torch.allclose(grads[name], grad, rtol=0, atol=1e-10), (method, name)
        for field in ("memory", "tokens", "position", "started"):
            assert torch.allclose(
                getattr(result.state, field).double(), getattr(reference.state, field).double(), atol=1e-12
            ), (method, field)
    # Not vacuous: once a later segment is scored, the write weights get a gradient, which can
    # only come back through the carried memory.
    position = 3 if case == "mid_segment_start" else 0
    if position + length > SEGMENT:
        assert float(reference_grads["write.weight"].abs().max()) > 1e-6
    else:
        assert float(reference_grads["write.weight"].abs().max()) == 0.0


def test_a_model_without_the_contract_is_refused_by_name() -> None:
    model = make_model()
    model.predict = None  # an instance attribute hides the method
    with pytest.raises(TypeError, match="TokenMemoryLM lacks predict"):
        backward_window(model, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="state must be a TokenMemoryState"):
        backward_window(make_model(), torch.zeros(2, 4, dtype=torch.long), state=object())
