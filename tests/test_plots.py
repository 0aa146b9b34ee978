"""Library plots draw on figure objects: writing every PNG leaves the process's matplotlib
backend as the caller set it (a notebook's inline backend, here pdf), in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import matplotlib
    import numpy as np

    matplotlib.use("pdf")
    from rsmiss.reports.plots import plot_oa_vs_rate
    from rsmiss.training.classmap import write_class_map
    from rsmiss.training.report import write_confusion_png, write_curve

    out = Path(sys.argv[1])
    history = [{"epoch": e, "step": e, "lr": 1e-3, "train_loss": 1 / e, "val_oa": 50 + e,
                "wall_s": e} for e in (1, 2)]
    write_curve(out, history)
    write_confusion_png(out / "confusion.png", [[3, 1], [0, 4]], ["a", "b"], "cm")
    write_class_map(np.array([[0, 1], [2, 1]]), out / "map.tif", class_names=["a", "b"],
                    palette=[[255, 0, 0], [0, 0, 255]])
    record = {"dataset": "trento", "setting": "both", "variant": "mamol", "rate": 0.5,
              "oa": 90.0, "paper_oa": 91.0}
    assert plot_oa_vs_rate([record], out / "oa.png", title="t")
    print(matplotlib.rcParams["backend"], "pyplot" in " ".join(sys.modules))
    """
)


def test_plots_leave_the_global_backend_alone(tmp_path):
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["pdf", "False"]
    for name in ("curve.png", "confusion.png", "map.png", "oa.png"):
        assert Path(tmp_path / name).read_bytes()[:4] == b"\x89PNG", name
