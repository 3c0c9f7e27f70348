"""Architectures of the demo model's components, as diffusers/transformers configs.

The sizes are picked from measured CPU speeds so the whole model trains on two cores (fp32, batch 32,
AdamW step with backward: the (64, 128, 128) UNet about 0.75 s, the (32, 64, 64) VAE about 0.9 s).
"""
from __future__ import annotations

import torch

LATENT_CHANNELS = 4
VAE_FACTOR = 4  # 64x64 RGB <-> 16x16x4 latents
TEXT_HIDDEN = 64
NOISE_SCHEDULE = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    prediction_type="epsilon",
)


def training_noise(shape: torch.Size, generator: torch.Generator, offset: float = 0.0) -> torch.Tensor:
    """Gaussian noise for a training step, with an optional offset: a per-image, per-channel shift
    of std `offset` (kohya's noise_offset). Without it the mean colour of a 16x16 latent stays
    readable from the noisy latent even at t=999 (SD's schedule keeps sqrt(alpha_bar) = 0.068 of
    the signal), so the model never has to take the background colour from the prompt and copies
    it from the seed instead. A LoRA must train with the offset its base model was trained with,
    or it teaches the model that habit again."""
    noise = torch.randn(shape, generator=generator)
    if offset:
        noise = noise + offset * torch.randn(tuple(shape[:2]) + (1, 1), generator=generator)
    return noise


def min_snr_loss(pred: torch.Tensor, noise: torch.Tensor, snr_t: torch.Tensor, gamma: float = 5.0) -> torch.Tensor:
    """The noise-prediction MSE of each image weighted by min(SNR, gamma) / SNR (Min-SNR-gamma:
    converges faster than the plain epsilon MSE on small budgets), averaged over the batch."""
    weight = torch.clamp(snr_t, max=gamma) / snr_t
    return (weight * (pred - noise).pow(2).mean(dim=(1, 2, 3))).mean()


def make_vae(channels: tuple[int, ...] = (32, 64, 64)):
    from diffusers import AutoencoderKL

    blocks = len(channels)
    assert 2 ** (blocks - 1) == VAE_FACTOR
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        block_out_channels=tuple(channels),
        layers_per_block=1,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=min(32, channels[0]),
        sample_size=64,
    )


def make_text_encoder(vocab_size: int, bos_id: int, eos_id: int, layers: int = 3):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=TEXT_HIDDEN,
        intermediate_size=4 * TEXT_HIDDEN,
        projection_dim=TEXT_HIDDEN,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act="quick_gelu",
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    return CLIPTextModel(config)


def make_unet(channels: tuple[int, ...] = (64, 128, 128), layers_per_block: int = 1, heads: int = 4,
              attention_from: int = 0):
    """SD's layout scaled down: attention at every level but the lowest resolution's, plus the
    mid block. `attention_from=1` also leaves attention out at the full latent resolution
    (16x16), where it costs about a third of a training step."""
    from diffusers import UNet2DConditionModel

    blocks = len(channels)
    down = tuple("CrossAttnDownBlock2D" if attention_from <= i < blocks - 1 else "DownBlock2D"
                 for i in range(blocks))
    up = tuple(reversed([b.replace("Down", "Up") for b in down]))
    return UNet2DConditionModel(
        sample_size=64 // VAE_FACTOR,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=tuple(channels),
        layers_per_block=layers_per_block,
        cross_attention_dim=TEXT_HIDDEN,
        attention_head_dim=heads,  # diffusers reads this as the number of heads (SD 1.x quirk)
        norm_num_groups=min(32, channels[0]),
    )


def make_scheduler_config() -> dict:
    """A DDPM-style config that Euler, DDIM, DPM++ etc. can all be created from."""
    return dict(NOISE_SCHEDULE, steps_offset=1, timestep_spacing="trailing", clip_sample=False, set_alpha_to_one=False)


def make_scheduler():
    """The shipped default sampler: Euler over SD's training noise schedule."""
    from diffusers import EulerDiscreteScheduler

    config = {k: v for k, v in make_scheduler_config().items() if k not in ("clip_sample", "set_alpha_to_one")}
    return EulerDiscreteScheduler(**config)
