"""The metadata extractor (nodeforge.core.metadata): how an image was made, found through roles.

The node types here are named unlike the built-in pack's, and so are their params ("noise_seed",
"phrase", "iterations"...): only the declared roles tell the extractor what they are.
"""
from __future__ import annotations

from nodeforge import Workflow
from nodeforge.core import metadata
from nodeforge.core.registry import Registry
from nodeforge.core.spec import Input, NodeSpec, Output, Param
from nodeforge.core.types import FileKind, InputRole, ParamRole


def _run(ctx, **kw):
    return {}


REGISTRY = Registry([
    NodeSpec("Loader", "t", _run, params=(Param.string("weights", "base.safetensors", file=FileKind.CHECKPOINT),),
             outputs=(Output("net", "MODEL"), Output("text_model", "CLIP"))),
    NodeSpec("Adapter", "t", _run, inputs=(Input("net", "MODEL"), Input("text_model", "CLIP")),
             params=(Param.string("adapter", "", file=FileKind.LORA),
                     Param.float("weight", 1.0, role=ParamRole.LORA_STRENGTH),
                     Param.float("text_weight", 1.0)),
             outputs=(Output("net", "MODEL"), Output("text_model", "CLIP"))),
    NodeSpec("Words", "t", _run, inputs=(Input("text_model", "CLIP"),),
             params=(Param.string("phrase", "", multiline=True, role=ParamRole.PROMPT),
                     Param.string("note", "not a prompt", multiline=True)),
             outputs=(Output("cond", "CONDITIONING"),)),
    NodeSpec("Region", "t", _run, inputs=(Input("cond", "CONDITIONING"),),
             params=(Param.int("w", 8),), outputs=(Output("cond", "CONDITIONING"),)),
    NodeSpec("Guide", "t", _run,   # carries both prompts, as a ControlNet does; negative declared first
             inputs=(Input("minus", "CONDITIONING", role=InputRole.NEGATIVE),
                     Input("plus", "CONDITIONING", role=InputRole.POSITIVE)),
             outputs=(Output("plus", "CONDITIONING"), Output("minus", "CONDITIONING"))),
    NodeSpec("Canvas", "t", _run,
             params=(Param.int("across", 64, role=ParamRole.WIDTH), Param.int("down", 32, role=ParamRole.HEIGHT),
                     Param.int("count", 1, role=ParamRole.BATCH_SIZE)),
             outputs=(Output("lat", "LATENT"),)),
    NodeSpec("Enlarge", "t", _run, inputs=(Input("lat", "LATENT"),),
             params=(Param.int("across", 0, role=ParamRole.WIDTH), Param.int("down", 0, role=ParamRole.HEIGHT)),
             outputs=(Output("lat", "LATENT"),)),
    NodeSpec("Sampler", "t", _run,
             inputs=(Input("net", "MODEL"), Input("lat", "LATENT"),
                     Input("wanted", "CONDITIONING", role=InputRole.POSITIVE),
                     Input("unwanted", "CONDITIONING", role=InputRole.NEGATIVE)),
             params=(Param.int("noise_seed", 3, min=0, max=999, role=ParamRole.SEED),
                     Param.int("iterations", 20, role=ParamRole.STEPS),
                     Param.float("guidance", 7.0, role=ParamRole.CFG),
                     Param.choice("method", ("euler", "heun"), role=ParamRole.SAMPLER),
                     Param.choice("spacing", ("default", "karras"), role=ParamRole.SCHEDULE),
                     Param.float("amount", 1.0, role=ParamRole.DENOISE),
                     Param.int("seed", 5)),   # named "seed" but not declared one: an ordinary number
             outputs=(Output("lat", "LATENT"),)),
    NodeSpec("Decode", "t", _run, inputs=(Input("lat", "LATENT"),), outputs=(Output("img", "IMAGE"),)),
    NodeSpec("Keep", "t", _run, inputs=(Input("img", "IMAGE"),), output_node=True),
])


def txt2img(loras: int = 2) -> tuple[Workflow, str]:
    wf = Workflow()
    wf.add("Loader", {"weights": "models/dream-v2.safetensors"}, node_id="load")
    model = "load"
    for i in range(loras):   # each adapter takes both the model and the text model of the one before
        wf.add("Adapter", {"adapter": f"style{i}.safetensors", "weight": 0.5 + i},
               {"net": (model, "net"), "text_model": (model, "text_model")}, node_id=f"a{i}")
        model = f"a{i}"
    wf.add("Words", {"phrase": "a red fox"}, {"text_model": (model, "text_model")}, node_id="pos", title="fox")
    wf.add("Region", {}, {"cond": ("pos", "cond")}, node_id="area")
    wf.add("Words", {"phrase": "blurry"}, {"text_model": (model, "text_model")}, node_id="neg")
    wf.add("Canvas", {"across": 96, "count": 4}, node_id="canvas")
    wf.add("Sampler", {"noise_seed": 41, "iterations": 12, "guidance": 4.5, "method": "heun", "amount": 0.6},
           {"net": (model, "net"), "lat": ("canvas", "lat"), "wanted": ("area", "cond"),
            "unwanted": ("neg", "cond")}, node_id="sample")
    wf.add("Decode", {}, {"lat": ("sample", "lat")}, node_id="decode")
    wf.add("Keep", {}, {"img": ("decode", "img")}, node_id="keep")
    return wf, "keep"


def test_the_extractor_reads_every_setting_by_its_declared_role():
    wf, out = txt2img()
    info = metadata.generation_info(wf, REGISTRY, out)
    assert info.sampler_node == "sample" and info.seed_param == "noise_seed"
    assert (info.seed, info.steps, info.cfg, info.sampler, info.schedule, info.denoise) == (41, 12, 4.5, "heun", "default", 0.6)
    assert (info.prompt, info.prompt_node) == ("a red fox", "pos")      # through the area node
    assert (info.negative, info.negative_node) == ("blurry", "neg")
    assert (info.width, info.height, info.batch_size) == (96, 32, 4)   # Canvas's own default height
    assert info.model == "models/dream-v2.safetensors"
    # In the order applied, each once although each adapter feeds the next through two wires.
    assert info.loras == (metadata.LoraUse("style0.safetensors", 0.5), metadata.LoraUse("style1.safetensors", 1.5))
    assert info.params["seed"] == 5 and info.params["noise_seed"] == 41   # every sampler param, defaults filled


def test_item_i_of_a_batch_has_seed_plus_i_wrapping_past_the_declared_maximum():
    wf, out = txt2img()
    assert metadata.generation_info(wf, REGISTRY, out, index=3).seed == 44
    assert metadata.generation_info(wf, REGISTRY, out).for_item(2).seed == 43
    wf.nodes["sample"].params["noise_seed"] = 998
    assert [metadata.generation_info(wf, REGISTRY, out, i).seed for i in range(3)] == [998, 999, 0]


def test_the_nearest_sampler_upstream_of_the_output_is_the_one_described():
    # Hires fix: sample -> Enlarge -> a second sampler with its own prompt, seed and strength.
    wf, out = txt2img(loras=0)
    wf.add("Words", {"phrase": "a red fox, detailed"}, {"text_model": ("load", "text_model")}, node_id="pos2")
    wf.add("Enlarge", {"across": 192, "down": 0}, {"lat": ("sample", "lat")}, node_id="big")
    wf.add("Sampler", {"noise_seed": 7, "amount": 0.4},
           {"net": ("load", "net"), "lat": ("big", "lat"), "wanted": ("pos2", "cond")}, node_id="second")
    wf.nodes["decode"].inputs["lat"] = ("second", "lat")
    info = metadata.generation_info(wf, REGISTRY, out)
    assert (info.sampler_node, info.seed, info.denoise, info.prompt) == ("second", 7, 0.4, "a red fox, detailed")
    assert info.negative == "" and info.negative_node is None          # its negative input is empty
    assert (info.width, info.height) == (192, None)   # 0 keeps the aspect ratio: not a size
    assert info.batch_size == 4 and info.loras == ()


def test_a_graph_without_a_declared_seed_has_no_sampler_to_describe():
    wf = Workflow()
    wf.add("Canvas", {}, node_id="c")
    wf.add("Decode", {}, {"lat": ("c", "lat")}, node_id="d")
    wf.add("Keep", {}, {"img": ("d", "img")}, node_id="k")
    assert metadata.generation_info(wf, REGISTRY, "k") == metadata.GenerationInfo()
    assert metadata.generation_info(wf, REGISTRY, "missing") == metadata.GenerationInfo()


def test_unknown_nodes_links_to_missing_nodes_and_cycles_do_not_stop_the_walk():
    wf, out = txt2img(loras=1)
    wf.nodes["a0"].type = "SomePackNotLoaded"       # no spec: its wires carry no declared types
    wf.nodes["neg"].inputs["text_model"] = ("nowhere", "text_model")
    wf.nodes["area"].inputs["loop"] = ("area", "cond")
    info = metadata.generation_info(wf, REGISTRY, out)
    assert (info.seed, info.prompt, info.negative) == (41, "a red fox", "blurry")
    assert info.model is None and info.loras == ()     # the walk along MODEL wires stops at the unknown node


def test_seed_params_are_the_params_declared_as_seeds_whatever_their_names():
    wf, _ = txt2img()
    assert metadata.seed_params(wf, REGISTRY) == [("sample", "noise_seed")]


def test_a_seed_role_needs_a_whole_number_param():
    import pytest

    with pytest.raises(ValueError, match="seed must be an INT"):
        NodeSpec("Bad", "t", _run, params=(Param.float("s", 0.0, role=ParamRole.SEED),))


def test_roles_are_part_of_the_declaration_everyone_reads():
    spec = REGISTRY["Sampler"]
    assert spec.param_with(ParamRole.SEED).name == "noise_seed"
    assert spec.input_with(InputRole.NEGATIVE).name == "unwanted"
    data = spec.to_json()
    assert data["params"][0]["role"] == "seed" and "role" not in data["params"][-1]
    assert data["inputs"][2]["role"] == "positive" and "role" not in data["inputs"][0]
    # A file param is a model reference (or an image path) by its file kind alone.
    assert REGISTRY["Loader"].params[0].role is ParamRole.MODEL
    assert Param.string("picture", file=FileKind.IMAGE).role is ParamRole.IMAGE_PATH


def test_a_node_carrying_both_prompts_is_passed_through_on_each_prompts_own_side():
    wf, out = txt2img(loras=0)
    wf.add("Guide", {}, {"minus": ("neg", "cond"), "plus": ("area", "cond")}, node_id="guide")
    wf.nodes["sample"].inputs.update(wanted=("guide", "plus"), unwanted=("guide", "minus"))
    info = metadata.generation_info(wf, REGISTRY, out)
    assert (info.prompt, info.negative) == ("a red fox", "blurry")


def test_a_sampler_split_into_noise_guider_sampler_and_sigmas_reads_its_settings_from_its_parts():
    """ComfyUI's custom sampling (the pack's nodes): the seed is RandomNoise's, cfg and the prompts
    CFGGuider's, the stepping method SamplerSelect's, steps and schedule BasicScheduler's."""
    from nodeforge.core.registry import load_registry

    registry = load_registry(entry_points=False)
    wf = Workflow()
    wf.add("CheckpointLoader", {"checkpoint": "base.safetensors"}, node_id="ckpt")
    wf.add("TextEncoder", {"text": "a red circle"}, {"clip": ("ckpt", "clip")}, node_id="pos")
    wf.add("TextEncoder", {"text": "blurry"}, {"clip": ("ckpt", "clip")}, node_id="neg")
    wf.add("EmptyLatent", {"width": 64, "height": 48, "batch_size": 2}, node_id="empty")
    wf.add("RandomNoise", {"seed": 77}, node_id="noise")
    wf.add("CFGGuider", {"cfg": 6.5}, {"unet": ("ckpt", "unet"), "positive": ("pos", "conditioning"),
                                        "negative": ("neg", "conditioning")}, node_id="guider")
    wf.add("SamplerSelect", {"sampler": "dpmpp_2m"}, node_id="select")
    wf.add("BasicScheduler", {"schedule": "karras", "steps": 12, "denoise": 0.8}, {"unet": ("ckpt", "unet")},
           node_id="sched")
    wf.add("SamplerCustomAdvanced", {}, {"noise": ("noise", "noise"), "guider": ("guider", "guider"),
                                         "sampler": ("select", "sampler"), "sigmas": ("sched", "sigmas"),
                                         "latent": ("empty", "latent")}, node_id="sca")
    wf.add("VAEDecode", {}, {"vae": ("ckpt", "vae"), "latent": ("sca", "output")}, node_id="dec")
    wf.add("SaveImage", {"prefix": "x"}, {"image": ("dec", "image")}, node_id="save")
    info = metadata.generation_info(wf, registry, "save", index=1)
    assert (info.sampler_node, info.seed, info.seed_param, info.steps, info.cfg, info.sampler, info.schedule,
            info.denoise) == ("sca", 78, "seed", 12, 6.5, "dpmpp_2m", "karras", 0.8)
    assert (info.prompt, info.negative, info.width, info.height, info.batch_size, info.model) == \
        ("a red circle", "blurry", 64, 48, 2, "base.safetensors")
