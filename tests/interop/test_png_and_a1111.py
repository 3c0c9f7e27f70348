"""PNGs that carry a graph: ComfyUI's `workflow`/`prompt` chunks and A1111's `parameters` text."""
from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from interop_expected import unet_params
from nodeforge.core.errors import WorkflowFileError
from nodeforge.interop import A1111, COMFY_API, COMFY_WORKFLOW, NODEFORGE, read_workflow

DATA = Path(__file__).resolve().parent / "data"


def png(path, **text):
    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    Image.new("RGB", (8, 8), (200, 30, 30)).save(path, pnginfo=info)
    return path


def test_a_comfyui_png_opens_its_workflow_with_the_layout(tmp_path, read):
    workflow = (DATA / "all-nodes-0.4.json").read_text()
    prompt = (DATA / "all-nodes-api.json").read_text()
    imported = read(png(tmp_path / "ComfyUI_00001_.png", prompt=prompt, workflow=workflow))
    assert imported.format == COMFY_WORKFLOW
    assert imported.workflow.ui["positions"]["8"] == [1160.0, 0.0]
    assert imported.workflow.nodes["22"].params["seed"] == 1234
    assert imported.workflow.source == tmp_path / "ComfyUI_00001_.png"


def test_a_png_with_only_the_prompt_opens_the_prompt(tmp_path, read):
    imported = read(png(tmp_path / "api.png", prompt=(DATA / "all-nodes-api.json").read_text()))
    assert imported.format == COMFY_API and len(imported.workflow.nodes) == 29


def test_a_broken_workflow_chunk_falls_back_to_the_prompt(tmp_path, read):
    imported = read(png(tmp_path / "half.png", workflow="{not json", prompt=(DATA / "all-nodes-api.json").read_text()))
    assert imported.format == COMFY_API


def test_a_nodeforge_png_is_still_a_nodeforge_workflow(tmp_path, read):
    from nodeforge.core.workflow import Workflow

    wf = Workflow()
    wf.add("EmptyLatent", {"width": 64, "height": 64, "batch_size": 1})
    from nodeforge.core.png_text import version_chunks

    imported = read(png(tmp_path / "nf.png", workflow=wf.dumps(), parameters="a cat\nSteps: 20", **version_chunks()))
    assert imported.format == NODEFORGE and imported.warnings == []
    assert imported.workflow.nodes["1"].params["width"] == 64


A1111_TEXT = """a red circle on a blue background <lora:shapes-star:0.8>, (masterpiece:1.2) <lora:detail/add_detail:0.5:0.25>
Negative prompt: blurry, lowres
Steps: 24, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 1234567, Size: 64x96, Model hash: 6ce0161689, \
Model: v1-5-pruned-emaonly, Clip skip: 2, Lora hashes: "shapes-star: 1234abcd, add_detail: 99aa", Version: v1.10.1"""


def test_an_a1111_png_becomes_the_txt2img_graph_with_two_loras(tmp_path, read, registry):
    imported = read(png(tmp_path / "00001-1234567.png", parameters=A1111_TEXT))
    assert imported.format == A1111
    nodes = imported.workflow.nodes
    assert [n.type for n in nodes.values()] == ["CheckpointLoader", "LoRALoader", "LoRALoader", "CLIPSetLastLayer",
                                                "TextEncoder", "TextEncoder", "EmptyLatent", "UNetDenoise",
                                                "VAEDecode", "SaveImage"]
    assert nodes["1"].params == {"checkpoint": "v1-5-pruned-emaonly"}
    assert nodes["2"].params == {"lora": "shapes-star", "strength_unet": 0.8, "strength_clip": 0.8}
    assert nodes["2"].inputs == {"unet": ("1", "unet"), "clip": ("1", "clip")}
    # <lora:name:te:unet>: the first number is the text encoder's, the second the UNet's.
    assert nodes["3"].params == {"lora": "detail/add_detail", "strength_unet": 0.25, "strength_clip": 0.5}
    assert nodes["3"].inputs == {"unet": ("2", "unet"), "clip": ("2", "clip")}
    assert nodes["4"].params == {"stop_at_layer": -2} and nodes["4"].inputs == {"clip": ("3", "clip")}
    assert nodes["5"].params == {"text": "a red circle on a blue background, (masterpiece:1.2)"}
    assert nodes["5"].inputs == {"clip": ("4", "clip")} and nodes["5"].title == "positive"
    assert nodes["6"].params == {"text": "blurry, lowres"} and nodes["6"].title == "negative"
    assert nodes["7"].params == {"width": 64, "height": 96, "batch_size": 1}
    assert nodes["8"].params == unet_params(registry, "dpmpp_2m", "karras", seed=1234567, steps=24, cfg=6.5,
                                            denoise=1.0)
    assert nodes["8"].inputs == {"unet": ("3", "unet"), "positive": ("5", "conditioning"),
                                 "negative": ("6", "conditioning"), "latent": ("7", "latent")}
    assert nodes["9"].inputs == {"vae": ("1", "vae"), "latent": ("8", "latent")}
    # The demo LoRA is found by its stem; the others are listed once each.
    assert [line.split(":")[0] for line in imported.warnings if line.startswith("missing")] == [
        "missing checkpoint 'v1-5-pruned-emaonly' (node 1)", "missing LoRA 'shapes-star' (node 2)",
        "missing LoRA 'detail/add_detail' (node 3)"]


def test_a1111_names_with_a_separate_schedule_type_and_hires_fix(registry):
    from nodeforge.interop import a1111

    text = ("a cat\nSteps: 20, Sampler: Euler a, Schedule type: SGM Uniform, CFG scale: 7, Seed: 3, Size: 64x64, "
            "Denoising strength: 0.45, Hires upscale: 1.5, Hires steps: 8, Hires upscaler: Latent (nearest-exact), "
            "Model: base")
    wf, warnings = a1111.to_workflow(text)
    types = {nid: n.type for nid, n in wf.nodes.items()}
    first, up, second = (nid for nid in types if types[nid] in ("UNetDenoise", "LatentUpscaleBy"))
    assert wf.nodes[first].params["sampler"] == "euler_ancestral" and wf.nodes[first].params["schedule"] == "sgm_uniform"
    assert wf.nodes[up].params == {"upscale_method": "nearest-exact", "scale_by": 1.5}
    assert wf.nodes[second].params["denoise"] == 0.45 and wf.nodes[second].params["steps"] == 8
    assert wf.nodes[second].inputs["latent"] == (up, "latent")
    assert warnings == []


@pytest.mark.parametrize("sampler,expected,warned", [
    ("Euler a", ("euler_ancestral", "normal"), False), ("DPM++ 2M Karras", ("dpmpp_2m", "karras"), False),
    ("DPM++ SDE Karras", ("dpmpp_sde", "karras"), False), ("DPM++ 2M SDE Exponential", ("dpmpp_2m_sde", "exponential"), False),
    ("DDIM", ("ddim", "ddim_uniform"), False), ("UniPC", ("uni_pc", "normal"), False), ("LMS Karras", ("lms", "karras"), False),
    ("DPM++ 2S a Karras", ("euler_ancestral", "karras"), True), ("DPM++ 3M SDE", ("dpmpp_2m_sde", "normal"), True),
    ("Mystery", ("euler", "normal"), True), ("Euler A2", ("euler_ancestral", "normal"), True)])
def test_a1111_sampler_names(sampler, expected, warned):
    from nodeforge.interop.samplers import from_a1111

    mapped, schedule = from_a1111(sampler)
    assert (mapped.name, schedule.name) == expected
    assert bool(mapped.note) == warned


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _raw_png(*chunks: bytes) -> bytes:
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + b"".join(chunks) + _chunk(b"IEND", b"")


HOSTILE = [
    (_raw_png(_chunk(b"zTXt", b"workflow\0\0" + zlib.compress(b"{" + b" " * (40 * 1024 * 1024) + b"}"))),
     "inflates to more than 16 MB"),
    (_raw_png(_chunk(b"tEXt", b"workflow\0[[[[[")), "the PNG's 'workflow' text is not a workflow"),
    (_raw_png(_chunk(b"tEXt", b"prompt\0" + json.dumps({"1": {"class_type": "X", "inputs": 4}}).encode())),
     "node 1 (X), inputs: \"inputs\" must be an object"),
    (_raw_png(_chunk(b"tEXt", b"Comment\0hello")), "this PNG holds no workflow"),
    (_raw_png()[:20], "this PNG holds no workflow"),
    (_raw_png(_chunk(b"tEXt", b"parameters\0 \n ")), "the A1111 parameters are empty"),
    (b"\x89PNG\r\n\x1a\n" + b"\xff" * 64, "this PNG holds no workflow"),
]


@pytest.mark.parametrize("data,message", HOSTILE)
def test_hostile_pngs_are_one_line_errors(tmp_path, registry, data, message):
    path = tmp_path / "x.png"
    path.write_bytes(data)
    with pytest.raises(WorkflowFileError) as caught:
        read_workflow(path, registry=registry)
    text = str(caught.value)
    assert message in text and "\n" not in text and str(path) in text


def test_a_fifo_is_refused_at_once(tmp_path, registry):
    import os

    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(WorkflowFileError, match="pipe"):
        read_workflow(fifo, registry=registry)
