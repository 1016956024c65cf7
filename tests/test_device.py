"""Device names: a typo or a device this machine lacks is a one-line error naming it, before any model loads."""

from __future__ import annotations

import pytest
import torch

from retake.cli import main
from retake.demo import CLIPS, EDITOR
from retake.device import check_device


def test_usable_devices_parse():
    assert check_device("cpu") == torch.device("cpu")
    assert check_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("banana", "'banana' is not a torch device name"),
        ("cuda", "CUDA is not available on this machine"),
        ("cuda:0", "CUDA is not available on this machine"),
        ("mps", "MPS is not available on this machine"),
        ("meta", "retake runs on cpu, cuda or mps"),
    ],
)
def test_a_device_this_machine_lacks_is_refused_by_name(name, message):
    if name.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    if name == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    with pytest.raises(ValueError, match=message):
        check_device(name)


def test_edit_refuses_a_bad_device_in_one_line_and_the_vae_by_name(tmp_path, capsys):
    from retake.model.vae import VideoVAE

    source = str(CLIPS / "recolour.source.mp4")
    out = tmp_path / "e.mp4"
    with pytest.raises(SystemExit) as stop:
        main(["edit", source, "make it red", "-o", str(out), "--model", str(EDITOR), "--device", "banana"])
    assert stop.value.code == 2 and not out.exists()
    assert "device 'banana' is not a torch device name" in capsys.readouterr().err
    with pytest.raises(ValueError, match="'banana'"):  # cache and eval ceiling load the VAE this way
        VideoVAE.from_pretrained(EDITOR / "vae", device="banana")
