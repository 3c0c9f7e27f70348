"""Shared fixtures of the training tests: keep torch to one thread so they run beside training."""
import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    try:
        import torch
    except ImportError:  # data/judge tests need no torch
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_base_load(monkeypatch):
    """Fail the test if a trainer loads its base model: the checks under test come before that."""
    from nodeforge.training import common

    def refuse(*args, **kwargs):
        raise AssertionError("the base model was loaded before the inputs were checked")

    monkeypatch.setattr(common, "load_base", refuse)
    return refuse


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory):
    """A random diffusers folder with the demo model's layout but tiny sizes (for trainer tests)."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    from nodeforge.training import models
    from nodeforge.training.vocab import build_tokenizer

    folder = tmp_path_factory.mktemp("tiny-base")
    torch.manual_seed(0)
    tokenizer = build_tokenizer()
    pipe = diffusers.StableDiffusionPipeline(
        vae=models.make_vae((8, 8, 8)),
        text_encoder=models.make_text_encoder(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id, 1),
        tokenizer=tokenizer, unet=models.make_unet((16, 16, 16)), scheduler=models.make_scheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder
