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
