"""The score-vs-steps sweep of benchmarks/t2i_learning: samplers that fit the model's kind, and the plot."""
from types import SimpleNamespace

from PIL import Image

from benchmarks.t2i_learning import (
    FLOW_SAMPLERS,
    SAMPLERS,
    markdown,
    sweep_plot,
    sweep_samplers,
)
from lingvis.diffusion.schedulers import make_scheduler


def _model(cfg):
    return SimpleNamespace(config=SimpleNamespace(scheduler=cfg))


def test_sweep_samplers_fit_the_model_kind():
    flow = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 1.0}
    eps = {"_class_name": "DDPMScheduler", "num_train_timesteps": 1000, "beta_schedule": "linear"}
    assert sweep_samplers(_model(flow)) == FLOW_SAMPLERS
    assert sweep_samplers(_model(eps)) == SAMPLERS
    for cfg in (flow, eps):  # every sampler of the sweep can sample that model
        for name in sweep_samplers(_model(cfg)):
            make_scheduler(cfg, name=name)


def test_sweep_plot_and_table(tmp_path):
    rows = [{"sampler": s, "steps": n, "overall": 0.1 * i + n / 100} for i, s in enumerate(FLOW_SAMPLERS)
            for n in (10, 25, 50)]
    sweep_plot(rows, tmp_path / "steps.png")
    assert Image.open(tmp_path / "steps.png").size[0] > 100
    md = markdown({"sweep": rows})
    assert "| dpm++ | 0.100 | 0.250 | 0.500 |" in md and "FlowMatch" in md
