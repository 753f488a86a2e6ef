"""Notebook 04 hands its final network to notebook 03, for real: trained by coursekit.cifar's
own code path, written to its hand-off file, loaded by coursekit.cam; and the two notebooks
executed one after the other in smoke mode, in JupyterLab's layout and as batch runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import nbformat
import torch

from coursekit.cam import backbones as cb
from coursekit.cam import lesson as lcam
from coursekit.checkpoint import checkpoint_path
from coursekit.cifar import lesson as lc
from coursekit.cifar.handoff import read_handoff, write_handoff
from coursekit.settings import REPO_ROOT

NB03, NB04 = "03_cam_sensitivity", "04_cifar10_256k"
NOTEBOOKS = REPO_ROOT / "notebooks"
# Notebook 03 on notebook 04's network, shortened: one transform in the grids, one method
# in the curves, no widget.
FAST03 = {"backbone": "cifar10", "transforms": ["shear"], "curve_methods": ["gradcam"],
          "show_explorer": False}  # fmt: skip
SAID = "transmis par le notebook 04 : "  # notebook 03's line naming the hand-off it loaded


def test_the_trained_final_net_reaches_cam_through_its_handoff(smoke, one_thread):
    data = lc.load_data()
    config = dataclasses.replace(
        lc.FINAL, widths=(8, 16, 16), subset=200, holdout=50, batch_size=50, epochs=1,
        time_budget_s=None, amp=False, device="cpu",
    )  # fmt: skip
    checkpoint = checkpoint_path(NB04, config.name)
    model, _ = lc.run(config, checkpoint=checkpoint, verbose=False, data=data)
    _, val, _ = lc.make_loaders(config, data)
    acc = lc.evaluate_split(model, val, config.tta_flip)["acc"]
    path = write_handoff(config, model, acc, checkpoint, data.classes)

    net = cb.load_backbone("cifar10")  # no path given: found in the smoke Lab folder
    assert net.handoff.path == path == smoke / "runs" / "smoke" / NB04 / "handoff" / path.name
    assert net.handoff.val_acc == acc and "mode smoke" in net.caption
    # Notebook 03's images are notebook 04's validation images, normalized the same way...
    split = lc.first_images(data, net.handoff.subset)
    _, val_index = lc.holdout_split(split.labels, net.handoff.holdout)
    assert torch.equal(split.images[val_index], val.images)
    x04, _ = next(iter(val))
    x03 = lcam.to_input(val.images[: len(x04)].permute(0, 2, 3, 1).numpy(), net)
    torch.testing.assert_close(x03, x04)
    # ... and the network gives notebook 04's outputs.
    with torch.no_grad():
        torch.testing.assert_close(net.model(x03), model.eval()(x04))
    cams, _ = lcam.compute_cams(net, val.images[:2].permute(0, 2, 3, 1).numpy(), "gradcam", 3)
    assert cams.shape == (2, 32, 32)


def _loaded_handoff(executed: Path) -> Path:
    """Return the hand-off file an executed notebook 03 says it loaded."""
    nb = nbformat.read(executed, as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    lines = [line for line in text.splitlines() if line.startswith(SAID)]
    assert len(lines) == 1, f"notebook 03 did not say which hand-off it loaded:\n{text[-2000:]}"
    return Path(lines[0][len(SAID) :]).resolve()


def test_notebook_03_uses_notebook_04s_network_in_jupyterlab(smoke):
    import papermill

    for name, parameters in ((NB04, {}), (NB03, FAST03)):
        papermill.execute_notebook(
            str(NOTEBOOKS / f"{name}.ipynb"), str(smoke / f"{name}.ipynb"),
            parameters=parameters, cwd=str(NOTEBOOKS), progress_bar=False,
        )  # fmt: skip
    handoff = smoke / "runs" / "smoke" / NB04 / "handoff" / "final_net.json"
    assert _loaded_handoff(smoke / f"{NB03}.ipynb") == handoff.resolve()
    assert read_handoff(handoff).checkpoint.is_file()


def test_notebook_03_uses_notebook_04s_network_in_batch_runs(smoke):
    from coursekit.batch.runner import run_notebook

    run04 = run_notebook(NOTEBOOKS / f"{NB04}.ipynb", smoke=True)
    run03 = run_notebook(NOTEBOOKS / f"{NB03}.ipynb", FAST03, smoke=True)
    assert run04.parent == smoke.resolve() / "runs" / NB04  # a batch run, not the Lab folder
    assert not (smoke / "runs" / "smoke").exists()
    assert _loaded_handoff(run03 / f"{NB03}.ipynb") == (run04 / "handoff" / "final_net.json")
