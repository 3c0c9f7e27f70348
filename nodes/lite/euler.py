"""diffusers' EulerDiscreteScheduler for the configs the pack's `euler` sampler builds (linear or
scaled-linear betas, linspace / leading / trailing spacing, linear interpolation, no Karras,
exponential or beta sigmas, no churn), with the same numpy and torch operations, so its
timesteps, sigmas and steps are bit for bit diffusers'.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

DEFAULTS = {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
            "trained_betas": None, "prediction_type": "epsilon", "interpolation_type": "linear",
            "use_karras_sigmas": False, "use_exponential_sigmas": False, "use_beta_sigmas": False,
            "sigma_min": None, "sigma_max": None, "timestep_spacing": "linspace", "timestep_type": "discrete",
            "steps_offset": 0, "rescale_betas_zero_snr": False, "final_sigmas_type": "zero"}


def supports(config: dict[str, Any]) -> bool:
    """Whether the full scheduler config (nodes/schedulers.scheduler_config) is one this implements."""
    c = {**DEFAULTS, **config}
    return (c["trained_betas"] is None and c["beta_schedule"] in ("linear", "scaled_linear")
            and c["prediction_type"] in ("epsilon", "v_prediction") and c["interpolation_type"] == "linear"
            and not (c["use_karras_sigmas"] or c["use_exponential_sigmas"] or c["use_beta_sigmas"])
            and c["timestep_spacing"] in ("linspace", "leading", "trailing") and c["timestep_type"] == "discrete"
            and not c["rescale_betas_zero_snr"] and c["final_sigmas_type"] in ("zero", "sigma_min"))


class LiteEuler:
    """EulerDiscreteScheduler: `set_timesteps`, `scale_model_input`, `step`, `add_noise`."""

    order = 1

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = SimpleNamespace(**{**DEFAULTS, **{k: v for k, v in config.items() if k in DEFAULTS}})
        c = self.config
        if c.beta_schedule == "linear":
            self.betas = torch.linspace(c.beta_start, c.beta_end, c.num_train_timesteps, dtype=torch.float32)
        else:
            self.betas = torch.linspace(c.beta_start ** 0.5, c.beta_end ** 0.5, c.num_train_timesteps,
                                        dtype=torch.float32) ** 2
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        sigmas = (((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5).flip(0)
        timesteps = np.linspace(0, c.num_train_timesteps - 1, c.num_train_timesteps, dtype=float)[::-1].copy()
        self.timesteps = torch.from_numpy(timesteps).to(dtype=torch.float32)
        self.sigmas = torch.cat([sigmas, torch.zeros(1, device=sigmas.device)]).to("cpu")
        self.num_inference_steps = None
        self._step_index = None
        self._begin_index = None

    @property
    def init_noise_sigma(self) -> torch.Tensor:
        max_sigma = self.sigmas.max()
        if self.config.timestep_spacing in ("linspace", "trailing"):
            return max_sigma
        return (max_sigma ** 2 + 1) ** 0.5

    @property
    def step_index(self) -> int | None:
        return self._step_index

    @property
    def begin_index(self) -> int | None:
        return self._begin_index

    def set_begin_index(self, begin_index: int = 0) -> None:
        self._begin_index = begin_index

    def _spaced_timesteps(self, steps: int) -> np.ndarray:
        c = self.config
        if c.timestep_spacing == "linspace":
            return np.linspace(0, c.num_train_timesteps - 1, steps, dtype=np.float32)[::-1].copy()
        if c.timestep_spacing == "leading":
            step_ratio = c.num_train_timesteps // steps
            timesteps = (np.arange(0, steps) * step_ratio).round()[::-1].copy().astype(np.float32)
            timesteps += c.steps_offset
            return timesteps
        step_ratio = c.num_train_timesteps / steps
        timesteps = (np.arange(c.num_train_timesteps, 0, -step_ratio)).round().copy().astype(np.float32)
        timesteps -= 1
        return timesteps

    def set_timesteps(self, num_inference_steps: int, device: Any = None) -> None:
        self.num_inference_steps = num_inference_steps
        timesteps = self._spaced_timesteps(num_inference_steps)
        sigmas = np.array(((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5)
        sigmas = np.interp(timesteps, np.arange(0, len(sigmas)), sigmas)
        if self.config.final_sigmas_type == "sigma_min":
            sigma_last = ((1 - self.alphas_cumprod[0]) / self.alphas_cumprod[0]) ** 0.5
        else:
            sigma_last = 0
        sigmas = np.concatenate([sigmas, [sigma_last]]).astype(np.float32)
        sigmas = torch.from_numpy(sigmas).to(dtype=torch.float32, device=device)
        self.timesteps = torch.from_numpy(timesteps.astype(np.float32)).to(device=device)
        self._step_index = None
        self._begin_index = None
        self.sigmas = sigmas.to("cpu")

    def index_for_timestep(self, timestep: Any, schedule_timesteps: torch.Tensor | None = None) -> int:
        schedule_timesteps = self.timesteps if schedule_timesteps is None else schedule_timesteps
        indices = (schedule_timesteps == timestep).nonzero()
        return indices[1 if len(indices) > 1 else 0].item()

    def _init_step_index(self, timestep: Any) -> None:
        if self.begin_index is None:
            if isinstance(timestep, torch.Tensor):
                timestep = timestep.to(self.timesteps.device)
            self._step_index = self.index_for_timestep(timestep)
        else:
            self._step_index = self._begin_index

    def scale_model_input(self, sample: torch.Tensor, timestep: Any) -> torch.Tensor:
        if self.step_index is None:
            self._init_step_index(timestep)
        sigma = self.sigmas[self.step_index]
        return sample / ((sigma ** 2 + 1) ** 0.5)

    def step(self, model_output: torch.Tensor, timestep: Any, sample: torch.Tensor,
             generator: Any = None) -> SimpleNamespace:
        """One Euler step (no churn: the generators are not drawn from)."""
        if self.step_index is None:
            self._init_step_index(timestep)
        sample = sample.to(torch.float32)
        sigma = self.sigmas[self.step_index]
        sigma_hat = sigma * (0.0 + 1)
        if self.config.prediction_type == "epsilon":
            pred_original_sample = sample - sigma_hat * model_output
        else:
            pred_original_sample = model_output * (-sigma / (sigma ** 2 + 1) ** 0.5) + (sample / (sigma ** 2 + 1))
        derivative = (sample - pred_original_sample) / sigma_hat
        dt = self.sigmas[self.step_index + 1] - sigma_hat
        prev_sample = (sample + derivative * dt).to(model_output.dtype)
        self._step_index += 1
        return SimpleNamespace(prev_sample=prev_sample, pred_original_sample=pred_original_sample)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        sigmas = self.sigmas.to(device=original_samples.device, dtype=original_samples.dtype)
        schedule_timesteps = self.timesteps.to(original_samples.device)
        timesteps = timesteps.to(original_samples.device)
        if self.begin_index is None:
            step_indices = [self.index_for_timestep(t, schedule_timesteps) for t in timesteps]
        elif self.step_index is not None:
            step_indices = [self.step_index] * timesteps.shape[0]
        else:
            step_indices = [self.begin_index] * timesteps.shape[0]
        sigma = sigmas[step_indices].flatten()
        while len(sigma.shape) < len(original_samples.shape):
            sigma = sigma.unsqueeze(-1)
        return original_samples + noise * sigma
