"""Reference latents for edit models (ComfyUI's ReferenceLatent, FluxKontextMultiReferenceLatentMethod,
FluxKontextImageScale): what an edit model reads beside the prompt.

ReferenceLatent appends a latent to each entry of a prompt (`reference_latents`, a list: several
chain, in order); the model family's sampler gives each reference its own tokens in the
transformer's sequence, positioned by the prompt's `reference_latents_method`
(`reference_positions`), and keeps only the generated tokens' prediction. Families that read them
are listed in READS_REFERENCES; a prompt carrying references into any other model is refused by
the sampler (`check_reference_latents`), since it would silently draw without the image.

FluxKontextImageScale picks, of Kontext's preferred resolutions (about one megapixel, each side a
multiple of 16), the one whose aspect ratio is nearest the image's (ties: the smaller width), and
scales the image to it (Lanczos, centre-cropped to that aspect first), as ComfyUI's node and
diffusers' FluxKontextPipeline do.
"""
from __future__ import annotations

from typing import Any

from nodeforge.core.errors import NodeError

from .conditioning import entries

# (width, height): FluxKontextPipeline's PREFERRED_KONTEXT_RESOLUTIONS, ComfyUI's PREFERED_KONTEXT_RESOLUTIONS.
KONTEXT_RESOLUTIONS: tuple[tuple[int, int], ...] = (
    (672, 1568), (688, 1504), (720, 1456), (752, 1392), (800, 1328), (832, 1248), (880, 1184), (944, 1104),
    (1024, 1024), (1104, 944), (1184, 880), (1248, 832), (1328, 800), (1392, 752), (1456, 720), (1504, 688),
    (1568, 672))

# The choices of FluxKontextMultiReferenceLatentMethod; "uxo/uno" (and "uso") are stored as "uxo".
REFERENCE_METHODS = ("offset", "index", "uxo/uno", "index_timestep_zero")
DEFAULT_METHOD = "offset"     # Flux Kontext's, when no method node sets one

# The `family` of the models whose samplers read reference latents.
READS_REFERENCES = {"flux": "Flux (Kontext)", "qwenimage": "Qwen-Image (Edit)"}


def run_reference_latent(ctx: Any, conditioning: Any, latent: dict | None = None) -> dict[str, Any]:
    """Each entry of the prompt with `latent`'s samples appended to its reference latents (none linked: as it was)."""
    if latent is None:
        return {"conditioning": entries(conditioning)}
    samples = latent["samples"]
    return {"conditioning": [dict(e, reference_latents=(*e.get("reference_latents", ()), samples))
                             for e in entries(conditioning)]}


def stored_method(method: str) -> str:
    """The method as the prompt carries it (ComfyUI's spelling: 'uxo/uno' and 'uso' become 'uxo')."""
    return "uxo" if ("uxo" in method or "uso" in method) else method


def run_reference_latents_method(ctx: Any, conditioning: Any, reference_latents_method: str) -> dict[str, Any]:
    """Each entry of the prompt with the way its reference latents are placed."""
    method = stored_method(reference_latents_method)
    return {"conditioning": [dict(e, reference_latents_method=method) for e in entries(conditioning)]}


def kontext_resolution(width: int, height: int) -> tuple[int, int]:
    """The preferred Kontext (width, height) nearest in aspect ratio to width x height."""
    aspect = width / height
    _, w, h = min((abs(aspect - w / h), w, h) for w, h in KONTEXT_RESOLUTIONS)
    return w, h


def run_kontext_image_scale(ctx: Any, image: Any) -> dict[str, Any]:
    from .geometry import scale_image

    width, height = kontext_resolution(int(image.shape[2]), int(image.shape[1]))
    return {"image": scale_image(image, width, height, "lanczos", "center")}


def reference_positions(method: str, target: tuple[int, int], references: list[tuple[int, int]],
                        patch: int = 2) -> list[tuple[float, int, int]]:
    """(index, row offset, column offset) of each reference's first token, the offsets in tokens (patches of
    `patch` latent pixels), for a generated latent of `target` (h, w) and references of those (h, w):

    - offset (Kontext's own): index 1; each further reference beside the ones before (to the right when
      that keeps the placed block squarer, else below), so none overlap;
    - index: index 1, 2, 3 ... at offset 0 (each its own frame); index_timestep_zero places them the same;
    - uxo (UNO/USO): index 0, diagonally past the generated image and the references before it.
    """
    found, h, w, index = [], 0, 0, 0
    for ref_h, ref_w in references:
        if method in ("index", "index_timestep_zero"):
            index, h_off, w_off = index + 1, 0, 0
        elif method == "uxo":
            index, h_off, w_off = 0, target[0] + h, target[1] + w
            h, w = h + ref_h, w + ref_w
        else:
            index, h_off, w_off = 1, 0, 0
            if ref_h + h > ref_w + w:
                w_off = w
            else:
                h_off = h
            h, w = max(h, ref_h + h_off), max(w, ref_w + w_off)
        found.append((float(index), (h_off + patch // 2) // patch, (w_off + patch // 2) // patch))
    return found


def prompt_references(entry: dict[str, Any]) -> tuple[list[Any], str]:
    """A prompt entry's reference latents and the method that places them."""
    return list(entry.get("reference_latents", ())), entry.get("reference_latents_method", DEFAULT_METHOD)


def check_reference_latents(model: Any, positive: Any, negative: Any) -> None:
    """Refuse, in one line, a prompt with reference latents for a model whose sampler does not read them."""
    if getattr(model, "family", None) in READS_REFERENCES:
        return
    for field, conditioning in (("positive", positive), ("negative", negative)):
        if conditioning is not None and any(e.get("reference_latents") for e in entries(conditioning)):
            readers = ", ".join(READS_REFERENCES.values())
            raise NodeError(f"the {field} prompt carries reference latents (ReferenceLatent), which this "
                            f"{model.family} model cannot read; only {readers} models use them: remove ReferenceLatent "
                            "or load an edit model such as FLUX.1 Kontext", field=field)
