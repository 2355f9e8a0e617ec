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


def test_table_labels_the_guidance_interval_row():
    scores = {"overall": 0.5, "single_object": 1.0, "colours": 0.5, "two_objects": 0.5, "position": 0.0,
              "counting": 0.5, "attribute_binding": 0.5}
    md = markdown({"guidance_4": {"guidance_scale": 4.0, "geneval": scores},
                   "guidance_4_interval": {"guidance_scale": 4.0, "guidance_below": 0.5, "geneval": scores},
                   "guidance_1": {"guidance_scale": 1.0, "geneval": scores}})
    rows = [line.split(" | ")[0] for line in md.splitlines()[2:5]]
    assert rows == ["| 4", "| 4 (at sigma <= 0.5)", "| 1"]
