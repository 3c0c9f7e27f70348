"""ComfyUI's custom-sampling nodes as NodeForge declarations (torch-free; run functions in
nodes/custom_sampling.py, imported when a node first runs): noise, guider, sampler and sigmas
made apart and joined by SamplerCustom / SamplerCustomAdvanced."""
from __future__ import annotations

from nodeforge.core.spec import Input, NodeSpec, Output, Param
from nodeforge.core.types import InputRole, ParamRole, PortType

from .declare import lazy
from .schedulers import SAMPLERS, SCHEDULES

MODEL, COND, LATENT = PortType.MODEL.value, PortType.CONDITIONING.value, PortType.LATENT.value
VAE, IMAGE = PortType.VAE.value, PortType.IMAGE.value
SIGMAS, SAMPLER = PortType.SIGMAS.value, PortType.SAMPLER.value
GUIDER, NOISE = PortType.GUIDER.value, PortType.NOISE.value
SEED_MAX = 0xFFFFFFFFFFFFFFFF
CATEGORY = "sampling/custom"


def _denoise() -> Param:
    return Param.float("denoise", 1.0, min=0.0, max=1.0, step=0.01, role=ParamRole.DENOISE,
                       description="below 1: only the last part of the schedule (img2img)")


_SAMPLED = (Output("output", LATENT, description="the latent at the last sigma"),
            Output("denoised_output", LATENT, description="the clean latent the model predicted at the last step"))
_SAMPLED_TEXT = ("output: the latent at the last sigma (still noisy when the sigmas stop above 0); "
                 "denoised_output: the clean latent the model predicted at the last step.")

CUSTOM_SAMPLING_NODES: list[NodeSpec] = [
    NodeSpec(
        "SamplerSelect", CATEGORY, lazy("custom_sampling", "run_sampler_select"),
        params=(Param.choice("sampler", tuple(SAMPLERS), default="euler", role=ParamRole.SAMPLER,
                             description="the stepping method (ComfyUI's sampler_name)"),),
        outputs=(Output("sampler", SAMPLER, description="the chosen sampler, for SamplerCustom's sampler input"),),
        description="A sampler (stepping method) for SamplerCustom (ComfyUI's KSamplerSelect).",
        display_name="Sampler Select"),
    NodeSpec(
        "BasicScheduler", CATEGORY, lazy("custom_sampling", "run_basic_scheduler"),
        inputs=(Input("unet", MODEL, description="the model (its noise levels; it denoises)"),),
        params=(Param.choice("schedule", tuple(SCHEDULES), default="default", role=ParamRole.SCHEDULE,
                             description="where the steps fall on the noise levels (ComfyUI's scheduler)"),
                Param.int("steps", 20, min=1, max=10000, role=ParamRole.STEPS,
                          description="how many steps: sigmas before the final 0"),
                _denoise()),
        outputs=(Output("sigmas", SIGMAS, description="the noise levels to step through (for SamplerCustom)"),),
        description="The sigmas UNet Denoise steps through for a schedule, steps and denoise; a sampler following "
                    "them gives UNet Denoise's image.",
        display_name="Basic Scheduler"),
    NodeSpec(
        "SDTurboScheduler", CATEGORY, lazy("custom_sampling", "run_sd_turbo_scheduler"),
        inputs=(Input("unet", MODEL, description="the model (its noise levels; it denoises)"),),
        params=(Param.int("steps", 1, min=1, max=10, role=ParamRole.STEPS,
                          description="how many steps: sigmas before the final 0"), _denoise()),
        outputs=(Output("sigmas", SIGMAS, description="the noise levels to step through (for SamplerCustom)"),),
        description="SD Turbo / SDXL Turbo's sigmas: the model's at timesteps 999, 899, 799, ... then 0.",
        display_name="SD Turbo Scheduler"),
    NodeSpec(
        "AlignYourStepsScheduler", CATEGORY, lazy("custom_sampling", "run_align_your_steps_scheduler"),
        params=(Param.choice("model_type", ("SD1", "SDXL"), default="SD1",
                             description="which published schedule: SD 1.x/2.x or SDXL"),
                Param.int("steps", 10, min=1, max=10000, role=ParamRole.STEPS,
                          description="how many steps: sigmas before the final 0"), _denoise()),
        outputs=(Output("sigmas", SIGMAS, description="the noise levels to step through (for SamplerCustom)"),),
        description="NVIDIA's Align Your Steps sigmas for SD 1.x or SDXL (the published 10 steps, interpolated "
                    "log-linearly to other counts).",
        display_name="Align Your Steps Scheduler"),
    NodeSpec(
        "KarrasScheduler", CATEGORY, lazy("custom_sampling", "run_karras_scheduler"),
        params=(Param.int("steps", 20, min=1, max=10000, role=ParamRole.STEPS,
                          description="how many steps: sigmas before the final 0"),
                Param.float("sigma_max", 14.614642, min=0.0, max=5000.0, step=0.01,
                            description="the first noise level (SD 1.x/XL: 14.61)"),
                Param.float("sigma_min", 0.0291675, min=0.0, max=5000.0, step=0.01,
                            description="the last before 0 (SD 1.x/XL: 0.029)"),
                Param.float("rho", 7.0, min=0.0, max=100.0, step=0.01,
                            description="higher: more steps at low noise (Karras et al.: 7)")),
        outputs=(Output("sigmas", SIGMAS, description="the noise levels to step through (for SamplerCustom)"),),
        description="Karras et al.'s sigmas between sigma_max and sigma_min (evenly spaced in sigma^(1/rho)), then 0.",
        display_name="Karras Scheduler"),
    NodeSpec(
        "ManualSigmas", CATEGORY, lazy("custom_sampling", "run_manual_sigmas"),
        params=(Param.string("sigmas", "1, 0.5", description="the noise levels, highest first, as numbers separated by "
                                                          "commas or spaces (end with 0 to denoise fully)"),),
        outputs=(Output("sigmas", SIGMAS, description="the noise levels to step through (for SamplerCustom)"),),
        description="Sigmas written out by hand (a distilled model's published schedule, for example).",
        display_name="Manual Sigmas"),
    NodeSpec(
        "SplitSigmas", CATEGORY, lazy("custom_sampling", "run_split_sigmas"),
        inputs=(Input("sigmas", SIGMAS, description="the sigmas to cut in two"),),
        params=(Param.int("step", 0, min=0, max=10000, description="where to cut (both parts hold this sigma)"),),
        outputs=(Output("high_sigmas", SIGMAS, description="the first stage: from the start to the cut"),
                 Output("low_sigmas", SIGMAS, description="the second stage: from the cut to the end")),
        description="Cut sigmas in two stages: a first that stops with leftover noise and a second that goes on.",
        display_name="Split Sigmas"),
    NodeSpec(
        "VisualizeSigmas", CATEGORY, lazy("sigma_plot", "run_visualize_sigmas"),
        inputs=(Input("sigmas", SIGMAS, description="the sigmas to plot"),),
        params=(Param.int("start_step", 0, min=-1, max=1000,
                          description="the first step passed on, marked green (0 or -1: from the first)"),
                Param.int("end_step", -1, min=-1, max=1000,
                          description="the last step passed on, marked red (-1: to the last)")),
        outputs=(Output("sigmas", SIGMAS, description="sigmas[start_step : end_step + 1] (all of them by default)"),
                 Output("image", IMAGE, description="the plot: sigma against step, the kept range shaded")),
        description="Plot sigmas as an image (KJNodes' Visualize Sigmas KJ) and pass them on, cut to a range of "
                    "steps if asked.",
        display_name="Visualize Sigmas"),
    NodeSpec(
        "BasicGuider", CATEGORY, lazy("custom_sampling", "run_basic_guider"),
        inputs=(Input("unet", MODEL, description="the model (its noise levels; it denoises)"), Input("conditioning", COND, role=InputRole.POSITIVE, description="the prompt to follow")),
        outputs=(Output("guider", GUIDER, description="the guider, for SamplerCustomAdvanced"),),
        description="Guide by one prompt, no negative (CFG 1; Flux's usual guider).",
        display_name="Basic Guider"),
    NodeSpec(
        "CFGGuider", CATEGORY, lazy("custom_sampling", "run_cfg_guider"),
        inputs=(Input("unet", MODEL, description="the model (its noise levels; it denoises)"), Input("positive", COND, role=InputRole.POSITIVE, description="the prompt to follow"),
                Input("negative", COND, role=InputRole.NEGATIVE, description="the prompt to steer away from")),
        params=(Param.float("cfg", 8.0, min=0.0, max=100.0, step=0.1, role=ParamRole.CFG,
                            description="guidance scale: how strongly the prompt is followed (1: no guidance)"),),
        outputs=(Output("guider", GUIDER, description="the guider, for SamplerCustomAdvanced"),),
        description="Guide towards the positive prompt and away from the negative (classifier-free guidance).",
        display_name="CFG Guider"),
    NodeSpec(
        "DualCFGGuider", CATEGORY, lazy("ip2p", "run_dual_cfg_guider"),
        inputs=(Input("unet", MODEL, description="the model (its noise levels; it denoises)"),
                Input("cond1", COND, role=InputRole.POSITIVE,
                      description="the prompt to follow most (an edit: the instruction with the image)"),
                Input("cond2", COND, description="the prompt in between (an edit: the negative with the image)"),
                Input("negative", COND, role=InputRole.NEGATIVE,
                      description="the prompt to steer away from (an edit: the negative alone, no image)")),
        params=(Param.float("cfg_conds", 8.0, min=0.0, max=100.0, step=0.1, role=ParamRole.CFG,
                            description="guidance from cond2 towards cond1 (InstructPix2Pix's text guidance)"),
                Param.float("cfg_cond2_negative", 8.0, min=0.0, max=100.0, step=0.1,
                            description="guidance from the negative towards cond2 (InstructPix2Pix's image "
                                        "guidance)")),
        outputs=(Output("guider", GUIDER, description="the guider, for SamplerCustomAdvanced"),),
        description="Guide by two prompts over a negative: negative + cfg_cond2_negative x (cond2 - negative) + "
                    "cfg_conds x (cond1 - cond2) (InstructPix2Pix and CosXL Edit: the instruction, the image, and how "
                    "strongly each is followed).",
        display_name="Dual CFG Guider"),
    NodeSpec(
        "InstructPixToPixConditioning", "conditioning", lazy("ip2p", "run_instruct_pix_to_pix_conditioning"),
        inputs=(Input("positive", COND, role=InputRole.POSITIVE, description="the instruction (what to change)"),
                Input("negative", COND, role=InputRole.NEGATIVE, description="the negative prompt"),
                Input("vae", VAE, description="the model's VAE, to encode the image"),
                Input("pixels", IMAGE, description="the image to edit")),
        outputs=(Output("positive", COND, description="the instruction with the image's latent"),
                 Output("negative", COND, description="the negative with the image's latent"),
                 Output("latent", LATENT, description="an empty latent of the image's size, to denoise from")),
        description="Give an InstructPix2Pix model (CosXL Edit) the image to edit: its latent goes with both "
                    "prompts into the UNet's extra input channels (other UNets ignore it).",
        display_name="InstructPixToPix Conditioning"),
    NodeSpec(
        "RandomNoise", CATEGORY, lazy("custom_sampling", "run_random_noise"),
        params=(Param.int("seed", 0, min=0, max=SEED_MAX, role=ParamRole.SEED,
                          description="the noise's seed (the same seed gives the same image)"),),
        outputs=(Output("noise", NOISE, description="the noise, for SamplerCustomAdvanced"),),
        description="Seeded noise (one generator per batch item, seed + i, as UNet Denoise).",
        display_name="Random Noise"),
    NodeSpec(
        "DisableNoise", CATEGORY, lazy("custom_sampling", "run_disable_noise"),
        outputs=(Output("noise", NOISE, description="the noise, for SamplerCustomAdvanced"),),
        description="No noise: the latent is taken as it is (a second stage going on from leftover noise).",
        display_name="Disable Noise"),
    NodeSpec(
        "SamplerCustom", CATEGORY, lazy("custom_sampling", "run_sampler_custom"),
        inputs=(Input("unet", MODEL, description="the model (its noise levels; it denoises)"), Input("positive", COND, role=InputRole.POSITIVE, description="the prompt to follow"),
                Input("negative", COND, role=InputRole.NEGATIVE, description="the prompt to steer away from"), Input("sampler", SAMPLER, description="the stepping method (from Sampler Select)"),
                Input("sigmas", SIGMAS, description="the noise levels to step through (from a scheduler node)"), Input("latent", LATENT, description="the starting latent (empty, or an image's for img2img)")),
        params=(Param.bool("add_noise", True, description="off: take the latent as it is"),
                Param.int("seed", 0, min=0, max=SEED_MAX, role=ParamRole.SEED,
                          description="the noise's seed (the same seed gives the same image)"),
                Param.float("cfg", 8.0, min=0.0, max=100.0, step=0.1, role=ParamRole.CFG,
                            description="guidance scale: how strongly the prompt is followed (1: no guidance)")),
        outputs=_SAMPLED,
        description="Denoise with a sampler following given sigmas. " + _SAMPLED_TEXT,
        display_name="Sampler Custom"),
    NodeSpec(
        "SamplerCustomAdvanced", CATEGORY, lazy("custom_sampling", "run_sampler_custom_advanced"),
        inputs=(Input("noise", NOISE, description="the noise to start from (Random Noise or Disable Noise)"), Input("guider", GUIDER, description="how the prompts steer (Basic Guider or CFG Guider)"), Input("sampler", SAMPLER, description="the stepping method (from Sampler Select)"), Input("sigmas", SIGMAS, description="the noise levels to step through (from a scheduler node)"),
                Input("latent", LATENT, description="the starting latent (empty, or an image's for img2img)")),
        outputs=_SAMPLED,
        description="Denoise from noise, guider, sampler and sigmas made by their own nodes. " + _SAMPLED_TEXT,
        display_name="Sampler Custom (Advanced)"),
]
