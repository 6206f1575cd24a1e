"""One typed configuration flowing from the CLI to training, evaluation and prediction.

A :class:`Config` is read from YAML (``yaml.safe_load`` only), overridden by
``section.key=value`` arguments from the command line (:func:`apply_overrides`; every
command takes them, and its flags are shorthands for them), checked against the
dataclass types when it is loaded (``Literal`` fields name their choices), and saved
into each run folder.
"""

from .loading import (
    apply_overrides,
    config_from_dict,
    config_path,
    flatten,
    given,
    is_override,
    load_config,
    recipe_summary,
    recipes,
    split_overrides,
    with_input_normalisation,
)
from .schema import (
    RETIRED_KEYS,
    Amp,
    Backbone,
    Config,
    ConfigError,
    DataConfig,
    EvalConfig,
    Head,
    ModelConfig,
    OptimConfig,
    OptimName,
    Schedule,
    TorchvisionBackbone,
    TrainConfig,
    Upsample,
    size_hw,
)

__all__ = [
    "RETIRED_KEYS",
    "Amp",
    "Backbone",
    "Config",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "Head",
    "ModelConfig",
    "OptimConfig",
    "OptimName",
    "Schedule",
    "TorchvisionBackbone",
    "TrainConfig",
    "Upsample",
    "apply_overrides",
    "config_from_dict",
    "config_path",
    "flatten",
    "given",
    "is_override",
    "load_config",
    "recipe_summary",
    "recipes",
    "size_hw",
    "split_overrides",
    "with_input_normalisation",
]
