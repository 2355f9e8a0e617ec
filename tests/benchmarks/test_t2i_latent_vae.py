"""benchmarks/t2i_latent_vae: the detector's exact-scene accuracy on reconstructions equals its accuracy on the renders
for a lossless autoencoder and drops to zero for one that returns a blank image."""
import torch

from benchmarks.t2i_latent_vae import reconstruction_accuracy


class _Identity(torch.nn.Module):
    def encode(self, x):  # (B, 3, H, W) -> (mean, logvar)
        return x, torch.zeros_like(x)

    def decode(self, z):
        return z


class _Blank(_Identity):
    def decode(self, z):
        return torch.ones_like(z)  # white


def test_reconstruction_accuracy_tracks_what_the_decoder_returns():
    exact = reconstruction_accuracy(_Identity(), 12)
    assert exact["scenes"] == 12 and exact["real_accuracy"] >= 11 / 12
    assert exact["reconstruction_accuracy"] == exact["real_accuracy"] and exact["reconstruction_mse"] == 0
    blank = reconstruction_accuracy(_Blank(), 12)
    assert blank["reconstruction_accuracy"] == 0 and blank["misses"] == {"count": 12}
    assert blank["reconstruction_mse"] > 0
