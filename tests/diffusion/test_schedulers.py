"""Schedulers against diffusers': timestep/sigma schedules, every step of a full loop, config files."""
import json

import pytest
import torch

from lingvis.diffusion.schedulers import (SCHEDULERS, DDIMScheduler, DPMSolverMultistepScheduler,
                                          EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler, load_scheduler,
                                          make_scheduler)

diffusers = pytest.importorskip("diffusers")

SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
CASES = [
    ("DDPMScheduler", {}),
    ("DDPMScheduler", dict(prediction_type="v_prediction", clip_sample=False, timestep_spacing="trailing", **SD)),
    ("DDPMScheduler", dict(beta_schedule="squaredcos_cap_v2", variance_type="fixed_large", thresholding=True)),
    ("DDIMScheduler", dict(clip_sample=False, set_alpha_to_one=False, steps_offset=1, **SD)),
    ("DDIMScheduler", dict(prediction_type="v_prediction", timestep_spacing="trailing", rescale_betas_zero_snr=True)),
    ("DDIMScheduler", dict(prediction_type="sample", timestep_spacing="linspace")),
    ("DPMSolverMultistepScheduler", dict(**SD)),
    ("DPMSolverMultistepScheduler", dict(solver_order=3, solver_type="heun", prediction_type="v_prediction")),
    ("DPMSolverMultistepScheduler", dict(use_karras_sigmas=True, timestep_spacing="trailing", **SD)),
    ("DPMSolverMultistepScheduler", dict(final_sigmas_type="sigma_min", lower_order_final=False, solver_order=3,
                                         timestep_spacing="leading", steps_offset=1, thresholding=True,
                                         prediction_type="sample")),
    ("DPMSolverMultistepScheduler", dict(use_flow_sigmas=True, flow_shift=3.0, prediction_type="flow_prediction")),
    ("EulerDiscreteScheduler", dict(**SD)),
    ("EulerDiscreteScheduler", dict(prediction_type="v_prediction", timestep_spacing="leading", steps_offset=1)),
    ("EulerDiscreteScheduler", dict(use_karras_sigmas=True, timestep_spacing="trailing", **SD)),
    ("EulerDiscreteScheduler", dict(interpolation_type="log_linear", final_sigmas_type="sigma_min")),
    ("FlowMatchEulerDiscreteScheduler", {}),
    ("FlowMatchEulerDiscreteScheduler", dict(shift=3.0)),
    ("FlowMatchEulerDiscreteScheduler", dict(shift=1.5, shift_terminal=0.05)),
]


def _model(x, i):
    """A deterministic stand-in for a denoiser whose output depends on the sample and the step."""
    g = torch.Generator().manual_seed(100 + i)
    return 0.3 * x + torch.randn(x.shape, generator=g)


@pytest.mark.parametrize("steps", [7, 25])
@pytest.mark.parametrize("name,fields", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_full_loop_matches_diffusers(name, fields, steps):
    ref = getattr(diffusers, name)(**fields)
    ours = make_scheduler({"_class_name": name, **fields})
    ref.set_timesteps(steps)
    ours.set_timesteps(steps)
    torch.testing.assert_close(ours.timesteps, ref.timesteps.to(ours.timesteps.dtype), atol=0, rtol=0)
    assert ours.timesteps.dtype == ref.timesteps.dtype
    if hasattr(ref, "sigmas"):
        torch.testing.assert_close(ours.sigmas, torch.as_tensor(ref.sigmas, dtype=torch.float32), atol=1e-6, rtol=0)
    assert abs(float(ours.init_noise_sigma) - float(getattr(ref, "init_noise_sigma", 1.0))) < 1e-4
    x = torch.randn(2, 3, 5, 4, generator=torch.Generator().manual_seed(0)) * float(getattr(ref, "init_noise_sigma", 1.0))
    x_ref = x.clone()
    for i, t in enumerate(ref.timesteps):
        gen_a, gen_b = torch.Generator().manual_seed(i), torch.Generator().manual_seed(i)
        inp_ref = ref.scale_model_input(x_ref, t) if hasattr(ref, "scale_model_input") else x_ref
        inp = ours.scale_model_input(x, i)
        assert (inp - inp_ref).abs().max() <= 1e-5
        x_ref = ref.step(_model(inp_ref, i), t, x_ref, generator=gen_a).prev_sample
        x = ours.step(_model(inp, i), i, x, generator=gen_b)
        diff = (x - x_ref).abs().max().item()
        assert diff <= 1e-5, (i, diff)  # bit-identical in practice: same float ops in the same order


@pytest.mark.parametrize("name", ["DDPMScheduler", "DDIMScheduler"])
@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_training_forward_process_matches_diffusers(name, prediction):
    ref = getattr(diffusers, name)(prediction_type=prediction, **SD)
    ours = make_scheduler({"_class_name": name, "prediction_type": prediction, **SD})
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 3, 6, 6, generator=g), torch.randn(4, 3, 6, 6, generator=g)
    t = ours.sample_training_timesteps(4, g)
    assert t.dtype == torch.int64 and int(t.min()) >= 0 and int(t.max()) < 1000
    torch.testing.assert_close(ours.q_sample(x0, noise, t), ref.add_noise(x0, noise, t), atol=1e-6, rtol=0)
    want = noise if prediction == "epsilon" else ref.get_velocity(x0, noise, t)
    torch.testing.assert_close(ours.training_target(x0, noise, t), want, atol=1e-6, rtol=0)


def test_flow_forward_process_matches_diffusers():
    ref = diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0)
    ours = FlowMatchEulerDiscreteScheduler(shift=3.0)
    ref.set_timesteps(10)
    ours.set_timesteps(10)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g)
    t = ours.timesteps[[0, 4, 9]]
    torch.testing.assert_close(ours.q_sample(x0, noise, t), ref.scale_noise(x0, t, noise), atol=1e-6, rtol=0)
    assert torch.equal(ours.training_target(x0, noise, t), noise - x0)
    tt = ours.sample_training_timesteps(1000, g)
    assert 0 < float(tt.min()) and float(tt.max()) < 1000 and float(tt.mean()) > 500  # shift 3 favours high noise


@pytest.mark.parametrize("name,fields", [c for c in CASES if c[1]][:: 3])
def test_config_files_round_trip_with_diffusers(tmp_path, name, fields):
    ours = make_scheduler({"_class_name": name, **fields})
    ours.save(tmp_path / "a")
    ref = getattr(diffusers, name).from_pretrained(tmp_path / "a")
    for k, v in fields.items():
        assert ref.config[k] == v
    ref.save_config(tmp_path / "b")
    back = load_scheduler(tmp_path / "b")
    assert type(back) is type(ours) and back.config == ours.config


def test_swap_keeps_noise_schedule_and_refuses_flow_mixups(tmp_path):
    ddim = diffusers.DDIMScheduler(prediction_type="v_prediction", **SD)
    ddim.save_config(tmp_path)
    euler = load_scheduler(tmp_path, name="euler")
    assert isinstance(euler, EulerDiscreteScheduler) and euler.config.prediction_type == "v_prediction"
    assert euler.config.beta_schedule == "scaled_linear" and "clip_sample" in euler.ignored_keys
    with pytest.raises(ValueError, match="cannot be sampled with FlowMatch"):
        load_scheduler(tmp_path, name="flow-euler")
    flow = FlowMatchEulerDiscreteScheduler(shift=2.0).to_config()
    dpm = make_scheduler(flow, name="dpm++")
    assert isinstance(dpm, DPMSolverMultistepScheduler) and dpm.config.use_flow_sigmas and dpm.config.flow_shift == 2.0
    with pytest.raises(ValueError, match="cannot be sampled with DDIMScheduler"):
        make_scheduler(flow, name="ddim")
    with pytest.warns(UserWarning, match="PNDMScheduler has no lingvis twin"):
        s = make_scheduler({"_class_name": "PNDMScheduler", "skip_prk_steps": True, **SD})
    assert isinstance(s, DDIMScheduler) and s.config.beta_end == SD["beta_end"]


@pytest.mark.parametrize("config,match", [
    ({"_class_name": "DDIMScheduler", "prediction_type": "x"}, "prediction_type"),
    ({"_class_name": "DDIMScheduler", "beta_schedule": "cubic"}, "beta_schedule"),
    ({"_class_name": "DPMSolverMultistepScheduler", "algorithm_type": "sde-dpmsolver++"}, "algorithm_type"),
    ({"_class_name": "EulerDiscreteScheduler", "timestep_spacing": "random"}, "timestep_spacing"),
    ({"_class_name": "FlowMatchEulerDiscreteScheduler", "use_dynamic_shifting": True}, "use_dynamic_shifting"),
    ({"_class_name": "NoSuchScheduler"}, "unsupported scheduler class"),
])
def test_bad_configs_name_the_field(config, match, tmp_path):
    (tmp_path / "scheduler_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=match):
        load_scheduler(tmp_path)


def test_step_before_set_timesteps_and_bad_step_counts():
    s = DDIMScheduler()
    with pytest.raises(RuntimeError, match="set_timesteps"):
        s.step(torch.zeros(1), 0, torch.zeros(1))
    for bad in (0, -3, 1001):
        with pytest.raises(ValueError, match="num_inference_steps"):
            s.set_timesteps(bad)
    assert sorted(SCHEDULERS) == sorted(["DDPMScheduler", "DDIMScheduler", "DPMSolverMultistepScheduler",
                                         "EulerDiscreteScheduler", "FlowMatchEulerDiscreteScheduler"])


def test_min_snr_weights():
    s = DDIMScheduler(prediction_type="v_prediction", beta_schedule="squaredcos_cap_v2")
    t = torch.tensor([0, 500, 999])
    snr = s.snr(t)
    assert snr[0] > 5 > snr[2]
    w = s.min_snr_weight(t, 5.0)
    torch.testing.assert_close(w, snr.clamp(max=5.0) / (snr + 1))
    eps = DDIMScheduler(prediction_type="epsilon").min_snr_weight(t, 5.0)
    assert float(eps[0]) < 1.0 and float(eps[2]) == pytest.approx(1.0)
