"""Ladder models renamed because their old names claimed training data they never saw.

Every ladder model is trained on MNIST digits; the ResNet-18s at 32 px and 224 px see them resized and
channel-tiled, not CIFAR-10 or ImageNet. Published result files are immutable, so the report maps the old
names to the new ones when it reads them (``rename``); the ladder accepts the old names too (``canonical``).
"""
from __future__ import annotations

# old name -> honest name (input size and width; the architecture's stem is in the description)
RENAMED: dict[str, str] = {
    "resnet18_cifar_w32": "resnet18_32px_halfwidth",
    "resnet18_cifar": "resnet18_32px",
    "resnet18_imagenet": "resnet18_224px",
}
NAME_COLUMNS = ("model", "name")


def canonical(name: str) -> str:
    """The current name of a ladder model given either its current or its old name."""
    return RENAMED.get(name, name)


def rename(frame, descriptions: dict[str, str] | None = None):
    """A copy of ``frame`` with old model names replaced in its ``model`` / ``name`` columns (values only; file
    paths such as ``samples_file`` keep pointing at the files on disk). ``descriptions`` (new name -> text)
    replaces the ``description`` of renamed rows, whose old text may name the data set too."""
    if frame is None or not len(frame):
        return frame
    cols = [c for c in NAME_COLUMNS if c in frame.columns]
    if not any(frame[c].isin(list(RENAMED)).any() for c in cols):
        return frame
    out = frame.copy()
    for c in cols:
        hit = out[c].isin(list(RENAMED))
        if descriptions and "description" in out.columns:
            new = out.loc[hit, c].map(RENAMED)
            out.loc[hit, "description"] = new.map(lambda n: descriptions.get(n)).fillna(out.loc[hit, "description"])
        out[c] = out[c].replace(RENAMED)
    return out
