"""The models a server offers: shipped learned models and families, and standard codecs.

Learned models come from the package's listing (:func:`jaxcodec.shipped_models`, what
``python -m jaxcodec models`` prints) and load with :func:`jaxcodec.get_codec`; a family
such as ``bmshj2017-factorized`` is one entry whose quality picks the rung. Standard codecs
come from :mod:`jaxcodec.codecs.standard`, with every quality of their scale (JPEG 1..100, WebP,
AVIF and JPEG XL 0..100). Models with a fixed input (the MNIST autoencoders and the GAN,
28×28 grey digits) are of kind ``digit``; the others take photos of any size.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Iterable

import jaxcodec
from jaxcodec import api
from jaxcodec.codecs import registry
from jaxcodec.errors import ConfigError

#: Standard codecs a server offers by default, and the ones ``/v1/compare`` measures.
STANDARD = ("jpeg", "webp", "avif", "jpegxl")
COMPARED = ("jpeg", "webp", "avif")
KINDS = ("photo", "digit", "standard")


@dataclasses.dataclass(frozen=True)
class Entry:
    """One offered model.

    Attributes:
      name: what clients pass as ``model``.
      kind: ``photo`` (learned, any size), ``digit`` (learned, a fixed ``image_shape``) or
        ``standard`` (a standard codec's own file).
      description: one line.
      qualities: the accepted qualities, lowest rate first.
      default_quality: the quality used when a request names none.
      codec: the codec object (:class:`jaxcodec.codecs.protocol.Codec`).
      image_shape: the only ``(H, W, C)`` a ``digit`` model codes; None otherwise.
    """

    name: str
    kind: str
    description: str
    qualities: tuple[int, ...]
    default_quality: int
    codec: Any
    image_shape: tuple[int, int, int] | None = None

    def listing(self) -> dict[str, Any]:
        """The entry as ``/v1/models`` lists it."""
        out = {"name": self.name, "kind": self.kind, "description": self.description,
               "qualities": list(self.qualities), "default_quality": self.default_quality}
        if self.image_shape is not None:
            out["image_shape"] = list(self.image_shape)
        return out


def available() -> dict[str, str]:
    """Every name a server can offer → its kind before loading (``family``, ``model`` or
    ``standard``)."""
    names: dict[str, str] = {}
    for name, info in jaxcodec.shipped_models().items():
        if info["quality"] is not None:
            names[info["family"]] = "family"
        names[name] = "model"
    for name in STANDARD:
        names[name] = "standard"
    return names


def default_names() -> tuple[str, ...]:
    """What a server offers when ``--models`` is not given: every shipped family and every
    shipped model outside a family, then the standard codecs."""
    shipped = jaxcodec.shipped_models()
    families = sorted({info["family"] for info in shipped.values() if info["quality"] is not None})
    singles = sorted(name for name, info in shipped.items() if info["quality"] is None)
    return (*families, *singles, *STANDARD)


def _family_description(family: str) -> str:
    shipped = jaxcodec.shipped_models()
    members = sorted((info["quality"], info["description"]) for info in shipped.values()
                     if info["family"] == family and info["quality"] is not None)
    first = re.sub(r",?\s*quality \d+\s*$", "", members[0][1]) if members else family
    return f"{first}; quality picks one of {len(members)} models"


def standard_entry(name: str) -> Entry:
    """A standard codec with every quality of its scale."""
    plain = registry.get_codec(name)
    low, high = (int(v) for v in plain.quality_range)
    qualities = tuple(range(low, high + 1))
    codec = registry.get_codec(name, qualities=list(qualities))
    default = int(plain.qualities[len(plain.qualities) // 2])
    return Entry(name, "standard", plain.description, qualities, default, codec)


def _learned_entry(name: str, kind_hint: str) -> Entry:
    codec = jaxcodec.get_codec(name)
    qualities = tuple(int(q) for q in codec.qualities)
    shape = getattr(codec, "image_shape", None)
    kind = "digit" if shape is not None else "photo"
    shipped = jaxcodec.shipped_models()
    description = _family_description(name) if kind_hint == "family" else shipped[name]["description"]
    return Entry(name, kind, description, qualities, qualities[len(qualities) // 2], codec,
                 tuple(int(s) for s in shape) if shape is not None else None)


class Catalog:
    """The loaded entries, in the order given, and the default photo model."""

    def __init__(self, entries: Iterable[Entry]):
        self.entries = {e.name: e for e in entries}
        photos = [e.name for e in self.entries.values() if e.kind == "photo"]
        self.default = api.DEFAULT_MODEL if api.DEFAULT_MODEL in photos else (photos[0] if photos else None)

    @staticmethod
    def check_names(names: Iterable[str]) -> dict[str, str]:
        """Raises a ConfigError for a name no server can offer; returns :func:`available`."""
        known = available()
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"unknown model {unknown[0]!r} in --models; known: {', '.join(sorted(known))}")
        return known

    @classmethod
    def load(cls, names: Iterable[str] = ()) -> "Catalog":
        """Loads ``names`` (default: :func:`default_names`); an unknown name is a ConfigError."""
        names = tuple(names) or default_names()
        known = cls.check_names(names)
        return cls(standard_entry(n) if known[n] == "standard" else _learned_entry(n, known[n]) for n in names)

    def of_kind(self, *kinds: str) -> list[Entry]:
        """The entries of the given kinds, in order."""
        return [e for e in self.entries.values() if e.kind in kinds]

    def listing(self) -> dict[str, Any]:
        """``/v1/models``' body (without the limits)."""
        return {"default": self.default, "models": [e.listing() for e in self.entries.values()]}
