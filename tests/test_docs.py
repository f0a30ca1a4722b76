"""The Python examples of the README and the docs run as written."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks():
    for path in DOCS:
        for index, block in enumerate(re.findall(r"```python\n(.*?)```", path.read_text(), re.S)):
            # An example that opens the simulated board builds it under Verilator.
            rtl = re.search(r"""open_device\(["']rtl""", block)
            yield pytest.param(block, id=f"{path.name}-{index}", marks=[pytest.mark.rtl] if rtl else [])


@pytest.mark.parametrize("code", list(python_blocks()))
def test_python_example_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<docs>", "exec"), {"__name__": "__docs__"})


def test_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    first = re.search(r"```\w*\n(.*?)```", text, re.S).group(1).strip().splitlines()
    assert first == ["./dev.sh demo", "./dev.sh test"]
    assert "./dev.sh test" in (ROOT / ".ci" / "run").read_text()


def test_docs_name_every_cli_command():
    from neurofabric.host.cli import cli
    guide = (ROOT / "docs" / "guide.md").read_text()
    for name in cli.commands:
        assert f"neurofabric {name}" in guide, name


def test_the_limits_in_the_guide_are_the_constants():
    from neurofabric.host import files, golden, nir_io
    text = (ROOT / "docs" / "guide.md").read_text()
    section = re.search(r"^### Limits and safe writes\n(.*?)(?=^#|\Z)", text, re.S | re.M).group(1)
    stated = {name: int(value.replace(",", ""))
              for name, value in re.findall(r"`([A-Z_]+)`\s+\(([\d,]+)\)", section)}
    constants = {"MAX_MEMBERS": files.MAX_MEMBERS, "MAX_FILE_VALUES": files.MAX_FILE_VALUES,
                 "MAX_FILE_BYTES": files.MAX_FILE_BYTES, "MAX_NIR_OBJECTS": nir_io.MAX_NIR_OBJECTS,
                 "SNAPSHOT_BUDGET_BYTES": golden.SNAPSHOT_BUDGET_BYTES,
                 "SNAPSHOT_WARN_BYTES": golden.SNAPSHOT_WARN_BYTES}
    assert stated == constants


def section(path, title):
    """The text of one `## title` or `### title` section of a Markdown file."""
    text = path.read_text()
    return re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M).group(1)


def test_the_readme_example_learns_only_in_its_plastic_projection(tmp_path, monkeypatch):
    """What the README's text says: the plastic projection is all of retina -> exc and learns; the
    lateral inhibition stays as built; no synapse outside the projection is plastic."""
    import numpy as np
    monkeypatch.chdir(tmp_path)
    code = re.search(r"```python\n(.*?)```", section(ROOT / "README.md", "From Python"), re.S).group(1)
    scope = {"__name__": "__docs__"}
    exec(compile(code, "<README>", "exec"), scope)   # a SparsePlasticityWarning would be an error here
    net, rec = scope["net"], scope["rec"]
    m = 64
    assert net.plastic_mask()[:m].all() and not net.plastic_mask()[m:].any()
    changed = rec.weights != net.weights
    assert changed[:m].sum() > 0 and not changed[m:].any()
    assert np.array_equal(rec.weights[m:], net.weights[m:])
    assert rec.spikes.sum() > 0


def test_the_guide_stimulus_commands_run_and_write_what_the_text_says(tmp_path, monkeypatch):
    import numpy as np
    from click.testing import CliRunner

    import neurofabric as nf
    from neurofabric.host.cli import cli
    from neurofabric.host.encoders import trial_seeds
    from neurofabric.host.files import Stimulus
    monkeypatch.chdir(tmp_path)
    text = section(ROOT / "docs" / "guide.md", "Stimuli")
    python = re.findall(r"```python\n(.*?)```", text, re.S)
    shell = re.findall(r"```sh\n(.*?)```", text, re.S)
    assert len(python) == 1 and len(shell) == 2
    exec(compile(python[0], "<guide>", "exec"), {"__name__": "__docs__"})   # writes intensities.*
    lines = [line.split() for line in shell[0].strip().splitlines()]
    assert sum(line[1] == "stimulus" for line in lines) == 6
    for line in lines:
        assert line[0] == "neurofabric"
        result = CliRunner().invoke(cli, line[1:])
        assert result.exit_code == 0, f"{' '.join(line)}\n{result.output}"
    assert nf.load_stimulus("stim.npz").shape == (1000, 64)
    assert (nf.load_stimulus("clock.npz").sum(axis=0) == 10).all()      # 50 Hz for 400 steps of 0.5 ms
    trials = Stimulus.load("trials.npz")
    assert trials.trials == 2 and trials.spikes.shape == (2, 25, 4)      # "spikes of shape (2, 25, 4)"
    assert np.array_equal(Stimulus.load("latency-cli.npz").spikes, Stimulus.load("latency.npz").spikes)
    generated = Stimulus.load("generated.npz")
    assert generated.spikes is None and generated.rates.tolist() == [1311] * 64
    assert (generated.seed, generated.steps) == (7, 1000)
    two = Stimulus.load("generated-trials.npz")
    assert two.trials == 2 and two.rates.shape == (2, 4) and two.seed.tolist() == trial_seeds(1, 2, 25, 4).tolist()


def test_the_guide_convert_command_converts_a_core_model_1_file(tmp_path, monkeypatch):
    import numpy as np
    from click.testing import CliRunner

    import neurofabric as nf
    from neurofabric.host.cli import cli
    monkeypatch.chdir(tmp_path)
    text = section(ROOT / "docs" / "guide.md", "Converting core model 1 networks")
    shell = re.findall(r"```sh\n(.*?)```", text, re.S)
    assert len(shell) == 1 and shell[0].split() == ["neurofabric", "convert", "old.npz", "-o", "net.npz"]
    arrays = nf.random_network(4, 3, seed=1).to_arrays()
    for shift in ("mem", "syn", "pre", "post"):
        arrays[f"k_{shift}"] = np.full(np.shape(arrays.pop(f"decay_{shift}")), 31)
    np.savez("old.npz", **arrays)
    nf.save_stimulus(np.ones((5, 3), np.uint8), "stim.npz")
    refused = CliRunner().invoke(cli, ["run", "old.npz", "--input", "stim.npz", "-o", "r.npz"])
    assert refused.exit_code == 3 and "neurofabric convert OLD.npz -o NEW.npz" in refused.stderr
    result = CliRunner().invoke(cli, shell[0].split()[1:])
    assert result.exit_code == 0, result.output
    assert nf.load_network("net.npz").decay_mem.tolist() == [0] * 4     # k = 31: d = 0, no decay
