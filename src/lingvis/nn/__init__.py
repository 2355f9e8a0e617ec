"""Building blocks shared by every lingvis model family."""
from .attention import Attention
from .block import Block, BlockConfig
from .cache import KVCache
from .masks import causal_mask, combine, padding_mask
from .mlp import MLP
from .norm import RMSNorm, make_norm
from .position import LearnedPositions, Rotary, SinusoidalPositions, apply_rotary, sinusoidal_table

__all__ = ["Attention", "Block", "BlockConfig", "KVCache", "MLP", "RMSNorm", "make_norm", "LearnedPositions",
           "SinusoidalPositions", "Rotary", "apply_rotary", "sinusoidal_table", "causal_mask", "padding_mask",
           "combine"]
