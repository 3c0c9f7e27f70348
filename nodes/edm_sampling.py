"""ComfyUI's ModelSamplingContinuousEDM: a UNet model sampled as a continuous-time EDM model (Karras et al.
2022), as CosXL and other EDM finetunes of SDXL were trained.

Such a model sees a noise level sigma anywhere in [sigma_min, sigma_max] rather than one of 1000 training
timesteps: it is called on x / sqrt(sigma^2 + sigma_data^2) at the timestep 0.25 ln(sigma), and its output
gives the clean latent as c_skip x + c_out out with c_skip = sigma_data^2 / (sigma^2 + sigma_data^2) and
c_out = -+ sigma sigma_data / sqrt(sigma^2 + sigma_data^2) (minus for v_prediction, plus for EDM's own
parametrisation, ComfyUI's `edm`), sigma_data = 1 (ComfyUI's value for both). These are diffusers' EDM
schedulers (EDMEulerScheduler, EDMDPMSolverMultistepScheduler), with which diffusers runs CosXL, so the
samplers are those they implement: euler, dpmpp_2m and dpmpp_2m_sde. The schedule is karras (rho 7) or
exponential (sigmas evenly spaced in log sigma from sigma_max to sigma_min); normal, simple, sgm_uniform and
the model's default are that exponential schedule too, as ComfyUI's are on a continuous model (its timesteps
evenly spaced are log sigmas evenly spaced). Schedule windows given in percent of the sampling
(ConditioningSetTimestepRange, a ControlNet's start/end) are compared in the 1000-step timesteps of the
discrete models, so an EDM model refuses them (and an IP-Adapter's) rather than apply them at the wrong steps.
SelfAttentionGuidance works on a v_prediction EDM model: with sigma_data 1 it is a DDPM v model at
alpha = 1 / (1 + sigma^2) on its scaled input.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch

from nodeforge.core.errors import NodeError

from .sampling import DenoiseRequest, SamplingBehaviour

SAMPLINGS = ("v_prediction", "edm", "edm_playground_v2.5", "eps", "cosmos_rflow")
_PREDICTIONS = {"v_prediction": "v_prediction", "edm": "epsilon"}   # diffusers' EDM 'epsilon' is EDM's F
# NodeForge sampler -> (diffusers EDM class, its config)
EDM_SAMPLERS = {
    "euler": ("EDMEulerScheduler", {}),
    "dpmpp_2m": ("EDMDPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_sde": ("EDMDPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
}
_EXPONENTIAL = ("exponential", "normal", "simple", "sgm_uniform", "default")
SIGMA_DATA = 1.0


@dataclasses.dataclass(frozen=True)
class EDMSampling(SamplingBehaviour):
    """The UNet families' phases with diffusers' EDM schedulers in place of the discrete ones."""

    sigma_min: float = 0.002
    sigma_max: float = 120.0
    prediction: str = "v_prediction"          # diffusers' prediction_type
    sigma_data: float = SIGMA_DATA
    custom_sigma_samplers = tuple(EDM_SAMPLERS)

    def scheduler_for(self, sampler: str, schedule: str) -> Any:
        import diffusers

        if sampler not in EDM_SAMPLERS:
            raise NodeError(f"{sampler} cannot sample an EDM model (ModelSamplingContinuousEDM); choose one of "
                            f"{', '.join(EDM_SAMPLERS)}", field="sampler")
        if schedule != "karras" and schedule not in _EXPONENTIAL:
            raise NodeError(f"schedule {schedule} has no EDM form; on an EDM model choose karras or exponential "
                            "(normal, simple and sgm_uniform are exponential there)", field="schedule")
        name, extra = EDM_SAMPLERS[sampler]
        return getattr(diffusers, name)(
            sigma_min=self.sigma_min, sigma_max=self.sigma_max, sigma_data=self.sigma_data,
            sigma_schedule="karras" if schedule == "karras" else "exponential", prediction_type=self.prediction,
            **extra)

    def make_scheduler(self, model: Any, request: DenoiseRequest) -> Any:
        sched = self.scheduler_for(request.sampler, request.schedule)
        sched.set_timesteps(request.steps, device=model.device)
        return sched

    def sigma_timesteps(self, scheduler: Any, sigmas: torch.Tensor) -> torch.Tensor:
        """The EDM timestep of each sigma: 0.25 ln(sigma)."""
        return scheduler.precondition_noise(sigmas.float())

    def timestep_sigmas(self, model: Any, timesteps: torch.Tensor) -> torch.Tensor:
        raise NodeError("an EDM model (ModelSamplingContinuousEDM) has no training timesteps to take sigmas from; "
                        "use BasicScheduler or KarrasScheduler", field="model")

    def alpha_at(self, t: Any) -> torch.Tensor:
        """The DDPM alphas_cumprod equivalent at the EDM timestep t (SelfAttentionGuidance's re-noising): with
        sigma_data 1 a v-prediction EDM model is a DDPM v model at alpha = 1 / (1 + sigma^2) on its scaled input."""
        if self.prediction != "v_prediction" or self.sigma_data != 1.0:
            raise NodeError("SelfAttentionGuidance on an EDM model works with sampling v_prediction only for now; "
                            "set ModelSamplingContinuousEDM's sampling to v_prediction or remove the guidance",
                            field="unet")
        sigma = torch.exp(torch.as_tensor(t, dtype=torch.float64).reshape(-1)[0] / 0.25)
        return (1 / (1 + sigma ** 2)).float()

    def predictor(self, model: Any, positive: dict, negative: dict, start: Any, request: DenoiseRequest) -> Any:
        _refuse_windows(positive, "positive")
        _refuse_windows(negative, "negative")
        if request.middle is not None:
            _refuse_windows(request.middle, "cond2")
        for applied in getattr(model, "ip_adapters", ()):
            if applied.weight != 0 and (applied.start_percent > 0 or applied.end_percent < 1):
                raise NodeError(f"an IP-Adapter's window ({applied.start_percent:g} to {applied.end_percent:g}) "
                                "cannot be placed on an EDM model yet (ModelSamplingContinuousEDM); set its start "
                                "0 and end 1", field="unet")
        return super().predictor(model, positive, negative, start, request)


def _refuse_windows(conditioning: Any, field: str) -> None:
    from .conditioning import entries

    for entry in entries(conditioning):
        window = entry.get("timestep_range")
        controls = [(c.start_percent, c.end_percent) for c in entry.get("controls", ()) if c.strength != 0]
        for start, end in ([window] if window is not None else []) + controls:
            if start > 0 or end < 1:
                raise NodeError(f"a window of the sampling ({start:g} to {end:g}) cannot be placed on an EDM model "
                                "yet (ModelSamplingContinuousEDM); set start 0 and end 1 on that ControlNet or "
                                "ConditioningSetTimestepRange", field=field)


def run_model_sampling_continuous_edm(ctx: Any, unet: Any, sampling: str, sigma_max: float,
                                      sigma_min: float) -> dict[str, Any]:
    """The model sampled as a continuous EDM model (see the module note); the input model is unchanged."""
    if sampling not in _PREDICTIONS:
        raise NodeError(f"sampling {sampling!r} is not supported yet (only v_prediction, as CosXL, and edm); "
                        "choose one of those", field="sampling")
    if unet.prediction_type not in ("epsilon", "v_prediction"):
        raise NodeError(f"{unet.name} is a {unet.family} model predicting {unet.prediction_type}; "
                        "ModelSamplingContinuousEDM applies to SD 1.x/2.x/XL UNet models", field="unet")
    if not 0 < sigma_min < sigma_max:
        raise NodeError(f"sigma_max ({sigma_max:g}) must be above sigma_min ({sigma_min:g}), and both above 0",
                        field="sigma_min" if sigma_min <= 0 else "sigma_max")
    behaviour = EDMSampling(float(sigma_min), float(sigma_max), _PREDICTIONS[sampling])
    return {"unet": dataclasses.replace(unet, sampling_behaviour=behaviour)}
