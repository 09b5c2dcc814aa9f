"""--device parsing shared by every command."""
import pytest
import torch

from gan_probe.devices import resolve_device
from gan_probe.errors import ConfigError


def test_cpu_and_auto_resolve_and_a_torch_device_is_accepted():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "tpu"])
def test_malformed_device_names_are_one_line_errors(name):
    with pytest.raises(ConfigError, match=r"--device .*expected auto, cpu, cuda or cuda:N"):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(ConfigError, match="CUDA is not available"):
        resolve_device("cuda:0")
