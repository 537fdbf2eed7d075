"""DiscFlow's reweighting classifier: boosted trees against the paper's MLP, on the same flow and events.

A flow is fitted by maximum likelihood to J/psi -> gamma pi+ pi- events of the PWA model R0 (Dalitz features of
the event-generator workflow); its events are then reweighted by w = D / (1 - D) from (a) gradient-boosted trees
(`hadrinv.inference.boosted_classifier.fit_log_ratio`, what DiscFlow uses by default) and (b) an MLP trained by
Adam against fresh flow events (DiscFlow's `classifier: mlp`). Both weightings are judged on held-out events by two
classifier two-sample tests: the gradient boosting of `event_metrics.classifier_two_sample_test`, and an MLP, so
that trees are not only judged by trees. Prints AUCs, the weights' spread and the time of each classifier.

    python benchmarks/discflow_classifiers.py [--events 20000] [--mlp-steps 2000 6000]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from sklearn.metrics import roc_auc_score
from torch.nn.functional import binary_cross_entropy_with_logits

from hadrinv.data.event_tables import EventTable
from hadrinv.data.pwa_events import COLUMNS
from hadrinv.data.pwa_model import generate_events, no_acceptance, read_model
from hadrinv.inference.boosted_classifier import fit_log_ratio
from hadrinv.inference.discflow import FlowGenerator, GeneratorSettings
from hadrinv.inference.embeddings import mlp
from hadrinv.inference.event_metrics import classifier_two_sample_test, weight_summary
from hadrinv.workflows.event_generator.features import representation_of

CLIP = (0.1, 10.0)  # DiscFlow's default weight range


def mlp_weights(flow: FlowGenerator, x: torch.Tensor, events: torch.Tensor, steps: int, batch: int = 1024):
    """w for ``events`` from an MLP (3 x 128) trained on x against fresh flow events, Adam with a cosine rate."""
    torch.manual_seed(0)
    u = flow._standardize(x)
    net = mlp([x.shape[1], 128, 128, 128, 1])
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    for k in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = 1e-3 * (1 + math.cos(math.pi * k / steps))
        with torch.no_grad():
            fake = flow._push(flow._base_points(batch, None))
        real = net(u[torch.randint(len(u), (batch,))])[:, 0]
        fake = net(fake)[:, 0]
        loss = binary_cross_entropy_with_logits(real, torch.ones_like(real)) + binary_cross_entropy_with_logits(
            fake, torch.zeros_like(fake)
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return net(flow._standardize(events))[:, 0].double()


def tree_weights(flow: FlowGenerator, x: torch.Tensor, events: torch.Tensor, fake_events: int):
    fake, _ = flow.sample(fake_events, torch.Generator().manual_seed(11))
    trees, _ = fit_log_ratio(flow._standardize(x), flow._standardize(fake))
    return trees(flow._standardize(events))


def mlp_judge(truth: torch.Tensor, generated: torch.Tensor, weight=None, epochs: int = 40) -> float:
    """A second two-sample test: an MLP trained on half of (truth, generated), weighted AUC on the other half."""
    torch.manual_seed(0)
    x = torch.cat([truth, generated]).float()
    y = torch.cat([torch.zeros(len(truth)), torch.ones(len(generated))])
    w_gen = torch.ones(len(generated)) if weight is None else torch.as_tensor(weight).float()
    w = torch.cat([torch.full((len(truth),), len(generated) / len(truth)), w_gen / w_gen.mean()])
    x = (x - x.mean(0)) / x.std(0)
    order = torch.randperm(len(x))
    train, test = order[: len(x) // 2], order[len(x) // 2 :]
    net = mlp([x.shape[1], 128, 128, 128, 1])
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    steps = epochs * (len(train) // 512)
    for k in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = 0.5e-3 * (1 + math.cos(math.pi * k / steps))
        i = train[torch.randint(len(train), (512,))]
        loss = binary_cross_entropy_with_logits(net(x[i])[:, 0], y[i], weight=w[i])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        score = net(x[test])[:, 0].numpy()
    return float(roc_auc_score(y[test].numpy(), score, sample_weight=w[test].numpy()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="training and held-out events, each")
    parser.add_argument("--mlp-steps", type=int, nargs="+", default=[2000, 6000])
    parser.add_argument("--fake-events", type=int, default=100_000, help="flow events the trees are fitted on")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    n = args.events
    values = torch.cat(generate_events(read_model("R0"), 2 * n, no_acceptance, torch.Generator().manual_seed(7)), 1)
    rep = representation_of(EventTable(COLUMNS, values, None, "pwa", "R0"))
    features = rep.encode(values)
    x, held_out = features[:n], features[n:]
    start = time.perf_counter()
    flow = FlowGenerator(5, GeneratorSettings(transforms=4, hidden=48, epochs=12, batch=512)).fit(x)
    print(f"flow fitted on {n} R0 events in {time.perf_counter() - start:.0f} s")
    events, _ = flow.sample(n, torch.Generator().manual_seed(3))
    base = classifier_two_sample_test(held_out.numpy(), events.numpy())
    base_judge = mlp_judge(held_out, events)
    # "left": AUC - 0.5 after weighting over before, per judge: the share of the flow's mismatch that remains
    header = ("weights", "AUC (trees)", "left", "AUC (MLP)", "left", "in [0.5, 2]", "ESS / N", "s")
    print("{:<22} {:>12} {:>6} {:>10} {:>6} {:>12} {:>8} {:>6}".format(*header))
    print(f"{'none':<22} {base.auc:12.4f} {1:6.2f} {base_judge:10.4f} {1:6.2f} {1:12.4f} {1:8.3f} {0:6.0f}")
    candidates = [("boosted trees", lambda: tree_weights(flow, x, events, args.fake_events))]
    candidates += [(f"MLP, {s} steps", lambda s=s: mlp_weights(flow, x, events, s)) for s in args.mlp_steps]
    for name, weigh in candidates:
        start = time.perf_counter()
        log_w = weigh()
        seconds = time.perf_counter() - start
        w = torch.exp(log_w.clamp(math.log(CLIP[0]), math.log(CLIP[1])))
        w = (w / w.mean()).numpy()
        trees = classifier_two_sample_test(held_out.numpy(), events.numpy(), w).auc_weighted
        summary = weight_summary(w)
        judge = mlp_judge(held_out, events, w)
        left_trees, left_judge = (trees - 0.5) / (base.auc - 0.5), (judge - 0.5) / (base_judge - 0.5)
        print(
            f"{name:<22} {trees:12.4f} {left_trees:6.2f} {judge:10.4f} {left_judge:6.2f} "
            f"{summary.fraction_in_band:12.4f} {summary.ess_fraction:8.3f} {seconds:6.0f}"
        )


if __name__ == "__main__":
    main()
