"""The digits demo with on-chip learning: the STDP scheme, learning, the command line."""

import functools
import json

import numpy as np
import pytest
from click.testing import CliRunner

from neurofabric.host import digits_onchip
from neurofabric.host.cli import cli
from neurofabric.host.golden import GoldenModel

PIXELS, TEACHER = 64, 30


def one_frame_changes(label, weights):
    """Weight changes of one training frame in which pixels 0..9 are lit."""
    net = digits_onchip.onchip_network()
    net.weights[:PIXELS] = weights
    image = np.zeros((1, PIXELS))
    image[0, :10] = 16
    model = GoldenModel(net)
    model.run(digits_onchip.training_stimulus(image, [label], frames=1))
    return model.weights.astype(np.int64) - net.weights


def test_a_frame_changes_each_lit_pixel_by_teacher_minus_own_answer():
    weights = np.zeros((PIXELS, 10), np.int64)
    weights[:10, 3] = 40          # 10 * 40 >= 381: neuron 3 answers
    weights[20, 3] = 5            # an unlit pixel
    change = one_frame_changes(5, weights)  # the label is 5, which stays silent
    assert change[:10, 5].tolist() == [1] * 10     # missed: +1
    assert change[:10, 3].tolist() == [-1] * 10    # wrong answer: -1
    assert not np.delete(change[:10], [3, 5], axis=1).any()
    assert not change[10:].any()                   # unlit pixels and teacher rows stay
    assert not one_frame_changes(3, weights).any()  # the right answer changes nothing


def test_only_pixel_synapses_are_plastic_and_teacher_weights_reach_the_threshold():
    net = digits_onchip.onchip_network()
    assert net.plastic_pre[:PIXELS].all() and not net.plastic_pre[PIXELS:].any()
    assert net.plastic_post.all()
    teacher = net.weights[PIXELS:PIXELS + TEACHER]
    assert (teacher.sum(axis=0) == net.threshold).all()
    assert ((teacher > 0).sum(axis=1) == 1).all()  # each teacher input drives one class


def test_learning_on_a_subset_changes_the_weights_and_beats_the_untrained_network():
    result = digits_onchip.onchip_digits_demo(train_samples=300, test_samples=60, epochs=1,
                                              compare_offchip=False)
    learned, untrained = result["network"], result["untrained_network"]
    assert learned.learn == 0 and untrained.learn == 1
    assert result["weights_changed"] > 300
    assert np.array_equal(learned.weights[PIXELS:], untrained.weights[PIXELS:])  # teacher rows kept
    assert result["untrained_test_accuracy"] < 0.2
    assert result["test_accuracy"] >= 0.7


def test_the_full_demo_learns_to_its_accuracy_on_500_held_out_samples():
    result = digits_onchip.onchip_digits_demo(compare_offchip=False)
    assert result["test_samples"] == 500 and result["train_samples"] == 1297
    assert result["test_accuracy"] >= 0.928
    assert result["last_epoch_train_accuracy"] >= 0.95


def test_the_pixel_traces_decay_as_the_frame_timeline_needs():
    # Spiked to 255 on steps 0 and 1, then 128 on the teacher's step (a +1), 64, and 32 as the next frame starts:
    # (2 * 128) >> 8 = 1 and (2 * 64) >> 8 = 0. An exact halving (2048) would leave 127 and no +1.
    net = digits_onchip.onchip_network()
    model = GoldenModel(net)
    image = np.zeros((1, PIXELS))
    image[0, 0] = 16
    stim = digits_onchip.training_stimulus(image, [0], frames=1)
    traces = []
    for row in np.vstack([stim, np.zeros((1, stim.shape[1]), bool)]):
        model.step(row)
        traces.append(int(model.x[0]))
    assert traces == [255, 255, 128, 64, 32]
    assert (net.a_plus * 128) >> net.stdp_shift == 1 and (net.a_plus * 64) >> net.stdp_shift == 0


@pytest.fixture
def small_demo(monkeypatch):
    small = functools.partial(digits_onchip.onchip_digits_demo, train_samples=60, test_samples=20, epochs=1,
                              compare_offchip=False)
    monkeypatch.setattr(digits_onchip, "onchip_digits_demo", small)


def test_cli_on_chip_prints_the_accuracy_and_writes_the_pictures(tmp_path, small_demo):
    result = CliRunner().invoke(cli, ["-q", "demo", "digits", "--learning", "on-chip", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    stored = json.loads((tmp_path / "result.json").read_text())
    line = next(l for l in result.output.splitlines() if l.startswith("test accuracy:"))
    assert line.startswith(f"test accuracy: {stored['test_accuracy']:.3f} (20 samples), "
                           "weights learned on-chip by STDP")
    assert stored["learning"] == "on-chip"
    for name in ("learned_network.npz", "learned_weights.png", "learning_curve.png"):
        assert (tmp_path / name).exists(), name


@pytest.mark.rtl
def test_cli_on_chip_learns_on_the_simulated_board_like_the_golden_model(tmp_path, small_demo):
    result = CliRunner().invoke(cli, ["-q", "demo", "digits", "--learning", "on-chip", "-o", str(tmp_path),
                                      "--device", "rtl", "--subset", "4"])
    assert result.exit_code == 0, result.output
    stored = json.loads((tmp_path / "result.json").read_text())
    assert stored["device_learning_agrees"] is True and stored["device_test_agrees"] is True
    assert stored["device_weights_changed"] > 0
    assert "spikes, weights and predictions identical to the golden model" in result.output
