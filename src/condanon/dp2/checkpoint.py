"""Loading DeepPrivacy2 face-generator checkpoints, strictly.

The official files (``dp2-fdf256``, ``dp2-fdf128`` in `condanon.weights.MODELS`) live in PyTorch hub's
checkpoint folder under their official names and are checked against their md5 before loading.
Every key and shape must match the generator this package builds: a missing, unexpected or reshaped
tensor is an error, not a warning (the reference loader drops such keys silently).
"""

from __future__ import annotations

import collections
import logging
import pickle
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError, one_line, show_path
from ..weights import MODELS, load_once, model_path
from .generator import (
    CONFIGS,
    FaceGenerator,
    GeneratorConfig,
    resample_filter_ok,
    state_dict_layout,
)

log = logging.getLogger(__name__)

STATE_KEYS = ("EMA_generator", "running_average_generator", "state_dict")
"""Where a checkpoint keeps the generator's weights, in order of preference (``state_dict``: our own files)."""


def load_generator(weights: str | Path = "fdf256", config: GeneratorConfig | None = None) -> FaceGenerator:
    """Return the generator for ``weights`` (loaded once per process, eval mode, no gradients on its parameters).

    ``weights`` is an official name (``"fdf256"``, ``"fdf128"``: looked up in the torch hub cache, md5
    checked) or a path to a checkpoint file. A file's configuration comes from ``config``, else from the
    file's own ``config`` entry, else from whichever official configuration its tensors fit.

    Raises `ModelError` with what to download and where to put it when an official file is absent, and
    with the offending keys when the file does not fit the generator.
    """
    name = str(weights)
    path = checkpoint_path(weights)
    if name in CONFIGS:
        return load_once(("dp2", str(path)), lambda: _build(path, config or CONFIGS[name], trusted=True))
    trusted = any(entry.filename == path.name and entry.matches(path) for entry in MODELS.values() if entry.md5)
    return load_once(("dp2", str(path.resolve())), lambda: _build(path, config, trusted))


def checkpoint_path(weights: str | Path) -> Path:
    """Return the checkpoint file for ``weights`` without loading it: an official one md5-checked, or an existing file.

    Raises `ModelError` with what to download and where to put it when an official file is absent.
    """
    if str(weights) in CONFIGS:
        return model_path(f"dp2-{weights}")  # raises with the download instructions; checks the md5
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ModelError(
            f"DeepPrivacy2 checkpoint {show_path(path)} does not exist "
            "(give 'fdf256', 'fdf128' or the path of a checkpoint file)"
        )
    return path


def _build(path: Path, config: GeneratorConfig | None, trusted: bool) -> FaceGenerator:
    checkpoint = read_checkpoint(path, trusted)
    state, centers = generator_state(checkpoint, path)
    if config is None and isinstance(checkpoint.get("config"), dict):
        config = GeneratorConfig.from_reference(checkpoint["config"])
    if config is None:
        config = _fitting_config(state, path)
    generator = FaceGenerator(config)
    load_strict(generator, state, path)
    generator.style_net.set_centers(centers)
    generator.eval().requires_grad_(False)
    log.info(
        "loaded DeepPrivacy2 generator %s (%d px, %.1f M parameters)",
        path.name,
        config.resolution,
        generator.num_parameters() / 1e6,
    )
    return generator


def read_checkpoint(path: Path, trusted: bool = False) -> dict[str, Any]:
    """Return the checkpoint's top-level dict, always read with ``weights_only`` (tensors and plain containers).

    A file that also pickles training objects (optimiser states, the trainer's EasyDict) is refused,
    unless it is a verified official file (``trusted``): then each of those names is allow-listed for
    this one load as `_StandIn`, an inert stand-in that builds an empty dict and runs nothing of the
    file's; the names of ``os``, ``sys``, ``posix`` and ``nt`` stay blocked. The full unpickler is never used.
    """
    shown = show_path(path)
    try:
        if trusted:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
            if names:
                log.info("%s pickles %s; reading them as inert stand-ins", path.name, ", ".join(sorted(names)))
            with torch.serialization.safe_globals([(_StandIn, name) for name in names]):
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        else:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if not trusted:
            raise ModelError(
                f"{shown} holds more than tensors and is not a verified official checkpoint: {one_line(error)}"
            ) from None
        raise ModelError(f"{shown} holds objects that cannot be read safely: {one_line(error)}") from None
    except Exception as error:
        raise ModelError(f"cannot read DeepPrivacy2 checkpoint {shown}: {one_line(error)}") from None
    if not isinstance(checkpoint, dict):
        raise ModelError(
            f"{shown} is not a DeepPrivacy2 checkpoint (it holds a {type(checkpoint).__name__}, not a dict)"
        )
    return checkpoint


def generator_state(checkpoint: dict[str, Any], path: Path) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """Return the generator's flat state_dict and the optional multi-modal centres ``w_centers``."""
    state = next((checkpoint[key] for key in STATE_KEYS if isinstance(checkpoint.get(key), dict)), None)
    if state is None and checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        state = checkpoint  # a bare state_dict
    if state is None:
        raise ModelError(
            f"{show_path(path)} has no generator weights (looked for {', '.join(STATE_KEYS)} or a bare state_dict)"
        )
    state = dict(state)
    centers = state.pop("style_net.w_centers", None)
    if isinstance(checkpoint.get("w_centers"), torch.Tensor):
        centers = checkpoint["w_centers"]
    return state, centers


def layout_errors(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Return every way ``state`` does not fit ``model`` exactly (missing, unexpected, reshaped, wrong filter)."""
    expected = dict(state_dict_layout(model))
    errors = [f"missing {key}" for key in expected if key not in state]
    errors += [f"unexpected {key}" for key in state if key not in expected]
    errors += [
        f"{key} is {list(state[key].shape)}, expected {shape}"
        for key, shape in expected.items()
        if key in state and list(state[key].shape) != shape
    ]
    errors += [
        f"{key} is not the fixed FIR filter"
        for key in expected
        if key.endswith("resample_filter")
        and key in state
        and list(state[key].shape) == [4, 4]
        and not resample_filter_ok(state[key])
    ]
    return errors


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path | str = "checkpoint") -> None:
    """Load ``state`` into ``model``; raise `ModelError` naming the mismatches unless every key and shape fits."""
    errors = layout_errors(model, state)
    if errors:
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ModelError(f"{show_path(path)} does not fit the DeepPrivacy2 generator: {'; '.join(errors[:5])}{more}")
    model.load_state_dict(state, strict=True)


def _fitting_config(state: dict[str, torch.Tensor], path: Path) -> GeneratorConfig:
    for config in CONFIGS.values():
        with torch.device("meta"):
            if not layout_errors(FaceGenerator(config), state):
                return config
    raise ModelError(f"{show_path(path)} fits neither the FDF256 nor the FDF128 generator; pass its configuration")


class _StandIn:
    """Takes the place of any class or function a verified official checkpoint pickles besides tensors.

    Whether the pickle creates it (``NEWOBJ``) or calls it (``REDUCE``), the result is an empty
    ``OrderedDict`` (a type the weights-only unpickler can fill with items and attributes): nothing
    of the file's code runs, and the object is never used.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return collections.OrderedDict()
