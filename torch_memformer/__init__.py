"""torch-memformer: Memformer (Wu et al., arXiv 2010.06891) in PyTorch.

    >>> import torch, torch_memformer
    >>> model = torch_memformer.Memformer(torch_memformer.MemformerConfig(d_model=64, num_heads=4))
    >>> out = model(torch.randint(0, 256, (2, 100)))
    >>> out.logits.shape, out.state.memory.shape
    (torch.Size([2, 100, 256]), torch.Size([2, 32, 64]))
"""

from .config import MemformerConfig
from .model import GenerationOutput, Memformer, MemformerOutput, MemformerState

__version__ = "0.1.0"

__all__ = ["GenerationOutput", "Memformer", "MemformerConfig", "MemformerOutput", "MemformerState", "__version__"]
