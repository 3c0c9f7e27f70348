"""The UNet families' sampling with the lite Euler scheduler where the sampler is `euler` and its
config is one nodes/lite/euler.py implements; diffusers' scheduler classes otherwise."""
from __future__ import annotations

from typing import Any

from ..sampling import DenoiseRequest, SamplingBehaviour
from ..schedulers import scheduler_config
from . import euler


class LiteSampling(SamplingBehaviour):
    def make_scheduler(self, model: Any, request: DenoiseRequest) -> Any:
        name, config = scheduler_config(request.sampler, request.schedule, model.scheduler_config, request.seed)
        if name != "EulerDiscreteScheduler" or not euler.supports(config):
            return super().make_scheduler(model, request)
        sched = euler.LiteEuler(config)
        sched.set_timesteps(request.steps, device=model.device)
        return sched


LITE_SAMPLING = LiteSampling()
