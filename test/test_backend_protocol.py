"""The Backend protocol is the type of the Predictor's seam: every backend the factory returns satisfies it."""
from syncvp_core.backends.base import Backend
from syncvp_core.backends.select import create_backend
from syncvp_core.models.syncvp import SyncVPModel
from syncvp_core.testing import micro_config


def test_torch_backend_is_a_backend():
    b = create_backend("torch", SyncVPModel(micro_config()))
    assert isinstance(b, Backend) and b.name == "torch"


def test_an_object_without_denoise_is_not_a_backend():
    class Half:
        name, device = "half", "cpu"

        def encode(self, modality, x): ...

        def decode(self, modality, z): ...

    assert not isinstance(Half(), Backend)

