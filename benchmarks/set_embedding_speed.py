"""Training cost of the point-cloud (set) encoder: SetEmbedding against the padded computation it replaced.

    python benchmarks/set_embedding_speed.py [--threads 1] [--batch 256] [--repeats 20]

SetEmbedding runs its point MLP on the real points only and scatters them back to their clouds. The
baseline, timed in the same run on the same weights and clouds, runs the MLP on every slot of the padded
tensor and masks the padding out of the mean and the max (the straightforward padded encoder). Rows: clouds of
dis-pdf's calibration setting (40-135 points padded to 135), femtoscopy-like full clouds, and the
encoder inside a whole conditional-flow training step (forward and backward). Both paths give the same
features (checked here to 1e-5, and in tests/test_estimators.py against clouds encoded one by one).
"""

from __future__ import annotations

import argparse
import time

import torch

from hadrinv.inference.embeddings import SetEmbedding
from hadrinv.inference.flow import ConditionalFlow


def padded_forward(embedding: SetEmbedding, x: torch.Tensor) -> torch.Tensor:
    padding = torch.isnan(x).any(-1, keepdim=True)
    h = embedding.point_net(torch.where(padding, torch.zeros_like(x), x))
    count = (~padding).sum(1).clamp(min=1)
    mean = torch.where(padding, 0.0, h).sum(1) / count
    largest = torch.where(padding, torch.finfo(h.dtype).min, h).amax(1)
    pooled = [mean, largest, count.to(h.dtype).log()] if embedding.count_feature else [mean, largest]
    return embedding.head(torch.cat(pooled, -1))


def clouds(batch: int, low: int, high: int, x_dim: int, generator: torch.Generator) -> torch.Tensor:
    x = torch.randn(batch, high, x_dim, generator=generator)
    sizes = torch.randint(low, high + 1, (batch, 1), generator=generator)
    x[torch.arange(high) >= sizes] = float("nan")
    return x


def milliseconds(step, repeats: int) -> float:
    step()
    started = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - started) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, forward + backward, "
        f"mean of {args.repeats}\n"
    )
    print("| case | padded (ms) | SetEmbedding (ms) | speed-up |")
    print("|---|---|---|---|")
    cases = [
        (
            "dis-pdf encoder, 40-135 of 135 points, hidden 64",
            4,
            40,
            135,
            {"features": 48, "hidden": 64, "count_feature": True},
        ),
        (
            "full clouds, 135 of 135 points, hidden 64",
            4,
            135,
            135,
            {"features": 48, "hidden": 64, "count_feature": True},
        ),
        ("femtoscopy-like encoder, 20-60 of 60 points, hidden 96", 2, 20, 60, {"features": 64, "hidden": 96}),
    ]
    for name, x_dim, low, high, options in cases:
        embedding = SetEmbedding(x_dim, **options)
        x = clouds(args.batch, low, high, x_dim, generator)
        difference = (padded_forward(embedding, x) - embedding(x)).abs().max().item()
        if difference > 1e-5:
            raise SystemExit(f"{name}: the two paths differ by {difference:.2e}")
        before = milliseconds(lambda: padded_forward(embedding, x).square().sum().backward(), args.repeats)
        after = milliseconds(lambda: embedding(x).square().sum().backward(), args.repeats)
        print(f"| {name} | {before:.1f} | {after:.1f} | {before / after:.2f} |")

    flow = ConditionalFlow(
        12, 4, embedding="set", embedding_options={"features": 48, "hidden": 64, "count_feature": True}, hidden=96
    )
    theta, x = torch.rand(args.batch, 12, generator=generator), clouds(args.batch, 40, 135, 4, generator)
    flow._set_standardization(theta, x)

    def step(padded: bool):
        u, _ = flow.standardize_theta(theta)
        xs = flow.standardize_x(x)
        context = padded_forward(flow.embedding, xs) if padded else flow.embedding(xs)
        flow.training_loss(u, context, xs).mean().backward()

    before, after = milliseconds(lambda: step(True), args.repeats), milliseconds(lambda: step(False), args.repeats)
    print(
        f"| dis-pdf cloud flow, one training step (12 parameters) | {before:.1f} | {after:.1f} | {before / after:.2f} |"
    )


if __name__ == "__main__":
    main()
