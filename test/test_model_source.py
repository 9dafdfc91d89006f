"""One factory for "shipped default / random:<config> / a path", used by the CLI, evaluation and the node."""
import pytest

from syncvp_core.checkpoint import DEFAULT_CHECKPOINT, CheckpointError
from syncvp_core.model_source import ModelSource, open_predictor


def test_parse_the_three_spellings():
    assert ModelSource.parse(None) == ModelSource.parse("") == ModelSource()
    assert ModelSource.parse(None).path() == DEFAULT_CHECKPOINT and str(ModelSource()) == "<shipped default>"
    assert ModelSource.parse("random:tiny") == ModelSource(random_config="tiny")
    assert str(ModelSource.parse("random:tiny")) == "random:tiny" and ModelSource.parse("random:tiny").random
    assert ModelSource.parse("run/x.safetensors").checkpoint == "run/x.safetensors"
    assert ModelSource.parse("random:").random_config == ""  # refused by the node's parameter check
    assert ModelSource.from_options(None, "tiny") == ModelSource(random_config="tiny")
    with pytest.raises(ValueError, match="exclusive"):
        ModelSource.from_options("a.safetensors", "tiny")


def test_config_and_open():
    src = ModelSource.parse("random:tiny")
    assert src.config().name == "tiny"
    p = open_predictor("random:tiny")
    assert p.meta["random_init"] and p.config.to_dict() == src.config().to_dict()
    if DEFAULT_CHECKPOINT.exists():
        assert ModelSource().config().context_frames == open_predictor(None).context_frames
    with pytest.raises(CheckpointError):
        open_predictor("/no/such/file.safetensors")
