"""Links to the Python, PyTorch and NumPy docs that need no network at build time.

Intersphinx downloads each project's ``objects.inv`` when the site is built; neither this machine nor
CI can reach those sites, and a failed download is a warning (an error under ``-W``). So the build
resolves the external names our API actually shows (type hints, base classes, raised exceptions)
from this table instead. ``SEGBLOCKS_DOCS_INTERSPHINX=1`` turns on real intersphinx where the
network is reachable; this table still catches names the inventories lack (torch's internal module
paths such as ``torch.nn.modules.module.Module``).

Add a row when the API starts showing a new external type; a name missing here renders as plain
text (never a broken build).
"""

from __future__ import annotations

__all__ = ["EXTERNAL", "external_url", "normalize"]

_PY = "https://docs.python.org/3/"
_TORCH = "https://docs.pytorch.org/docs/stable/"
_NUMPY = "https://numpy.org/doc/stable/reference/"

#: Fully qualified name -> documentation URL (the anchor is the name, as in those projects' inventories).
EXTERNAL: dict[str, str] = {
    # Python
    **{n: f"{_PY}library/functions.html#{n}" for n in ("int", "float", "bool", "object", "type", "slice")},
    **{n: f"{_PY}library/stdtypes.html#{n}" for n in ("str", "list", "dict", "tuple", "set", "bytes")},
    **{n: f"{_PY}library/constants.html#{n}" for n in ("None", "True", "False", "Ellipsis")},
    **{
        n: f"{_PY}library/exceptions.html#{n}"
        for n in (
            "ValueError",
            "TypeError",
            "RuntimeError",
            "KeyError",
            "IndexError",
            "FileNotFoundError",
            "NotImplementedError",
            "ImportError",
            "AssertionError",
        )
    },
    **{
        f"collections.abc.{n}": f"{_PY}library/collections.abc.html#collections.abc.{n}"
        for n in (
            "Callable",
            "Collection",
            "Generator",
            "Iterable",
            "Iterator",
            "Mapping",
            "MutableMapping",
            "Sequence",
        )
    },
    **{
        f"typing.{n}": f"{_PY}library/typing.html#typing.{n}"
        for n in ("Any", "Literal", "Optional", "Union", "Callable", "Protocol", "NamedTuple", "TypeVar")
    },
    "abc.ABC": f"{_PY}library/abc.html#abc.ABC",
    "pathlib.Path": f"{_PY}library/pathlib.html#pathlib.Path",
    "os.PathLike": f"{_PY}library/os.html#os.PathLike",
    "logging.Logger": f"{_PY}library/logging.html#logging.Logger",
    "dataclasses.dataclass": f"{_PY}library/dataclasses.html#dataclasses.dataclass",
    # PyTorch
    "torch.Tensor": f"{_TORCH}tensors.html#torch.Tensor",
    "torch.device": f"{_TORCH}tensor_attributes.html#torch.device",
    "torch.dtype": f"{_TORCH}tensor_attributes.html#torch.dtype",
    "torch.Size": f"{_TORCH}size.html#torch.Size",
    "torch.Generator": f"{_TORCH}generated/torch.Generator.html#torch.Generator",
    "torch.nn.Module": f"{_TORCH}generated/torch.nn.Module.html#torch.nn.Module",
    "torch.nn.ModuleList": f"{_TORCH}generated/torch.nn.ModuleList.html#torch.nn.ModuleList",
    "torch.nn.ModuleDict": f"{_TORCH}generated/torch.nn.ModuleDict.html#torch.nn.ModuleDict",
    "torch.nn.Sequential": f"{_TORCH}generated/torch.nn.Sequential.html#torch.nn.Sequential",
    "torch.nn.Linear": f"{_TORCH}generated/torch.nn.Linear.html#torch.nn.Linear",
    "torch.nn.Conv2d": f"{_TORCH}generated/torch.nn.Conv2d.html#torch.nn.Conv2d",
    "torch.nn.LayerNorm": f"{_TORCH}generated/torch.nn.LayerNorm.html#torch.nn.LayerNorm",
    "torch.nn.MultiheadAttention": (
        f"{_TORCH}generated/torch.nn.MultiheadAttention.html#torch.nn.MultiheadAttention"
    ),
    "torch.nn.Parameter": f"{_TORCH}generated/torch.nn.parameter.Parameter.html#torch.nn.parameter.Parameter",
    "torch.nn.functional.interpolate": (
        f"{_TORCH}generated/torch.nn.functional.interpolate.html#torch.nn.functional.interpolate"
    ),
    "torch.optim.Optimizer": f"{_TORCH}optim.html#torch.optim.Optimizer",
    "torch.optim.AdamW": f"{_TORCH}generated/torch.optim.AdamW.html#torch.optim.AdamW",
    "torch.optim.lr_scheduler.LambdaLR": (
        f"{_TORCH}generated/torch.optim.lr_scheduler.LambdaLR.html#torch.optim.lr_scheduler.LambdaLR"
    ),
    "torch.optim.lr_scheduler.LRScheduler": (
        f"{_TORCH}generated/torch.optim.lr_scheduler.LRScheduler.html#torch.optim.lr_scheduler.LRScheduler"
    ),
    "torch.utils.data.Dataset": f"{_TORCH}data.html#torch.utils.data.Dataset",
    "torch.utils.data.DataLoader": f"{_TORCH}data.html#torch.utils.data.DataLoader",
    "torch.utils.data.IterableDataset": f"{_TORCH}data.html#torch.utils.data.IterableDataset",
    "torch.utils.data.Sampler": f"{_TORCH}data.html#torch.utils.data.Sampler",
    "torch.utils.data.DistributedSampler": (
        f"{_TORCH}data.html#torch.utils.data.distributed.DistributedSampler"
    ),
    "torch.amp.GradScaler": f"{_TORCH}amp.html#torch.amp.GradScaler",
    "torch.amp.autocast": f"{_TORCH}amp.html#torch.amp.autocast",
    # NumPy
    "numpy.ndarray": f"{_NUMPY}generated/numpy.ndarray.html#numpy.ndarray",
    "numpy.dtype": f"{_NUMPY}generated/numpy.dtype.html#numpy.dtype",
    "numpy.random.Generator": f"{_NUMPY}random/generator.html#numpy.random.Generator",
    "numpy.random.SeedSequence": (
        f"{_NUMPY}random/bit_generators/generated/numpy.random.SeedSequence.html#numpy.random.SeedSequence"
    ),
}

# Where an object's ``__module__`` differs from the path its project documents it under.
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("builtins.", ""),
    ("torch._tensor.", "torch."),
    ("torch._C.", "torch."),
    ("torch.nn.parameter.", "torch.nn."),
    ("torch.optim.optimizer.", "torch.optim."),
    ("torch.optim.adamw.", "torch.optim."),
    ("torch.optim.adam.", "torch.optim."),
    ("torch.optim.sgd.", "torch.optim."),
    ("torch.utils.data.sampler.", "torch.utils.data."),
    ("torch.utils.data.distributed.", "torch.utils.data."),
    ("torch.amp.autocast_mode.", "torch.amp."),
    ("torch.utils.data.dataset.", "torch.utils.data."),
    ("torch.utils.data.dataloader.", "torch.utils.data."),
    ("torch.amp.grad_scaler.", "torch.amp."),
    ("numpy._core.multiarray.", "numpy."),
    ("numpy.core.multiarray.", "numpy."),
    ("numpy.random._generator.", "numpy.random."),
    ("np.", "numpy."),
)


def normalize(name: str) -> str:
    """Return the documented path of ``name`` (``torch.nn.modules.conv.Conv2d`` -> ``torch.nn.Conv2d``)."""
    if name.startswith("torch.nn.modules."):  # torch.nn.modules.<file>.<Class>[.<member>]
        return "torch.nn." + ".".join(name.split(".")[4:])
    for old, new in _PREFIXES:
        if name.startswith(old):
            return new + name[len(old) :]
    return name


def external_url(name: str) -> str | None:
    """Return the URL documenting ``name`` (or the class that holds it), or ``None`` if unknown.

    A method or attribute of a known class links to the class (``torch.Tensor.float`` -> the
    ``torch.Tensor`` page), which is better than no link.
    """
    name = normalize(name)
    while name:
        if name in EXTERNAL:
            return EXTERNAL[name]
        if "." not in name:
            return None
        name = name.rsplit(".", 1)[0]
    return None
