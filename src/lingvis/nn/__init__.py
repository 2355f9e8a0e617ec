"""Building blocks shared by every lingvis model family."""
from .attention import Attention
from .block import TRANSFORMER_LAYERS, Block, Branch, Modulation, register_layer_type, transformer_layers
from .builders import BlockConfig, cross_attention, mlp, norm_layer, self_attention, transformer_block
from .cache import KVCache
from .context import BlockInputs, run_blocks
from .masks import causal_mask, combine, padding_mask
from .mlp import MLP
from .norm import RMSNorm, make_norm
from .position import (LearnedPositions, Rotary, SinusoidalPositions, apply_rotary, check_rope_scaling,
                       rope_frequencies, sinusoidal_table)

__all__ = ["Attention", "Block", "Branch", "Modulation", "BlockConfig", "BlockInputs", "KVCache", "MLP", "RMSNorm",
           "TRANSFORMER_LAYERS", "make_norm", "LearnedPositions", "SinusoidalPositions", "Rotary", "apply_rotary",
           "check_rope_scaling", "rope_frequencies", "sinusoidal_table", "causal_mask", "padding_mask", "combine",
           "cross_attention", "mlp", "norm_layer", "self_attention", "transformer_block", "register_layer_type",
           "run_blocks", "transformer_layers"]
