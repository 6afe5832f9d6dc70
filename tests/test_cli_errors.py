"""Bad input: one line naming the value and the fix, a non-zero exit, and nothing written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_test_image, sgm_fixture

from svd3d.cli import main


def run(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def assert_clean_failure(result, out_dir: Path, *needles: str):
    assert result.exit_code != 0, result.output
    message = result.output.strip().splitlines()[-1]
    for needle in needles:
        assert needle.lower() in message.lower(), message
    leftovers = [p.name for p in out_dir.iterdir() if p.name != "input.png"] if out_dir.exists() else []
    assert leftovers == [], f"partial output left behind: {leftovers}"


@pytest.fixture
def work(tmp_path, image_file):
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(image_file, out / "input.png")
    return out


VIDEO = ["video", "--model", "random-tiny-video", "--steps", "1", "--frames", "2", "--device", "cpu"]


def test_missing_image(work):
    r = run([*VIDEO, str(work / "nope.png"), "-o", str(work / "clip.mp4")])
    assert_clean_failure(r, work, "nope.png", "does not exist")


def test_directory_as_image(work, tmp_path):
    r = run([*VIDEO, str(tmp_path), "-o", str(work / "clip.mp4")])
    assert_clean_failure(r, work, "not a file")


def test_empty_image(work):
    empty = work.parent / "empty.png"
    empty.write_bytes(b"")
    r = run([*VIDEO, str(empty), "-o", str(work / "clip.mp4")])
    assert_clean_failure(r, work, "empty.png", "0 bytes")


def test_non_image_file(work):
    text = work.parent / "notes.png"
    text.write_text("this is not a picture\n")
    r = run([*VIDEO, str(text), "-o", str(work / "clip.mp4")])
    assert_clean_failure(r, work, "notes.png", "not an image")


def test_truncated_image(work):
    good = work / "input.png"
    cut = work.parent / "cut.png"
    cut.write_bytes(good.read_bytes()[:200])
    r = run([*VIDEO, str(cut), "-o", str(work / "clip.mp4")])
    assert_clean_failure(r, work, "cut.png")


@pytest.mark.skipif(hasattr(__import__("os"), "geteuid") and __import__("os").geteuid() == 0, reason="root reads all")
def test_unreadable_image(work):
    locked = work.parent / "locked.png"
    make_test_image().save(locked)
    locked.chmod(0)
    r = run([*VIDEO, str(locked), "-o", str(work / "clip.mp4")])
    assert_clean_failure(r, work, "permission")


@pytest.mark.parametrize("size", ["100x64", "64x60", "0x64", "64", "axb"])
def test_bad_size(work, size):
    r = run([*VIDEO, str(work / "input.png"), "--size", size, "-o", str(work / "clip.mp4")])
    assert r.exit_code != 0
    assert size in r.output or "WIDTHxHEIGHT" in r.output
    if "x" in size and size[0].isdigit() and size != "0x64":
        assert "multiples of 8" in r.output
    assert not (work / "clip.mp4").exists()


@pytest.mark.parametrize("flag", ["--frames", "--steps"])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_non_positive_counts(work, flag, value):
    args = ["video", "--model", "random-tiny-video", "--device", "cpu", flag, value]
    r = run([*args, str(work / "input.png"), "-o", str(work / "clip.mp4")])
    assert_clean_failure(r, work, flag.lstrip("-"), value, flag)


def test_unknown_model(work):
    r = run(["video", "--model", "no-such-model", str(work / "input.png"), "-o", str(work / "clip.mp4")])
    assert_clean_failure(r, work, "unknown model", "no-such-model")


def test_missing_model_file(work):
    r = run(["video", "--model", "./svd_xt.safetensors", str(work / "input.png"), "-o", str(work / "c.mp4")])
    assert_clean_failure(r, work, "svd_xt.safetensors", "does not exist")


def test_truncated_safetensors(work):
    ckpt = sgm_fixture("svd.safetensors")
    cut = work.parent / "svd_cut.safetensors"
    cut.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    r = run(["video", "--model", str(cut), str(work / "input.png"), "-o", str(work / "clip.mp4")])
    assert_clean_failure(r, work, "svd_cut.safetensors", "truncated")


def test_garbage_safetensors(work):
    junk = work.parent / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    r = run(["video", "--model", str(junk), str(work / "input.png"), "-o", str(work / "clip.mp4")])
    assert_clean_failure(r, work, "junk.safetensors", "not a safetensors")


def test_wrong_layout_safetensors(work):
    import torch
    from safetensors.torch import save_file

    other = work.parent / "unet_only.safetensors"
    save_file({"down_blocks.0.weight": torch.zeros(2, 2)}, str(other))
    r = run(["video", "--model", str(other), str(work / "input.png"), "-o", str(work / "clip.mp4")])
    assert_clean_failure(r, work, "unet_only.safetensors", "not an sgm")


def test_pickle_checkpoint_refused(work):
    ckpt = work.parent / "svd.ckpt"
    ckpt.write_bytes(b"PK\x03\x04 pretend zip")
    r = run(["video", "--model", str(ckpt), str(work / "input.png"), "-o", str(work / "clip.mp4")])
    assert_clean_failure(r, work, "svd.ckpt", "safetensors")


def test_unrecognised_architecture_without_yaml(work):
    src = sgm_fixture("svd.safetensors")
    lonely = work.parent / "lonely" / "my_finetune.safetensors"
    lonely.parent.mkdir()
    shutil.copy(src, lonely)
    r = run(["video", "--model", str(lonely), str(work / "input.png"), "-o", str(work / "clip.mp4")])
    assert_clean_failure(r, work, "my_finetune.yaml", "--config")


@pytest.mark.parametrize("device", ["gpu0", "cuda:7", "tpu"])
def test_unknown_device(work, device):
    r = run([*VIDEO[:-2], "--device", device, str(work / "input.png"), "-o", str(work / "clip.mp4")])
    assert_clean_failure(r, work, device)


def test_unknown_dtype(work):
    r = run([*VIDEO, "--dtype", "float8", str(work / "input.png"), "-o", str(work / "clip.mp4")])
    assert_clean_failure(r, work, "float8", "float32")


def test_bad_output_suffix(work):
    r = run([*VIDEO, str(work / "input.png"), "-o", str(work / "clip.avi")])
    assert_clean_failure(r, work, "clip.avi", ".mp4")


def test_orbit_model_refused_for_video(work):
    r = run(["video", "--model", "random-tiny-orbit", str(work / "input.png"), "-o", str(work / "clip.mp4")])
    assert_clean_failure(r, work, "orbit model", "svd3d orbit")


def test_offline_hub_id(work):
    r = run(["video", "--model", "someone/some-svd-model", str(work / "input.png"), "-o", str(work / "c.mp4")])
    assert_clean_failure(r, work, "someone/some-svd-model", "--model DIR")


def test_convert_refuses_non_empty_target(tmp_path):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    r = run(["convert", str(sgm_fixture("svd.safetensors")), str(target)])
    assert r.exit_code == 2 and "svd3d did not write (keep.txt)" in r.output
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


def test_no_model_named_without_bundled_default(work, monkeypatch):
    """Where the bundled models were removed (a trimmed install), no --model is a clear error."""
    monkeypatch.setattr("svd3d.models.registry.ASSETS", work / "no-models")
    r = run(["video", str(work / "input.png"), "-o", str(work / "clip.mp4")])
    assert_clean_failure(r, work, "--model", "tiny-video")


def test_output_folder_with_other_files_is_never_replaced(work):
    precious = work.parent / "mine"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    r = run([*VIDEO, str(work / "input.png"), "-o", str(precious)])
    assert r.exit_code != 0 and "svd3d did not write" in r.output
    assert (precious / "thesis.tex").read_text() == "do not delete"
