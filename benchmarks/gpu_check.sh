#!/usr/bin/env bash
# The --device cuda paths and the GPU timings, in a few minutes on one GPU. Prints the figures that
# docs/results.md records for the GPU; needs the package installed (pip install -e ".[test]").
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
# pi pi: fit, GAN ensemble and diffusion model on the GPU (quick preset), then the CPU for the ratio
for device in cuda cpu; do
  start=$SECONDS
  hadrinv run pipi-amplitude --preset quick --method all --device "$device" --serial --no-progress \
    --out "$out/pipi-$device" --force > "$out/pipi-$device.log" 2>&1 || echo "exit code $?"
  tail -n 25 "$out/pipi-$device.log"
  echo "pipi quick --method all on $device: $((SECONDS - start)) s wall"
done
# pi pi isospin: both diffusion posteriors (below and above 2 m_K) on the GPU, quick preset
start=$SECONDS
hadrinv run pipi-isospin --preset quick --device cuda --no-progress --out "$out/isospin-cuda" --force \
  > "$out/isospin-cuda.log" 2>&1 || echo "exit code $?"
tail -n 20 "$out/isospin-cuda.log"
echo "pipi-isospin quick on cuda: $((SECONDS - start)) s wall"
# the talk's CNN GAN (--preset paper): seconds per step and the extrapolated 100 members
python benchmarks/pipi_paper_member_time.py --device cuda --steps 5,15
# amplitude surrogates: every method and boosting on the GPU (quick preset), then the CPU for the ratio
for device in cuda cpu; do
  start=$SECONDS
  hadrinv run amplitude-surrogate --preset quick --device "$device" --serial --no-progress \
    --out "$out/amp-$device" --force > "$out/amp-$device.log" 2>&1 || echo "exit code $?"
  tail -n 16 "$out/amp-$device.log"
  echo "amplitude-surrogate quick on $device: $((SECONDS - start)) s wall"
done
# event generators: flow, DiscFlow and the OT attention generator on the GPU (quick preset), then the CPU
for device in cuda cpu; do
  start=$SECONDS
  hadrinv run event-generator --preset quick --device "$device" --serial --no-progress \
    --out "$out/gen-$device" --force > "$out/gen-$device.log" 2>&1 || echo "exit code $?"
  tail -n 12 "$out/gen-$device.log"
  echo "event-generator quick on $device: $((SECONDS - start)) s wall"
done
