import pytest
import torch
import torch.nn.functional as F

from nnkit import models
from nnkit.errors import NnkitError

NAMES = [e.name for e in models.list_models()]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(3, 32), (1, 28)])
def test_every_registered_model(name, shape):
    channels, size = shape
    torch.manual_seed(0)
    model = models.create(name, 10, channels, size)
    x, y = torch.rand(8, channels, size, size), torch.arange(8) % 10
    out = model(x)
    assert out.shape == (8, 10) and torch.isfinite(out).all()
    # One optimiser step lowers the loss on the batch (same dropout mask before and after).
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    torch.manual_seed(1)
    before = F.cross_entropy(model(x), y)
    opt.zero_grad()
    before.backward()
    opt.step()
    torch.manual_seed(1)
    after = F.cross_entropy(model(x), y)
    assert after.item() < before.item()
    # Rebuilt from its spec, the model has the same parameter shapes.
    clone = models.create(**model.spec)
    assert [p.shape for p in clone.parameters()] == [p.shape for p in model.parameters()]


@pytest.mark.parametrize("name", NAMES)
def test_models_are_captum_safe(name):
    """Each activation module runs once per forward and nothing runs in place (captum's hooks need it)."""
    model = models.create(name, 10, 3, 32)
    calls = {}
    for mod_name, mod in model.named_modules():
        assert not getattr(mod, "inplace", False), f"{mod_name} is in-place"
        if not list(mod.children()):
            mod.register_forward_hook(lambda m, i, o, n=mod_name: calls.__setitem__(n, calls.get(n, 0) + 1))
    model(torch.rand(2, 3, 32, 32))
    assert calls and max(calls.values()) == 1, {k: v for k, v in calls.items() if v > 1}


def test_options_and_errors():
    m = models.create("cnn", 4, 1, 28, activation="tanh", dropout=0.0, batch_norm=False, pool="flatten")
    assert m.spec["activation"] == "tanh" and m(torch.rand(2, 1, 28, 28)).shape == (2, 4)
    plain = models.create("resnet", 10, 3, 32, depth=8, residual=False)
    assert plain.spec["residual"] is False
    with pytest.raises(NnkitError, match="unknown model"):
        models.create("vit", 10)
    with pytest.raises(NnkitError, match="no option"):
        models.create("cnn", 10, colour="red")
    with pytest.raises(NnkitError, match="unknown activation"):
        models.create("cnn", 10, activation="swish")
    with pytest.raises(NnkitError, match="6n\\+2"):
        models.create("resnet", 10, depth=10)


def test_cnn_conv_dropout_drops_whole_feature_maps_and_keeps_old_checkpoints_loading():
    """Spatial dropout (Tompson et al. 2015): 0 adds no layer (a spec without the option rebuilds the same model);
    a rate drops whole channels after each conv stage in training and nothing in eval."""
    torch.manual_seed(0)
    plain = models.create("cnn", 10, 3, 32, widths=(8, 16), hidden=16)
    old_spec = {k: v for k, v in plain.spec.items() if k != "conv_dropout"}  # a checkpoint from before the option
    rebuilt = models.create(**old_spec)
    assert plain.spec["conv_dropout"] == 0.0 and not any(isinstance(m, torch.nn.Dropout2d) for m in plain.modules())
    rebuilt.load_state_dict(plain.state_dict())  # strict: the same parameter and buffer names
    dropped = models.create("cnn", 10, 3, 32, widths=(8, 16), hidden=16, conv_dropout=0.5)
    dropped.load_state_dict(plain.state_dict())  # dropout holds no weights
    x = torch.rand(4, 3, 32, 32)
    assert torch.equal(dropped.eval()(x), plain.eval()(x))
    seen = []
    dropped.net.features[0].register_forward_hook(lambda m, i, o: seen.append(o))
    torch.manual_seed(1)
    dropped.train()(x)
    maps = seen[-1]  # N×C×H×W after the first stage's ReLU, pool and dropout
    kept = maps.flatten(2).abs().amax(2) > 0
    before = dropped.net.features[0][:-1]((x - dropped.mean) / dropped.std)  # the stage without its dropout
    live = before.flatten(2).abs().amax(2) > 0  # maps that ReLU left non-zero
    assert (live & ~kept).any() and (live & kept).any()  # some whole maps dropped, some kept
    assert torch.allclose(maps[kept], 2 * before[kept])  # kept maps scaled by 1 / (1 - 0.5), every pixel
    with pytest.raises(NnkitError, match="conv_dropout"):
        models.create("cnn", 10, conv_dropout=1.0)


def test_normalisation_lives_inside_the_model():
    m = models.create("mlp", 2, 1, 4, mean=[0.25], std=[0.5])
    assert torch.allclose(m.mean.flatten(), torch.tensor([0.25])) and torch.allclose(m.std.flatten(), torch.tensor([0.5]))
