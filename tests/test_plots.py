"""The figures: written whole, readable, drawn from the result, headless."""

import os
import subprocess
import sys

import matplotlib.image
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from linreg import plots, scratch
from linreg.config import SCRATCH
from linreg.data import make_data

from .conftest import defaults
from .helpers import LOSS_ATOL, REPLAY_RTOL, ROOT, START, replay, run_main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEIGHT, WIDTH = 480, 640  # plots.SIZE at plots.DPI


def test_plot_dir_writes_three_readable_pngs(impl, tmp_path):
    folder = tmp_path / "made" / "if" / "missing"
    code, _, _ = run_main(impl, ["--quiet", "--epochs", "1", "--plot-dir", str(folder)])
    assert code == 0
    assert sorted(os.listdir(folder)) == sorted(plots.FILES)  # no temporary files left
    for name in plots.FILES:
        assert (folder / name).read_bytes()[:8] == PNG_SIGNATURE
        assert matplotlib.image.imread(folder / name).shape == (HEIGHT, WIDTH, 4)


def test_loss_figure_draws_the_oracles_history(impl):
    # Against the float64 oracle of tests/test_oracles.py, not the result's own lists.
    config = defaults(impl, epochs=2)
    result = impl.train(config, start=START)
    expected = replay(impl, config, START)
    lines = plots.figures(result)["loss.png"].axes[0].lines
    assert_allclose(lines[0].get_ydata(), expected["batch_losses"], rtol=REPLAY_RTOL, atol=LOSS_ATOL)
    assert_allclose(lines[1].get_ydata(), expected["moving_losses"], rtol=REPLAY_RTOL, atol=LOSS_ATOL)
    assert_allclose(lines[2].get_ydata(), [expected["initial_loss"]] + expected["epoch_losses"],
                    rtol=REPLAY_RTOL, atol=LOSS_ATOL)
    assert_array_equal(lines[0].get_xdata(), range(1, 201))
    assert_array_equal(lines[2].get_xdata(), [0, 100, 200])  # 1000 / 10 iterations an epoch


def test_figures_redraw_the_same_sample(impl):
    # The data and fit figures draw the data again from the seed: the same sample.
    result = impl.train(defaults(impl, epochs=1, seed=4))
    data = plots.figures(result)["data.png"].axes[0].lines[0]
    from linreg.data import make_data, ols
    features, labels = make_data(result.config)
    assert_array_equal(data.get_ydata(), labels.asnumpy())
    assert ols(features, labels)[1] == result.ols_b


def test_unwritable_plot_dir_is_refused_before_training(impl):
    code, out, err = run_main(impl, ["--plot-dir", "/etc/passwd/plots"])
    assert code == 2 and out == ""
    assert err.strip() == (f"python -m linreg.{impl.IMPLEMENTATION}: error: --plot-dir: "
                           "/etc/passwd is not a directory (see --help)")


def test_divergence_makes_no_plot_dir(tmp_path):
    code, _, _ = run_main(scratch, ["--batch-size", "1000", "--plot-dir", str(tmp_path / "p")])
    assert code == 3 and not (tmp_path / "p").exists()


HEADLESS = """
import sys
import linreg.cli, linreg.gluon, linreg.plots, linreg.scratch
assert "matplotlib.pyplot" not in sys.modules, "importing linreg chose a backend"
linreg.gluon.main(sys.argv[1:])
assert "matplotlib.pyplot" not in sys.modules, "saving figures needed pyplot"
"""


def test_headless_without_display(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    proc = subprocess.run([sys.executable, "-c", HEADLESS, "--quiet", "--epochs", "1",
                           "--plot-dir", str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(tmp_path)) == sorted(plots.FILES)
    proc = subprocess.run([sys.executable, "-m", "linreg.gluon", "--quiet", "--epochs", "1",
                           "--show"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert proc.stderr.strip() == "--show: no display (DISPLAY is not set); not showing the figures"


def test_comparison_script(tmp_path):
    out = tmp_path / "comparison.png"
    proc = subprocess.run([sys.executable, "scripts/compare.py", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert matplotlib.image.imread(out).shape == (HEIGHT, 2 * WIDTH, 4)


def test_loss_figure_says_what_the_moving_average_is():
    result = scratch.train(defaults(scratch, epochs=1))
    labels = [line.get_label() for line in plots.figures(result)["loss.png"].axes[0].lines]
    assert labels[1] == "moving average of ~100 batches: the progress lines (lags)"


def test_comparison_keeps_one_colour_per_half_and_states_the_unit():
    from matplotlib.colors import to_hex
    from linreg import gluon
    results = [scratch.train(defaults(scratch, epochs=1)), gluon.train(defaults(gluon, epochs=1))]
    fig = plots.draw_comparison(plots.new_figure(size=(12.8, 4.8)), results)
    loss_ax, error_ax = fig.axes
    for result in results:
        name = result.implementation
        lines = {to_hex(l.get_color()) for l in loss_ax.lines if l.get_label().startswith(name + ":")}
        bars = {to_hex(p.get_facecolor()) for c in error_ax.containers
                if c.get_label().startswith(name + " ") for p in c.patches}
        assert len(lines) == 1 and lines == bars, name
    assert len({to_hex(l.get_color()) for l in loss_ax.lines}) == 2
    assert "½(ŷ − y)² × 2" in loss_ax.get_ylabel() and "(ŷ − y)²" in loss_ax.get_ylabel()
    # Gluon's curve is drawn doubled, in scratch's unit.
    gluon_dots = [l for l in loss_ax.lines if l.get_label() == "gluon: all the data"][0]
    assert gluon_dots.get_ydata()[0] == 2 * results[1].initial_loss


@pytest.mark.parametrize("k", [1, 3, 10])
def test_every_title_fits_its_figure_whatever_the_number_of_inputs(k):
    # Ten inputs once cut fit.png's title off at both sides.
    true_w = tuple(-3.4 + 0.9 * i for i in range(k))
    result = scratch.train(defaults(scratch, epochs=1, true_w=true_w))
    for name, fig in plots.figures(result).items():
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            box = ax.title.get_window_extent(renderer)
            assert 0 <= box.x0 and box.x1 <= fig.bbox.width, (name, ax.title.get_text())
    shown = plots.figures(result)["fit.png"].axes[0].get_title()
    learned = shown.split("[")[1].split("]")[0].split(", ")
    assert len(learned) == min(k, 3) + (k > 3) and (learned[-1] == f"… {k} in all") == (k > 3)


def test_comparison_script_leaves_the_tracked_figure_alone(tmp_path):
    tracked = os.path.join(ROOT, "docs", "comparison.png")
    before = os.stat(tracked).st_mtime_ns
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "compare.py")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == os.path.join("plots", "comparison.png")
    assert (tmp_path / "plots" / "comparison.png").exists() and os.stat(tracked).st_mtime_ns == before


# plots -----------------------------------------------------------------------------------

def test_epoch_marks_sit_at_each_epochs_last_iteration_when_the_last_batch_is_short(impl):
    # 1005 examples in batches of 10: 101 iterations an epoch, the last of 5 examples.
    result = impl.train(defaults(impl, epochs=2, num_examples=1005))
    lines = plots.figures(result)["loss.png"].axes[0].lines
    assert len(result.batch_losses) == 202
    assert lines[2].get_xdata().tolist() == [0, 101, 202]


def test_the_figures_of_a_one_input_run_draw_its_input(tmp_path):
    code, _, err = run_main(scratch, ["--quiet", "--epochs", "1", "--true-w", "3", "--plot-dir", str(tmp_path)])
    assert code == 0, err
    result = scratch.train(SCRATCH.replace(true_w=(3.0,), epochs=1))
    features, labels = make_data(result.config)
    data = plots.figures(result)["data.png"].axes[0]
    assert data.get_xlabel() == "X[:, 0]"
    assert data.lines[0].get_xdata().tolist() == features.asnumpy()[:, 0].tolist()
