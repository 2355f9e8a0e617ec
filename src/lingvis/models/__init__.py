"""Model families. Importing this package registers every family and its presets."""
from . import gpt  # noqa: F401
from . import bert  # noqa: F401
from . import seq2seq  # noqa: F401
from . import fusion  # noqa: F401
from . import vit, cnn, clip, image_classifier  # noqa: F401
from . import captioner  # noqa: F401  (after vit/cnn: its presets use theirs)
from . import video  # noqa: F401
from . import dit  # noqa: F401
from . import word_bag_text  # noqa: F401  (the exact-conditioning diagnostic tower)
from . import kge, scene_graph  # noqa: F401  (knowledge-graph models)
from .registry import FAMILIES, PRESETS, build, list_presets, preset_config

__all__ = ["FAMILIES", "PRESETS", "build", "list_presets", "preset_config"]
