import pytest
import torch
from torch import nn

from siamese.losses import get_loss
from siamese.models import get_encoder
from siamese.training.methods import SupervisedMethod
from siamese.training.trainer import Callback, NonFiniteLossError, Trainer


class Flat(nn.Module):
    """A tiny linear embedder with the Encoder attributes the trainer relies on."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, x):
        return self.lin(x.flatten(1))


def _pair_batch():
    x = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [1.0, 0.1, 0, 0], [0, 0, 1.0, 0]])
    labels = torch.tensor([0, 1, 0, 2])
    # pairs (0,2) genuine and (1,3) impostor, as pair_collate would emit
    return x, labels, (torch.tensor([0]), torch.tensor([2]), torch.tensor([1]), torch.tensor([3]))


def test_train_steps_reduce_loss_and_eval_does_not_update():
    torch.manual_seed(0)
    model = SupervisedMethod(Flat(), get_loss("margin"))
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1))
    batch = _pair_batch()
    first = trainer.step(batch, train=True).loss
    for _ in range(30):
        last = trainer.step(batch, train=True).loss
    assert last < first
    before = [p.clone() for p in model.parameters()]
    trainer.step(batch, train=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_non_finite_loss_stops_with_epoch_and_step():
    def nan_loss(emb, labels, indices):
        return emb.sum() * float("nan")

    model = SupervisedMethod(Flat(), nan_loss)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(NonFiniteLossError, match="epoch 1, step 1"):
        trainer.step(_pair_batch(), train=True)


def test_fit_calls_callbacks_in_order_and_sets_epochs():
    class Recorder(Callback):
        def __init__(self):
            self.events = []
            self.step_losses = []

        def on_epoch_start(self, trainer, epoch, num_steps):
            self.events.append(("start", epoch, num_steps))
            self.step_losses = []

        def on_step_end(self, trainer, step, loss):
            self.step_losses.append(loss)

        def on_epoch_end(self, trainer, epoch, metrics):
            mean = sum(self.step_losses) / len(self.step_losses)
            self.events.append(("end", epoch, metrics["train_loss"] == pytest.approx(mean)))

    class Loader(list):
        class dataset:  # noqa: N801 - mimics DataLoader.dataset
            epochs: list[int] = []

            @classmethod
            def set_epoch(cls, e):
                cls.epochs.append(e)

    model = SupervisedMethod(get_encoder("smallcnn", in_channels=1, embedding_dim=8), get_loss("supcon"))
    x = torch.randn(4, 1, 8, 8)
    loader = Loader([(x, torch.tensor([0, 1, 0, 1]), None)])
    rec = Recorder()
    Trainer(model, torch.optim.AdamW(model.parameters()), callbacks=[rec]).fit(loader, 2)
    assert rec.events == [("start", 0, 1), ("end", 0, True), ("start", 1, 1), ("end", 1, True)]
    assert Loader.dataset.epochs == [0, 1]


def test_time_budget_finishes_after_the_epoch_that_would_overrun(monkeypatch):
    import siamese.training.callbacks as callbacks

    clock = iter(range(0, 1000, 10))  # every epoch takes exactly 10 "seconds"
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))

    class Loader(list):
        dataset = None

    model = SupervisedMethod(get_encoder("smallcnn", in_channels=1, embedding_dim=8), get_loss("supcon"))
    loader = Loader([(torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 0, 1]), None)])
    seen = []

    class Count(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            seen.append(epoch)

    budget = callbacks.TimeBudget(35)
    trainer = Trainer(model, torch.optim.AdamW(model.parameters()), callbacks=[budget, Count()])
    trainer.fit(loader, 50)
    # after epoch 3 (30 s) a 4th would end at 40 s > 35 s: stop there, normally
    assert seen == [0, 1, 2] and not trainer.interrupted
