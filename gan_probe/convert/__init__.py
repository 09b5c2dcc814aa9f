"""Other code bases' trained models as gan-probe checkpoints (``gan-probe convert``).

>>> from gan_probe.convert import save_converted                                   # doctest: +SKIP
>>> save_converted("dcgan_code/models/svhn_unsup_all_conv_dcgan_100z_gaussian_lr_0.0005_64mb",
...                "svhn.pt")  # doctest: +SKIP
"""
from .dcgan_code import MODELS as DCGAN_CODE_MODELS
from .dcgan_code import convert as convert_dcgan_code
from .dcgan_code import save_converted

__all__ = ["DCGAN_CODE_MODELS", "convert_dcgan_code", "save_converted"]
